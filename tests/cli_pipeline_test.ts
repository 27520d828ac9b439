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
import { REPO_ROOT } from "../lib/pipeline/paths.ts";

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

Deno.test("--summary-md in a missing folder is refused before anything runs", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const r = await pipeline(store, ["--summary-md", join(dir.path, "nope", "summary.md")]);
  assertEquals(r.code, 1, shown(r));
  assertStringIncludes(r.stderr, "field --summary-md", shown(r));
  assertStringIncludes(r.stderr, "does not exist", shown(r));
  assert(!hasStackTrace(r), shown(r));
  const ran = await Deno.stat(join(store, "runs")).then(() => true, () => false);
  assert(!ran, "no run record: nothing ran");
  const onFile = await pipeline(store, ["--summary-md", join(PIPELINE, "summary.md")]);
  assertEquals(onFile.code, 1, shown(onFile));
  assertStringIncludes(onFile.stderr, "folder is a file", shown(onFile));
});

Deno.test("a --summary-md that cannot be written at the end: gates still reported, their exit code kept", async () => {
  await using dir = await tempDir();
  // A link into a missing folder: its folder passes the early check, the write fails.
  const link = join(dir.path, "summary.md");
  await Deno.symlink(join(dir.path, "gone", "summary.md"), link);
  const store = join(dir.path, "store");
  const r = await pipeline(store, ["--fail-if", "evaluate.test_loss > 0", "--summary-md", link]);
  assertEquals(
    r.code,
    3,
    `a failed gate exits 3 although the summary was not written\n${shown(r)}`,
  );
  assert(!hasStackTrace(r), shown(r));
  assertStringIncludes(r.stderr, "cannot write the summary", shown(r));
  assertStringIncludes(r.stderr, 'gate "evaluate.test_loss > 0" failed', shown(r));
  const passed = await pipeline(store, [
    "--fail-if",
    "evaluate.test_loss > 1e9",
    "--summary-md",
    link,
  ]);
  assertEquals(passed.code, 1, `gates passed, the summary was not written\n${shown(passed)}`);
  assertStringIncludes(passed.stderr, "field --summary-md", shown(passed));
});

Deno.test("--rerun takes a run as every command names one, and a record file from the caller's folder", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const first = await pipeline(store, ["--name", "first"]);
  assertEquals(first.code, 0, shown(first));
  const [record] = [...Deno.readDirSync(join(store, "runs"))].map((e) => e.name);
  for (const run of ["first", "latest", record.slice(0, 20), `store/runs/${record}`]) {
    const r = await runCli(
      ["pipeline", "--rerun", run, "--jobs-dir", JOBS, "--store", store, "--dry-run"],
      { cwd: dir.path },
    );
    assertEquals(r.code, 0, `--rerun ${run}\n${shown(r)}`);
    assertStringIncludes(r.stdout, "evaluate  evaluate  cached", `--rerun ${run}\n${shown(r)}`);
  }
  const unknown = await runCli(["pipeline", "--rerun", "nosuch", "--store", store]);
  assertEquals(unknown.code, 1, shown(unknown));
  assertStringIncludes(unknown.stderr, 'no run named "nosuch"', shown(unknown));
  assertStringIncludes(unknown.stderr, "field --rerun", shown(unknown));
});

Deno.test("--rerun with --set, --sweep or a pipeline FILE is refused, naming both", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  for (
    const [extra, named] of [
      [["--set", "train.layers=3"], "--set"],
      [["--sweep", "train.layers=3,4"], "--sweep"],
      [[PIPELINE], "a pipeline FILE"],
    ] as const
  ) {
    const r = await runCli(["pipeline", "--rerun", "latest", "--store", store, ...extra]);
    assertEquals(r.code, 1, shown(r));
    assertStringIncludes(r.stderr, `--rerun cannot be combined with ${named}`, shown(r));
    assert(!hasStackTrace(r), shown(r));
  }
});

Deno.test("--json: every bad command line is {status: invalid} on stdout, exit 1", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const cases: [string[], string][] = [
    [["--fail-if", "bogus"], 'malformed gate "bogus"'],
    [["--name", "latest"], 'bad run name "latest"'],
    [["--baseline", "nope"], 'no run named "nope"'],
    [["--sweep", "x"], "bad sweep"],
    [["--bogus"], "unknown option '--bogus'"],
  ];
  for (const [extra, says] of cases) {
    const r = await pipeline(store, ["--json", ...extra]);
    assertEquals(r.code, 1, shown(r));
    let answer: { status?: string; error?: string } = {};
    try {
      answer = JSON.parse(r.stdout);
    } catch {
      throw new Error(`${extra.join(" ")}: stdout is not JSON\n${shown(r)}`);
    }
    assertEquals(answer.status, "invalid", shown(r));
    assertStringIncludes(answer.error ?? "", says, shown(r));
    assertStringIncludes(r.stderr, says, `the message stays on stderr\n${shown(r)}`);
  }
  const noFile = await runCli(["pipeline", "--json", "--store", store]);
  assertEquals(noFile.code, 1, shown(noFile));
  assertEquals(JSON.parse(noFile.stdout).status, "invalid", shown(noFile));
});

Deno.test("pipeline --help prints on stdout and exits 0", async () => {
  const r = await runCli(["pipeline", "--help"]);
  assertEquals(r.code, 0, shown(r));
  assertStringIncludes(r.stdout, "Usage: pipeline", shown(r));
  assertStringIncludes(r.stdout, "--rerun <run>", shown(r));
  assertEquals(r.stderr, "", `pipeline --help writes nothing on stderr\n${shown(r)}`);
});

Deno.test("a pipeline file not found names the folder the command was run in, not the project root", async () => {
  await using dir = await tempDir();
  const r = await runCli(["pipeline", "nosuch.yaml", "--store", join(dir.path, "store")], {
    env: { INIT_CWD: dir.path }, // as `deno task` run in dir.path says
  });
  assertEquals(r.code, 1, shown(r));
  assertStringIncludes(r.stderr, "pipeline file not found", shown(r));
  assertStringIncludes(r.stderr, `no file nosuch.yaml in ${dir.path} or in `, shown(r));
  assertStringIncludes(r.stderr, join(REPO_ROOT, "pipelines"), shown(r));
});
