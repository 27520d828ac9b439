/**
 * `main.ts gc`: frees what no kept run needs (lib/experiments/gc.ts).
 *
 * ```
 * deno task gc [--keep-last N] [--keep RUN]… [--dry-run] [--json] [--store DIR]
 *              [--ignore-unreadable-records]
 * ```
 *
 * @module
 */
import { decimalNumber, newProgram, runProgram } from "./commander.ts";
import { existingStoreDir, runArgument } from "./resolve.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { collectGarbage } from "../experiments/gc.ts";
import { UserError } from "../errors/mod.ts";

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Runs `gc`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const program = newProgram(
    "gc",
    "Remove artifacts, scratch, staging and plan caches that no kept run needs.",
  )
    .option("--keep-last <n>", "keep the newest N runs (any status)", "10")
    .option(
      "--keep <run>",
      "also keep this run (latest~N, id, name); repeatable",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--dry-run", "say what would be removed; remove nothing")
    .option("--json", "the report as JSON on stdout")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .option(
      "--ignore-unreadable-records",
      "clean even though some run records cannot be read; their runs' artifacts may be removed",
    )
    .action(async (o) => {
      const keepLast = decimalNumber(o.keepLast);
      if (!Number.isInteger(keepLast) || keepLast < 0) {
        throw new UserError(`bad --keep-last`, {
          field: "--keep-last",
          expected: "a whole number >= 0",
          found: o.keepLast,
        });
      }
      const storeDir = existingStoreDir(o.store);
      const r = await collectGarbage(storeDir, {
        keepLast,
        keep: o.keep.map(runArgument),
        dryRun: o.dryRun,
        ignoreUnreadableRecords: o.ignoreUnreadableRecords,
        onWait: () => out.err("waiting for running pipelines on this store to finish\n"),
      });
      if (o.json) {
        out.out(JSON.stringify(r, null, 2) + "\n");
        return;
      }
      const verb = r.dry_run ? "would remove" : "removed";
      out.out(
        `${displayPath(storeDir)}: kept ${r.kept_runs.length} runs and the ${r.kept_artifacts} ` +
          `artifacts they need; ${verb} ${r.removed_artifacts.length} artifacts, ` +
          `${r.removed_work.length} scratch folders, ${r.removed_tmp.length} staging leftovers, ` +
          `${r.removed_run_locks} dead runs' locks, ` +
          `${r.removed_cache} plan cache entries: ${bytes(r.freed_bytes)} ` +
          `${r.dry_run ? "would be freed" : "freed"}\n` +
          (r.quarantine_bytes
            ? `quarantine/ holds ${bytes(r.quarantine_bytes)} (set-aside artifacts; not touched)\n`
            : ""),
      );
    });
  return await runProgram(program, args);
}
