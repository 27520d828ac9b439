/**
 * The `pipeline` command's command line, through `main.ts` as a subprocess
 * with the fixture experiment jobs (tests/fixtures/experiments; every run
 * takes milliseconds): how its options are checked and its errors worded.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { hasStackTrace, runCli, shown } from "./cli_fixture.ts";

const FIX = fileURLToPath(new URL("./fixtures/experiments", import.meta.url));
const JOBS = join(FIX, "jobs");
const PIPELINE = join(FIX, "pipeline.yaml");

/** `pipeline PIPELINE --jobs-dir JOBS --store STORE ARGS…`. */
function pipeline(store: string, args: string[], opts: { cwd?: string } = {}) {
  return runCli(["pipeline", PIPELINE, "--jobs-dir", JOBS, "--store", store, ...args], opts);
}

Deno.test("a bad --sweep value is worded as set by --sweep, not --set", async () => {
  await using dir = await tempDir();
  const r = await pipeline(join(dir.path, "store"), ["--sweep", "train.layers=2,abc", "--dry-run"]);
  assertEquals(r.code, 1, shown(r));
  assertStringIncludes(r.stderr, "set by --sweep train.layers=2,abc (the value abc)", shown(r));
  assert(!r.stderr.includes("--set"), shown(r));
  assert(!hasStackTrace(r), shown(r));
});
