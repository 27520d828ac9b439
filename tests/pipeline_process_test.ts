/** End-to-end tests through `main.ts` in subprocesses: concurrency, kill -9, Ctrl-C, exit codes, --json. */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { LocalArtifactStore } from "../lib/artifacts/store.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { readRunRecord } from "../lib/pipeline/records.ts";
import { loadRuns } from "../lib/experiments/runs.ts";
import {
  BASIC_YAML,
  FIXTURE_JOBS,
  runQuiet,
  tempDir,
  writePipeline,
} from "./fixtures/pipeline_helpers.ts";

function cli(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    cwd: REPO_ROOT,
    env: { INIT_CWD: REPO_ROOT }, // not one inherited from the shell
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

async function finish(
  p: Deno.ChildProcess,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await p.output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

const SLOW_YAML = (chunks: number) =>
  `name: slowp
seed: 1
steps:
  big:
    job: slow
    params: { chunks: ${chunks}, chunk_bytes: 65536, delay_ms: 100 }
`;

/** Waits until a staging dir with some written data exists under `<store>/tmp`. */
async function waitForStaging(store: string, timeoutMs = 15000): Promise<string> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      for (const e of Deno.readDirSync(join(store, "tmp"))) {
        const data = join(store, "tmp", e.name, "data.bin");
        try {
          if (Deno.statSync(data).size > 0) return join(store, "tmp", e.name);
        } catch { /* not yet */ }
      }
    } catch { /* no tmp yet */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the step never started writing");
}

Deno.test("--json prints only the summary on stdout; exit code 0", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const r = await finish(
    cli(["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", `${dir.path}/s`, "--json"]),
  );
  assertEquals(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assertEquals(summary.status, "succeeded");
  assertEquals(summary.steps.map((s: { status: string }) => s.status), [
    "ran",
    "ran",
    "ran",
    "ran",
  ]);
  assertStringIncludes(r.stderr, "step", "the summary table goes to stderr");
});

Deno.test("a validation error exits 1 with 'error:' and the field on stderr", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const r = await finish(cli([
    "pipeline",
    file,
    "--jobs-dir",
    FIXTURE_JOBS,
    "--store",
    `${dir.path}/s`,
    "--set",
    "hello.repeat=0",
  ]));
  assertEquals(r.code, 1);
  assertStringIncludes(r.stderr, "error: file ");
  assertStringIncludes(r.stderr, "field steps.hello.params.repeat");
  assertStringIncludes(r.stderr, "expected: a number >= 1");
});

Deno.test("two runners on one store at once: one builds the step, the other reuses it", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, SLOW_YAML(6));
  const store = `${dir.path}/s`;
  const args = ["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", store, "--json"];
  const [a, b] = await Promise.all([finish(cli(args)), finish(cli(args))]);
  assertEquals([a.code, b.code], [0, 0], a.stderr + b.stderr);
  const st = [a, b].map((r) => JSON.parse(r.stdout).steps[0].status).sort();
  assertEquals(st, ["cached", "ran"]);
  const s = new LocalArtifactStore(store);
  assertEquals((await s.list()).length, 1);
  assertEquals((await s.verify()).problems, []);
});

Deno.test("kill -9 mid-write leaves no trusted artifact; the next run completes", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, SLOW_YAML(15));
  const store = `${dir.path}/s`;
  const plan = await runQuiet({ file, store, dryRun: true });
  const key = plan.steps[0].key!;
  const p = cli(["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", store]);
  const staging = await waitForStaging(store);
  p.kill("SIGKILL");
  await finish(p);
  const s = new LocalArtifactStore(store);
  assertEquals(await s.get(key), undefined, "no published artifact after the kill");
  assert((await Deno.stat(staging)).isDirectory, "the killed run's staging dir is still there");
  const r = await runQuiet({ file, store });
  assertEquals(r.status, "succeeded");
  assertEquals(r.steps[0].status, "ran");
  assertEquals(
    (await s.get(key))!.manifest.files.find((f) => f.path === "data.bin")!.size,
    15 * 65536,
  );
  assertEquals([...Deno.readDirSync(join(store, "tmp"))], [], "stale staging was cleaned up");
  assertEquals((await s.verify()).problems, []);
});

Deno.test("Ctrl-C (SIGINT) aborts the running step, exits 130, records the run as interrupted", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, SLOW_YAML(30));
  const store = `${dir.path}/s`;
  const p = cli(["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", store]);
  await waitForStaging(store);
  p.kill("SIGINT");
  const r = await finish(p);
  assertEquals(r.code, 130, r.stderr);
  const runs = [...Deno.readDirSync(join(store, "runs"))].map((e) => e.name);
  assertEquals(runs.length, 1);
  const rec = await readRunRecord(join(store, "runs", runs[0]));
  assertEquals(rec.status, "interrupted");
  assertEquals(rec.steps.big.status, "failed");
  assertEquals(rec.steps.big.reason, "interrupted");
  assertEquals((await new LocalArtifactStore(store).list()).length, 0);
});

Deno.test("artifacts verify exits 1 and names a corrupted file", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/s`;
  const run = await runQuiet({ file, store });
  const ok = await finish(cli(["artifacts", "verify", "--store", store]));
  assertEquals(ok.code, 0, ok.stdout + ok.stderr);
  const key = run.steps.find((s) => s.step === "both")!.key!;
  await Deno.writeTextFile(join(store, "objects", key, "out.txt"), "tampered!!!!");
  const bad = await finish(cli(["artifacts", "verify", "--store", store]));
  assertEquals(bad.code, 1);
  assertStringIncludes(bad.stdout, `BAD ${key.slice(0, 12)} out.txt`);
});

Deno.test("a fully cached re-run imports no job module (plan cache)", async () => {
  await using dir = await tempDir();
  const jobs = join(dir.path, "jobs");
  await Deno.mkdir(jobs);
  const marker = join(dir.path, "imports.log");
  const src = await Deno.readTextFile(join(FIXTURE_JOBS, "write_text.ts"));
  await Deno.writeTextFile(
    join(jobs, "write_text.ts"),
    `${src}\nDeno.writeTextFileSync(${JSON.stringify(marker)}, "imported\\n", { append: true });\n`,
  );
  const file = await writePipeline(
    dir.path,
    "name: m\nseed: 1\nsteps:\n  a: { job: write_text, params: { text: x } }\n",
  );
  const args = ["pipeline", file, "--jobs-dir", jobs, "--store", `${dir.path}/s`, "--json"];
  const first = await finish(cli(args));
  assertEquals(first.code, 0, first.stderr);
  const second = await finish(cli(args));
  assertEquals(JSON.parse(second.stdout).steps[0].status, "cached");
  assertEquals(
    await Deno.readTextFile(marker),
    "imported\n",
    "only the first run imported the job",
  );
});

Deno.test("artifacts show prints manifest and metrics; artifacts runs lists the run", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/s`;
  const run = await runQuiet({ file, store });
  const key = run.steps.find((s) => s.step === "hello")!.key!;
  const show = await finish(cli(["artifacts", "show", key.slice(0, 10), "--store", store]));
  assertEquals(show.code, 0, show.stderr);
  const shown = JSON.parse(show.stdout);
  assertEquals(shown.manifest.key, key);
  assertEquals(shown.manifest.step, "hello");
  assertEquals(shown.metrics, { chars: 5 });
  const runs = await finish(cli(["artifacts", "runs", "--store", store]));
  assertEquals(runs.code, 0, runs.stderr);
  assertStringIncludes(runs.stdout, "succeeded");
  assertStringIncludes(runs.stdout, "4 ran");
  const missing = await finish(cli(["artifacts", "show", "ffff", "--store", store]));
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, 'no artifact with key "ffff"');
});

Deno.test("kill -9 mid-run: the record lists the steps it built, and runs/show call it died without rewriting it", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(
    dir.path,
    `name: killp
seed: 1
steps:
  hello: { job: write_text, params: { text: "hello" } }
  big: { job: slow, params: { chunks: 300, chunk_bytes: 65536, delay_ms: 100 } }
`,
  );
  const store = `${dir.path}/s`;
  const p = cli(["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", store]);
  await waitForStaging(store);
  const runsDir = join(store, "runs");
  const recordFile = join(runsDir, [...Deno.readDirSync(runsDir)][0].name);
  let rec = await readRunRecord(recordFile);
  const t0 = Date.now();
  while (rec.steps.hello.status !== "ran" && Date.now() - t0 < 10000) {
    await new Promise((r) => setTimeout(r, 50));
    rec = await readRunRecord(recordFile);
  }
  assertEquals(rec.steps.hello.status, "ran", "the record is rewritten as each step finishes");
  assertEquals(
    (await loadRuns(store))[0].record.status,
    "running",
    "a live run's record is shown running (its process holds the run lock)",
  );
  p.kill("SIGKILL");
  await finish(p);
  const bytes = await Deno.readTextFile(recordFile);
  const killed = JSON.parse(bytes);
  assertEquals([killed.status, killed.steps.hello.status], ["running", "ran"]);
  assert(killed.steps.hello.metrics, "with the built step's metrics");
  const runs = await finish(cli(["runs", "--store", store, "--json"]));
  assertEquals(runs.code, 0, runs.stderr);
  assertEquals(JSON.parse(runs.stdout).map((r: { status: string }) => r.status), ["died"]);
  const show = await finish(cli(["show", killed.id, "--store", store, "--json"]));
  assertEquals(show.code, 0, show.stderr);
  const shown = JSON.parse(show.stdout);
  assertEquals(shown.status, "died");
  assertEquals(shown.steps.find((s: { step: string }) => s.step === "hello").status, "ran");
  const listed = await finish(cli(["artifacts", "runs", "--store", store]));
  assertEquals(listed.code, 0, listed.stderr);
  assertStringIncludes(listed.stdout, " died ");
  assertEquals(
    await Deno.readTextFile(recordFile),
    bytes,
    "runs and show leave the record as it is",
  );
});
