/**
 * `main.ts show RUN`: one run: its steps, artifact keys and folders, the
 * parameters, every metric, and where the model, report and bundle are.
 *
 * ```
 * deno task show latest [--json] [--store DIR]
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { newProgram, runProgram } from "./commander.ts";
import { existingStoreDir, runArgument } from "./resolve.ts";
import { consoleOutput, formatDuration } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { resolveRun, runDuration, runMetrics, stepOfJob } from "../experiments/runs.ts";
import { flattenParams } from "../experiments/diff.ts";
import { fmt } from "../experiments/compare.ts";
import { textTable } from "../experiments/table.ts";

/** Runs `show`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const program = newProgram("show", "Show a run: steps, keys, parameters, metrics, results.")
    .argument("<run>", "latest, latest~N, a run id (or prefix), a --name, or a record file")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .option("--json", "JSON on stdout")
    .action(async (name, o) => {
      const storeDir = existingStoreDir(o.store);
      const { file, record: r } = await resolveRun(runArgument(name), storeDir);
      const metrics = runMetrics(r, storeDir);
      const dir = (key?: string) => key ? join(storeDir, "objects", key) : undefined;
      const present = async (path?: string) => {
        if (!path) return undefined;
        try {
          await Deno.stat(path);
          return path;
        } catch {
          return undefined;
        }
      };
      const fileOf = (job: string, name?: string) => {
        const key = stepOfJob(r, job)?.record.key;
        return key && (name ? join(dir(key)!, name) : dir(key));
      };
      const results = {
        model: await present(fileOf("train", "best.safetensors")),
        report: await present(fileOf("evaluate", "report.html")),
        bundle: await present(fileOf("export")),
      };
      const steps = Object.entries(r.steps).map(([step, s]) => ({
        step,
        job: s.job,
        status: s.status,
        reason: s.reason,
        key: s.key,
        dir: s.key && (s.status === "ran" || s.status === "cached") ? dir(s.key) : undefined,
        duration_s: s.duration_s,
        params: s.identity?.params,
        metrics: metrics[step],
      }));
      if (o.json) {
        out.out(
          JSON.stringify(
            {
              record: file,
              run: r.id,
              name: r.name,
              status: r.status,
              started_at: r.started_at,
              duration_s: runDuration(r),
              overrides: r.overrides,
              seed: r.seed,
              gates: r.gates,
              results,
              steps,
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const d = runDuration(r);
      const lines = [
        `run ${r.id}${r.name ? ` (${r.name})` : ""}: ${r.status}` +
        `${d === undefined ? "" : ` in ${formatDuration(d)}`}, started ${r.started_at}`,
        `pipeline ${r.pipeline.file} (${r.pipeline.name}), seed ${r.seed}` +
        (r.overrides.length ? `, --set ${r.overrides.join(" --set ")}` : ""),
        `record ${displayPath(file)}`,
      ];
      if (r.status === "died") {
        lines.push(
          "its process ended before the run did (killed, or its machine stopped); " +
            "the steps below are as its record last said",
        );
      }
      if (r.error) lines.push(`error: ${r.error.split("\n")[0]}`);
      for (const g of r.gates ?? []) {
        lines.push(`gate ${g.gate}: ${fmt(g.value)} ${g.passed ? "passed" : "FAILED"}`);
      }
      out.out(lines.join("\n") + "\n\nsteps:\n");
      out.out(textTable([
        ["step", "job", "status", "time", "key", "folder"],
        ...steps.map((s) => [
          s.step,
          s.job,
          s.status,
          s.duration_s === undefined ? "" : formatDuration(s.duration_s),
          s.key?.slice(0, 12) ?? "",
          s.dir ? displayPath(s.dir) : s.status === "ran" || s.status === "cached" ? "" : s.reason,
        ]),
      ]));
      out.out("\nparameters:\n");
      const prow: string[][] = [["parameter", "value"]];
      for (const s of steps) {
        for (const [k, v] of Object.entries(flattenParams(s.params))) {
          prow.push([`${s.step}.${k}`, JSON.stringify(v)]);
        }
      }
      out.out(textTable(prow));
      out.out("\nmetrics:\n");
      const mrow: string[][] = [["metric", "value"]];
      for (const s of steps) {
        for (const [k, v] of Object.entries(s.metrics ?? {})) mrow.push([`${s.step}.${k}`, fmt(v)]);
      }
      out.out(textTable(mrow));
      const res = Object.entries(results).filter(([, p]) => p);
      if (res.length) {
        out.out(
          "\nresults:\n" + res.map(([k, p]) => `  ${k.padEnd(7)} ${displayPath(p!)}`).join("\n") +
            "\n",
        );
      }
    });
  return await runProgram(program, args);
}
