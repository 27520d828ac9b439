/**
 * `main.ts diff A B`: two runs (each named as `show` takes one), or two
 * artifacts of the same job (folders, keys or key prefixes).
 *
 * ```
 * deno task diff latest~1 latest [--all] [--json | --md] [--store DIR]
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { newProgram, runProgram } from "./commander.ts";
import { existingStoreDir, runArgument } from "./resolve.ts";
import { fromCaller } from "./caller.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { UserError } from "../errors/mod.ts";
import { resolveRun, type StoredRun } from "../experiments/runs.ts";
import { diffArtifacts, diffRuns } from "../experiments/diff.ts";
import { renderDiffMarkdown, renderDiffText } from "../experiments/diff_render.ts";

/** An artifact folder named by a path or a unique key prefix, or undefined. */
async function artifactDir(name: string, storeDir: string): Promise<string | undefined> {
  const isArtifact = async (d: string) =>
    await Deno.stat(join(d, "manifest.json")).then((s) => s.isFile, () => false);
  if (await isArtifact(fromCaller(name))) return fromCaller(name);
  if (!/^[0-9a-f]{4,64}$/.test(name)) return undefined;
  const matches: string[] = [];
  try {
    for await (const e of Deno.readDir(join(storeDir, "objects"))) {
      if (e.isDirectory && e.name.startsWith(name)) matches.push(e.name);
    }
  } catch { /* no objects */ }
  if (matches.length > 1) {
    throw new UserError(`the key prefix "${name}" matches ${matches.length} artifacts`, {
      found: matches.slice(0, 5).map((m) => m.slice(0, 16)).join(", "),
      hint: "give more characters of the key",
    });
  }
  return matches.length ? join(storeDir, "objects", matches[0]) : undefined;
}

/**
 * Why an argument that is neither a run nor an artifact names nothing: the
 * run lookup's error (`no run named …`, or the runs a prefix matches) with
 * artifacts added to what was expected.
 */
function orArtifact(e: UserError): UserError {
  return new UserError(e.message, {
    ...e.location,
    expected: `${e.expected ?? "a run"}; or an artifact (its folder, a key or key prefix)`,
    found: e.found,
    hint: e.hint,
    cause: e,
  });
}

/** Runs `diff`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const program = newProgram("diff", "Compare two runs, or two artifacts of the same job.")
    .argument("<a>", "run (latest, latest~N, id, name) or artifact (folder, key prefix)")
    .argument("<b>", "the other run or artifact")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .option("--all", "list equal parameters and metrics too")
    .option("--json", "JSON on stdout")
    .option("--md", "Markdown on stdout (a pull-request comment)")
    .action(async (a, b, o) => {
      const storeDir = existingStoreDir(o.store);
      // A run, or why the argument is none (kept for when it is no artifact either).
      const asRun = async (n: string, field: string): Promise<StoredRun | UserError> => {
        try {
          return await resolveRun(runArgument(n), storeDir, field);
        } catch (e) {
          if (e instanceof UserError) return e;
          throw e;
        }
      };
      const [ra, rb] = [await asRun(a, "A"), await asRun(b, "B")];
      let diff;
      if (!(ra instanceof UserError) && !(rb instanceof UserError)) {
        diff = await diffRuns(ra, rb, storeDir, { all: o.all });
      } else {
        const [da, db] = [await artifactDir(a, storeDir), await artifactDir(b, storeDir)];
        if (ra instanceof UserError && !da) throw orArtifact(ra);
        if (rb instanceof UserError && !db) throw orArtifact(rb);
        if (!da || !db) {
          throw new UserError(`cannot compare a run with an artifact`, {
            expected: "two runs, or two artifacts of the same job",
            found: `${a} and ${b}`,
          });
        }
        const job = async (d: string) =>
          JSON.parse(await Deno.readTextFile(join(d, "manifest.json"))).job as string;
        const [ja, jb] = [await job(da), await job(db)];
        if (ja !== jb) {
          throw new UserError(`the artifacts are of different jobs`, {
            expected: "two artifacts of the same job",
            found: `${ja} and ${jb}`,
          });
        }
        diff = await diffArtifacts(da, db, { all: o.all });
      }
      if (o.json) out.out(JSON.stringify(diff, null, 2) + "\n");
      else if (o.md) out.out(renderDiffMarkdown(diff, o.all));
      else out.out(renderDiffText(diff, o.all));
    });
  return await runProgram(program, args);
}
