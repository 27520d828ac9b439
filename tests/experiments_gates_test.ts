/**
 * CI gates and summaries: `--fail-if` parsing and validation before anything
 * runs, exit code 3 naming the gate, the value and the threshold, metrics in
 * run records, `--summary-md` with a baseline, and the CI pipeline's gates
 * checked against the real jobs. Fixture jobs (tests/fixtures/experiments)
 * stand in for train and evaluate; each run takes milliseconds.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import { parseGate } from "../lib/pipeline/gates.ts";
import { readRunRecord } from "../lib/pipeline/records.ts";
import { captureOutput, tempDir } from "./fixtures/pipeline_helpers.ts";
import { runPipeline } from "../lib/pipeline/runner.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";

const FIX = fileURLToPath(new URL("./fixtures/experiments", import.meta.url));
const JOBS = join(FIX, "jobs");
const PIPELINE = join(FIX, "pipeline.yaml");

/** `main.ts pipeline` in a subprocess: exit code and both streams. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), "pipeline", ...args],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

Deno.test("parseGate reads STEP.METRIC OP NUMBER for every operator, and rejects the rest", () => {
  for (const op of ["<", "<=", ">", ">=", "==", "!="]) {
    const g = parseGate(`evaluate.test_loss ${op} 3.5`);
    assertEquals([g.step, g.metric, g.op, g.threshold], ["evaluate", "test_loss", op, 3.5]);
  }
  assertEquals(parseGate("train.steps>=1e2").threshold, 100);
  for (const bad of ["test_loss < 3", "evaluate.test_loss ~ 3", "evaluate.test_loss < abc", ""]) {
    assert(assertThrows(() => parseGate(bad), "malformed gate") instanceof UserError);
  }
});

Deno.test("a gate that cannot apply is an error before anything runs", async (t) => {
  const cases: { gate: string; extra?: string[]; words: string }[] = [
    { gate: "nosuch.test_loss > 1", words: 'no step "nosuch"' },
    { gate: "evaluate.nope > 1", words: 'has no metric "nope"' },
    { gate: "data.items > 1", words: "declares no metrics" },
    { gate: "evaluate.test_loss > 1", extra: ["--until", "train"], words: "not part of this run" },
  ];
  for (const c of cases) {
    await t.step(c.gate, async () => {
      await using dir = await tempDir();
      const store = join(dir.path, "store");
      const r = await cli([
        PIPELINE,
        "--jobs-dir",
        JOBS,
        "--store",
        store,
        "--fail-if",
        c.gate,
        ...(c.extra ?? []),
      ]);
      assertEquals(r.code, 1, r.err);
      assertStringIncludes(r.err, c.words);
      assert(!r.err.includes("    at "), "no stack trace");
      let objects = 0;
      try {
        for await (const _ of Deno.readDir(join(store, "objects"))) objects++;
      } catch { /* never created */ }
      assertEquals(objects, 0, "nothing ran");
    });
  }
});

Deno.test("a failed gate exits 3 naming the gate, the value and the threshold; passing gates exit 0", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const base = [PIPELINE, "--jobs-dir", JOBS, "--store", store];
  // Fixture figures: test_loss 0.4833, category_accuracy 0.7583.
  const pass = await cli([...base, "--fail-if", "evaluate.test_loss > 0.5"]);
  assertEquals(pass.code, 0, pass.err);
  assertStringIncludes(pass.err, 'gate "evaluate.test_loss > 0.5" passed');
  const fail = await cli([...base, "--fail-if", "evaluate.category_accuracy < 0.9"]);
  assertEquals(fail.code, 3, fail.err);
  assertMatch(
    fail.err,
    /gate "evaluate.category_accuracy < 0.9" failed: evaluate.category_accuracy is 0.7583, which is < 0.9/,
  );
  const missing = await cli([...base, "--fail-if", "evaluate.never_written > 1"]);
  assertEquals(missing.code, 3, missing.err);
  assertStringIncludes(missing.err, "wrote no value for never_written");
});

Deno.test("run records carry each step's flat metrics, the run's name and its gates", async () => {
  await using dir = await tempDir();
  const output = captureOutput();
  const s = await runPipeline({
    file: PIPELINE,
    jobsDir: JOBS,
    store: join(dir.path, "store"),
    output,
    name: "first-try",
    gates: [parseGate("evaluate.test_loss > 1")],
  });
  const rec = await readRunRecord(s.record!);
  assertEquals(rec.name, "first-try");
  assertEquals(rec.steps.train.metrics?.steps, 5);
  assertEquals(Object.keys(rec.steps.train.metrics!), ["best_val_loss", "steps", "seconds"]);
  assertEquals(Object.keys(rec.steps.evaluate.metrics!), ["test_loss", "category_accuracy"]);
  const value = rec.steps.evaluate.metrics!.test_loss;
  assertEquals(rec.gates, [{ gate: "evaluate.test_loss > 1", value, passed: true }]);
});

Deno.test("--summary-md: outcome, gates, steps with cache hits, metrics, and the change against --baseline", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const md = join(dir.path, "summary.md");
  const base = [PIPELINE, "--jobs-dir", JOBS, "--store", store];
  assertEquals((await cli([...base, "--name", "base"])).code, 0);
  const r = await cli([
    ...base,
    "--set",
    "train.lr=0.002",
    "--baseline",
    "base",
    "--summary-md",
    md,
    "--fail-if",
    "evaluate.test_loss > 0.3",
  ]);
  assertEquals(r.code, 3, r.err);
  const text = await Deno.readTextFile(md);
  for (
    const words of [
      "## Pipeline `exp`: gate failed ❌",
      "1 of 3 steps cached",
      "| `evaluate.test_loss > 0.3` | 0.35 | ❌ failed |",
      "| data | source | cached |",
      "| evaluate.category_accuracy | 0.825 |",
      "### Against baseline `base`",
      "Same artifacts: data. Different: train, evaluate.",
      "| evaluate.test_loss | 0.4833 | 0.35 | -0.1333 | -27.6% | 🟢 better |",
    ]
  ) assertStringIncludes(text, words);
  const unknown = await cli([...base, "--baseline", "nosuch", "--summary-md", md]);
  assertEquals(unknown.code, 1);
  assertStringIncludes(unknown.err, 'no run named "nosuch"');
});

Deno.test("the CI pipeline's gates name metrics the real jobs declare (dry run)", async () => {
  const workflow = await Deno.readTextFile(join(REPO_ROOT, ".github/workflows/retrain.yml"));
  const gates = [...workflow.matchAll(/--fail-if '([^']+)'/g)].map((m) => m[1]);
  assert(gates.length >= 2, "the workflow has gates");
  await using dir = await tempDir();
  const args = ["ci.yaml", "--store", join(dir.path, "store"), "--dry-run"];
  const r = await cli([...args, ...gates.flatMap((g) => ["--fail-if", g])]);
  assertEquals(r.code, 0, r.err);
  assertStringIncludes(r.out, "would run");
});

Deno.test("every metric the evaluate job declares is in README's Metrics table", async () => {
  const { job } = await import("../jobs/evaluate.ts");
  const readme = await Deno.readTextFile(join(REPO_ROOT, "README.md"));
  const start = readme.indexOf("## Metrics");
  const section = readme.slice(start, readme.indexOf("\n`report.html`", start));
  for (const name of job.metrics!) {
    const listed = section.includes(`\`${name}\``) ||
      (name.startsWith("val_") && section.includes(`\`test_${name.slice(4)}\``)) ||
      section.includes(`\`${name.replace("_val_", "_test_")}\``);
    assert(listed, `${name} is not in README "Metrics"`);
  }
});
