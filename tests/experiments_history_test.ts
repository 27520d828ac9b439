/**
 * Run history and diffs: naming runs, `runs`, `show`, `diff` of runs and of
 * artifacts (weights per tensor, tokenizers, scanned data), metric
 * directions. Fixture jobs (tests/fixtures/experiments) stand in for the real
 * train and evaluate; every run takes milliseconds.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import { runExperiment } from "./fixtures/experiments_run.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { resolveRun } from "../lib/experiments/runs.ts";
import { metricDirection } from "../lib/experiments/compare.ts";
import { diffArtifacts, diffData, diffRuns, diffTokenizers } from "../lib/experiments/diff.ts";
import { renderDiffMarkdown } from "../lib/experiments/diff_render.ts";

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

/** Three runs: base (named), lr changed, layers changed; record paths in order. */
async function threeRuns(store: string): Promise<string[]> {
  const a = await runExperiment(store, [], "base");
  await new Promise((r) => setTimeout(r, 5)); // ids are millisecond timestamps
  const b = await runExperiment(store, ["train.lr=0.002"]);
  await new Promise((r) => setTimeout(r, 5));
  const c = await runExperiment(store, ["train.layers=4"]);
  return [a.record!, b.record!, c.record!];
}

Deno.test("runs are named by latest, latest~N, --name, id, id prefix and record file", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const [a, b, c] = await threeRuns(store);
  const id = (p: string) => p.replace(/^.*\//, "").replace(/\.json$/, "");
  const cases: [string, string][] = [
    ["latest", c],
    ["latest~1", b],
    ["latest~2", a],
    ["base", a],
    [id(b), b],
    [id(c).slice(0, id(c).length - 3), c],
    [a, a],
  ];
  for (const [name, want] of cases) {
    assertEquals((await resolveRun(name, store)).record.id, id(want), name);
  }
  for (const bad of ["latest~3", "nosuch", "20"]) {
    assert((await assertRejects(() => resolveRun(bad, store))) instanceof UserError, bad);
  }
});

Deno.test("runs --json: newest first, with name, status, cache hits and headline metrics", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await threeRuns(store);
  const r = await cli(["runs", "--store", store, "--json"]);
  assertEquals(r.code, 0, r.err);
  const rows = JSON.parse(r.out);
  assertEquals(rows.map((x: { name: string | null }) => x.name), [null, null, "base"]);
  assertEquals(rows[2].cached, 0);
  assertEquals(rows[1].cached, 1); // data is shared
  assertEquals(rows[2].test_loss, 0.3833333333333333 + 0.1);
  assert(rows[0].test_loss < rows[2].test_loss);
  assertEquals(typeof rows[0].category_accuracy, "number");
  const text = await cli(["runs", "--store", store]);
  assertStringIncludes(text.out, "test loss");
  assertStringIncludes(text.out, "base");
});

Deno.test("show RUN: steps with folders, dotted parameters, every metric, result paths", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await threeRuns(store);
  const r = await cli(["show", "base", "--store", store]);
  assertEquals(r.code, 0, r.err);
  for (
    const words of [
      "(base): succeeded",

      "evaluate.test_loss",
      "model   ",
      "best.safetensors",
      "report.html",
    ]
  ) assertStringIncludes(r.out, words);
  assert(/train\.lr +0\.001\n/.test(r.out), r.out);
  const missing = await cli(["show", "nosuch", "--store", store]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.err, 'no run named "nosuch"');
});

Deno.test("diff of two runs: shared steps, why the others differ, params, metric verdicts, tensors", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const [a, , c] = await threeRuns(store);
  const ra = await resolveRun(a, store), rc = await resolveRun(c, store);
  const d = await diffRuns(ra, rc, store);
  assertEquals(d.steps.map((s) => [s.step, s.shared]), [["data", true], ["train", false], [
    "evaluate",
    false,
  ]]);
  assertStringIncludes(d.steps[1].why!, "parameters changed (layers: 2 -> 4)");
  assertStringIncludes(d.steps[2].why!, "input changed (model)");
  assertEquals(d.params, [{ name: "train.layers", a: 2, b: 4 }]);
  const loss = d.metrics.find((m) => m.step === "evaluate" && m.name === "test_loss")!;
  assertEquals(loss.verdict, "better");
  assert(loss.change! < 0 && loss.relative! < 0);
  const acc = d.metrics.find((m) => m.name === "category_accuracy")!;
  assertEquals(acc.verdict, "better");
  const head = d.models.train.find((t) => t.name === "head.weight")!;
  assertEquals([head.shapeA, head.shapeB, head.max_abs_diff], [[2, 3], [4, 3], undefined]);
  const embed = d.models.train.find((t) => t.name === "embed.weight")!;
  assertEquals([embed.max_abs_diff, embed.relative_l2], [0, 0]);
  const md = renderDiffMarkdown(d);
  assertStringIncludes(md, "| train.layers | 2 | 4 |");
  assertStringIncludes(md, "| head.weight | [2, 3] | [4, 3] | shape changed |");
  // The same through the CLI, as JSON.
  const r = await cli(["diff", "base", "latest", "--store", store, "--json"]);
  assertEquals(r.code, 0, r.err);
  assertEquals(JSON.parse(r.out).params, d.params);
});

Deno.test("diff of two artifacts of one job; artifacts of two jobs are refused", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const s1 = await runExperiment(store);
  const s2 = await runExperiment(store, ["train.lr=0.002"]);
  const key = (s: typeof s1, step: string) => s.steps.find((x) => x.step === step)!.key!;
  const d = await diffArtifacts(
    join(store, "objects", key(s1, "train")),
    join(store, "objects", key(s2, "train")),
  );
  assertStringIncludes(d.steps[0].why!, "lr: 0.001 -> 0.002");
  const embed = d.models.train.find((t) => t.name === "embed.weight")!;
  assert(embed.max_abs_diff! > 0 && Math.abs(embed.relative_l2! - Math.SQRT1_2) < 1e-6);
  const r = await cli([
    "diff",
    key(s1, "train").slice(0, 10),
    key(s1, "evaluate").slice(0, 10),
    "--store",
    store,
  ]);
  assertEquals(r.code, 1);
  assertStringIncludes(r.err, "different jobs");
});

Deno.test("diff of scans and tokenizers: files added, removed, changed; categories; vocabulary", async () => {
  await using dir = await tempDir();
  const a = join(dir.path, "a"), b = join(dir.path, "b");
  await Deno.mkdir(a), await Deno.mkdir(b);
  const f = (path: string, sha256: string) => ({ path, sha256, category: path.split("/")[0] });
  await Deno.writeTextFile(
    join(a, "files.json"),
    JSON.stringify({
      files: [f("coin/1.wav", "x"), f("coin/2.wav", "y"), f("jump/1.wav", "z")],
      categories: { coin: 2, jump: 1 },
    }),
  );
  await Deno.writeTextFile(
    join(b, "files.json"),
    JSON.stringify({
      files: [f("coin/1.wav", "x"), f("coin/2.wav", "CHANGED"), f("laser/1.wav", "w")],
      categories: { coin: 2, laser: 1 },
    }),
  );
  assertEquals(await diffData(a, b), {
    files: [3, 3],
    added: ["laser/1.wav"],
    removed: ["jump/1.wav"],
    changed: ["coin/2.wav"],
    categories: [{ name: "coin", a: 2, b: 2 }, { name: "jump", a: 1, b: 0 }, {
      name: "laser",
      a: 0,
      b: 1,
    }],
  });
  for (
    const [d, k, cats, lsd] of [[a, 16, ["coin", "jump"], 9.5], [
      b,
      32,
      ["coin", "laser"],
      8,
    ]] as const
  ) {
    await Deno.writeTextFile(
      join(d, "tokenizer.json"),
      JSON.stringify({ kind: "mel-vq", codebook_size: k }),
    );
    await Deno.writeTextFile(
      join(d, "vocab.json"),
      JSON.stringify({ tokens: new Array(k + 4 + cats.length).fill("t"), categories: cats }),
    );
    await Deno.writeTextFile(
      join(d, "metrics.json"),
      JSON.stringify({ reconstruction_lsd_db: lsd }),
    );
  }
  assertEquals(await diffTokenizers(a, b), {
    kind: ["mel-vq", "mel-vq"],
    codebook_size: [16, 32],
    vocab_size: [22, 38],
    categories_added: ["laser"],
    categories_removed: ["jump"],
    reconstruction_lsd_db: [9.5, 8],
  });
});

Deno.test("metric directions: losses down, accuracies up, baselines and counts none", () => {
  const cases: [string, string | undefined][] = [
    ["test_loss", "lower"],
    ["best_val_loss", "lower"],
    ["test_perplexity", "lower"],
    ["reconstruction_lsd_db", "lower"],
    ["category_accuracy", "higher"],
    ["macro_f1", "higher"],
    ["generation_recognised", "higher"],
    ["test_loss_vs_bigram", "higher"],
    ["bigram_test_loss", undefined],
    ["chance_category_accuracy", undefined],
    ["code_perplexity", undefined],
    ["steps", undefined],
    ["train_seconds", undefined],
    ["generation_copies_of_train", "lower"],
    ["generation_judge_model_agreement", undefined],
    ["generation_judge_test_accuracy", undefined],
    ["test_sequences_in_train", undefined],
    ["test_unseen_loss", "lower"],
    ["test_unseen_category_accuracy", "higher"],
    ["bigram_test_unseen_loss", undefined],
  ];
  for (const [name, want] of cases) assertEquals(metricDirection(name), want, name);
});
