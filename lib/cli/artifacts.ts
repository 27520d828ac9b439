/**
 * `main.ts artifacts`: inspect and check the artifact store.
 *
 * ```
 * deno task artifacts list | show KEY | verify | runs
 * ```
 *
 * @module
 */
import { basename, join } from "node:path";
import { Command } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";
import { LocalArtifactStore } from "../artifacts/store.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { readRunRecords } from "../experiments/runs.ts";
import { existingStoreDir } from "./resolve.ts";

/** The store `--store` names, read from the caller's folder; it must exist (see {@link existingStoreDir}). */
function existingStore(option: string | undefined): LocalArtifactStore {
  return new LocalArtifactStore(existingStoreDir(option));
}

/** Runs the `artifacts` command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  let code = 0;
  const storeOpt = [
    "--store <dir>",
    "artifact store (default $SAMOUT_STORE or artifacts/)",
  ] as const;
  const program = new Command("artifacts")
    .description("Inspect and verify the artifact store.")
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.out(s), writeErr: (s) => out.err(s) });
  program.command("list").description("list published artifacts").option(...storeOpt)
    .option("--json", "JSON on stdout")
    .action(async (o) => {
      const refs = await existingStore(o.store).list();
      if (o.json) {
        out.out(
          JSON.stringify(
            refs.map((r) => ({ ...r.manifest, files: r.manifest.files.length })),
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const rows = refs.map((r) => [
        r.key.slice(0, 12),
        r.manifest.step,
        r.manifest.job,
        r.manifest.finished_at,
        `${r.manifest.files.length} files`,
        `${r.manifest.files.reduce((n, f) => n + f.size, 0)} bytes`,
      ]);
      const widths = rows.length
        ? rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
        : [];
      for (const r of rows) {
        out.out(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd() + "\n");
      }
      if (refs.length === 0) out.err("no artifacts\n");
    });
  program.command("show").description("print an artifact's manifest and metrics").argument(
    "<key>",
    "key or unique prefix",
  )
    .option(...storeOpt)
    .action(async (key, o) => {
      const refs = (await existingStore(o.store).list()).filter((r) => r.key.startsWith(key));
      if (refs.length !== 1) {
        throw new UserError(
          refs.length ? `key prefix "${key}" is ambiguous` : `no artifact with key "${key}"`,
          {
            expected: "the key (or a unique prefix) of a published artifact; see `artifacts list`",
            found: refs.length ? refs.map((r) => r.key.slice(0, 12)).join(", ") : key,
          },
        );
      }
      let metrics: unknown = {};
      try {
        metrics = JSON.parse(await Deno.readTextFile(join(refs[0].dir, "metrics.json")));
      } catch { /* none */ }
      out.out(
        JSON.stringify({ dir: refs[0].dir, manifest: refs[0].manifest, metrics }, null, 2) + "\n",
      );
    });
  program.command("verify").description(
    "re-hash every artifact against its manifest (exit 1 on mismatch)",
  )
    .option(...storeOpt)
    .action(async (o) => {
      const report = await existingStore(o.store).verify();
      for (const p of report.problems) {
        out.out(`BAD ${p.key.slice(0, 12)} ${p.path}: ${p.problem}\n`);
      }
      out.out(`${report.checked} artifacts checked, ${report.problems.length} problems\n`);
      if (report.problems.length) code = 1;
    });
  program.command("runs").description("list run records, newest first").option(...storeOpt)
    .action(async (o) => {
      // A "running" record whose run lock is free is shown as died, as `runs` shows it; an
      // unreadable one by its file name. Newest first, as the file names sort.
      const { runs, unreadable } = await readRunRecords(existingStoreDir(o.store));
      const lines = [
        ...runs.map(({ file, record: r }) => {
          const counts: Record<string, number> = {};
          for (const s of Object.values(r.steps)) counts[s.status] = (counts[s.status] ?? 0) + 1;
          return {
            name: basename(file),
            text: `${displayPath(file)}  ${r.status.padEnd(11)} ${r.pipeline.file}  ${
              Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")
            }${r.overrides?.length ? `  --set ${r.overrides.join(" --set ")}` : ""}\n`,
          };
        }),
        ...unreadable.map(({ file }) => ({
          name: basename(file),
          text: `${basename(file)}  (unreadable)\n`,
        })),
      ];
      lines.sort((a, b) => a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
      for (const l of lines) out.out(l.text);
    });
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    const c = (e as { exitCode?: number }).exitCode;
    if (typeof c === "number" && (e as { code?: string }).code?.startsWith("commander.")) return c;
    throw e;
  }
  return code;
}
