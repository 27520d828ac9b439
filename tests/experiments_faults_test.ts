/**
 * Faults met by the experiment commands (runs, show, gc, diff, plots, sweeps):
 * a store that is a file or does not exist, artifacts removed by gc,
 * unreadable run records. Each ends in a `UserError` (exit 1, no stack trace)
 * or a warning that names what is wrong, never in silence or a false result.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { captureOutput, tempDir } from "./fixtures/pipeline_helpers.ts";
import { runPipeline } from "../lib/pipeline/runner.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { UserError } from "../lib/errors/mod.ts";
import { collectGarbage } from "../lib/experiments/gc.ts";
import { loadRuns, resolveRun } from "../lib/experiments/runs.ts";

const FIX = fileURLToPath(new URL("./fixtures/experiments", import.meta.url));
const JOBS = join(FIX, "jobs");
const PIPELINE = join(FIX, "pipeline.yaml");

/** A stack frame line, as V8 prints them. */
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

async function run(store: string, overrides: string[] = [], name?: string) {
  const s = await runPipeline({
    file: PIPELINE,
    jobsDir: JOBS,
    store,
    overrides,
    name,
    output: captureOutput(),
  });
  assertEquals(s.status, "succeeded");
  await new Promise((r) => setTimeout(r, 3)); // run ids are millisecond timestamps
  return s;
}

/** `main.ts ARGS…` in a subprocess: exit code and stdout + stderr. */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

async function userError(p: () => Promise<unknown>): Promise<UserError> {
  const e = await assertRejects(p);
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  return e;
}

Deno.test("a file given as the store: runs, show and gc name it in a UserError", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "afile");
  await Deno.writeTextFile(file, "not a store\n");
  for (
    const [what, p] of [
      ["runs", () => loadRuns(file)],
      ["show", () => resolveRun("latest", file)],
      ["gc", () => collectGarbage(file, { keepLast: 1 })],
      ["gc --dry-run", () => collectGarbage(file, { keepLast: 1, dryRun: true })],
    ] as const
  ) {
    const e = await userError(p);
    assertStringIncludes(e.message, `the store path is a file, not a folder: ${file}`, what);
    assertStringIncludes(e.expected!, "artifact store", what);
  }
  for (const args of [["runs"], ["show", "latest"], ["gc"]]) {
    const r = await cli([...args, "--store", file]);
    assertEquals(r.code, 1, `${args.join(" ")}:\n${r.out}`);
    assertStringIncludes(r.out, "the store path is a file", args.join(" "));
    assert(!STACK_LINE.test(r.out), `${args.join(" ")}: no stack trace:\n${r.out}`);
  }
});

Deno.test("gc refuses a store that does not exist and does not create it", async () => {
  await using dir = await tempDir();
  const typo = join(dir.path, "no-such-store");
  for (const dryRun of [false, true]) {
    const e = await userError(() => collectGarbage(typo, { keepLast: 1, dryRun }));
    assertStringIncludes(e.message, `the artifact store ${typo} does not exist`);
    assertStringIncludes(e.expected!, "objects/ and runs/");
  }
  const gone = await Deno.stat(typo).then(() => false, () => true);
  assert(gone, "gc created the mistyped store folder");
});

Deno.test("gc on a store it cannot lock is a UserError naming the store and the lock file", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await run(store);
  // A file where locks/ should be: the lock cannot be taken (as on a store this user may not write).
  await Deno.remove(join(store, "locks"), { recursive: true });
  await Deno.writeTextFile(join(store, "locks"), "");
  const e = await userError(() => collectGarbage(store, { keepLast: 1 }));
  assertStringIncludes(e.message, `cannot lock the store ${store}`);
  assertStringIncludes(e.location.file!, "locks/store.lock");
});
