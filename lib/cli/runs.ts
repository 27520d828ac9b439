/**
 * `main.ts runs`: the store's runs, newest first, with their headline figures.
 *
 * ```
 * deno task runs [--json] [--limit N] [--store DIR]
 * ```
 *
 * @module
 */
import { decimalNumber, newProgram, runProgram } from "./commander.ts";
import { existingStoreDir } from "./resolve.ts";
import { UserError } from "../errors/mod.ts";
import { consoleOutput, formatDuration } from "../pipeline/progress.ts";
import { cacheHits, headline, loadRuns, runDuration, runMetrics } from "../experiments/runs.ts";
import { fmt } from "../experiments/compare.ts";
import { textTable } from "../experiments/table.ts";

/** Runs `runs`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const program = newProgram("runs", "List runs, newest first, with their headline metrics.")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .option("--limit <n>", "at most this many runs", "50")
    .option("--json", "JSON on stdout")
    .action(async (o) => {
      const limit = decimalNumber(o.limit);
      if (!Number.isInteger(limit) || limit < 1) {
        throw new UserError(`invalid --limit "${o.limit}"`, {
          field: "--limit",
          expected: "a whole number >= 1",
          found: o.limit,
        });
      }
      const storeDir = existingStoreDir(o.store);
      const runs = (await loadRuns(storeDir)).slice(0, limit);
      const rows = runs.map(({ file, record: r }) => {
        const h = headline(r, runMetrics(r, storeDir));
        const hits = cacheHits(r);
        return {
          id: r.id,
          name: r.name ?? null,
          pipeline: r.pipeline.name,
          file: r.pipeline.file,
          started: r.started_at,
          duration_s: runDuration(r) ?? null,
          status: r.status,
          cached: hits.cached,
          steps: hits.total,
          gates_failed: r.gates?.filter((g) => !g.passed).length ?? 0,
          ...h,
          record: file,
        };
      });
      if (o.json) {
        out.out(JSON.stringify(rows, null, 2) + "\n");
        return;
      }
      if (!rows.length) {
        out.err(`no runs in ${storeDir}\n`);
        return;
      }
      out.out(textTable([
        ["id", "name", "pipeline", "started", "time", "status", "cached", "test loss", "cat acc"],
        ...rows.map((r) => [
          r.id,
          r.name ?? "",
          r.pipeline,
          r.started.slice(0, 19).replace("T", " "),
          r.duration_s === null ? "" : formatDuration(r.duration_s),
          r.status + (r.gates_failed ? " (gate failed)" : ""),
          `${r.cached}/${r.steps}`,
          r.test_loss === null
            ? (r.best_val_loss === null ? "" : `val ${fmt(r.best_val_loss)}`)
            : fmt(r.test_loss),
          r.category_accuracy === null ? "" : `${(100 * r.category_accuracy).toFixed(1)}%`,
        ]),
      ]));
    });
  return await runProgram(program, args);
}
