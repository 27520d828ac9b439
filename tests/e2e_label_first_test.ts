/**
 * End-to-end with the label-first layout (`<|im_start|> <category> <|wav|> audio… <|im_end|>`):
 * evaluate names categories by likelihood, generate puts the category in the prompt, and
 * classify scores each category's prompt.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { byStep, E2E_PIPELINE, readJson, sandbox } from "./fixtures/e2e/helpers.ts";

Deno.test("e2e: the label-first layout through evaluate, generate and classify", async () => {
  await using box = await sandbox();
  const store = join(box.path, "store");
  const run = await box.pipeline(E2E_PIPELINE, store, [
    "--set",
    "tokenize.layout=label-first",
    "--until",
    "evaluate",
  ]);
  assertEquals(run.code, 0, run.stderr);
  const keys = byStep(run.summary, "key");
  const metrics = await readJson<Record<string, unknown>>(
    join(store, "objects", keys.evaluate!, "metrics.json"),
  );
  assertEquals(metrics.layout, "label-first");
  assertStringIncludes(String(metrics.category_method), "likelihood");
  const test = metrics.test as { sequences: number; category: { confusion: number[][] } };
  assertEquals(test.category.confusion.flat().reduce((a, b) => a + b, 0), test.sequences);
  assert(
    metrics.bigram_category_accuracy === undefined,
    "no bigram category guess: it comes first",
  );
  // The judge (codebook log-mel) against the model's likelihood guess, on every test clip.
  const generation = metrics.generation as { judge_model_compared: number; layout: string };
  assertEquals(generation.judge_model_compared, test.sequences);
  assertEquals(generation.layout, "label-first");
  for (const name of ["generation_judge_model_agreement", "generation_copies_of_train"]) {
    const x = metrics[name];
    assert(typeof x === "number" && x >= 0 && x <= 1, `${name}: ${x}`);
  }

  const out = join(box.path, "gen");
  const gen = await box.cli([
    "generate",
    "--model",
    "latest",
    "--store",
    store,
    "--category",
    "jump",
    "--count",
    "2",
    "--out",
    out,
  ]);
  assertEquals(gen.code, 0, gen.stderr);
  const samples = await readJson<{ samples: { tokens: number[]; category_source: string }[] }>(
    join(out, "samples.json"),
  );
  assertEquals(samples.samples.length, 2, "a label-first model makes every sample asked for");
  const vocab = await readJson<{ categories: string[]; category_offset: number }>(
    join(store, "objects", keys.tokenize!, "vocab.json"),
  );
  for (const s of samples.samples) {
    assertEquals(s.category_source, "prompt");
    assertEquals(s.tokens.slice(0, 3), [
      1,
      vocab.category_offset + vocab.categories.indexOf("jump"),
      3,
    ]);
  }
  const audio = join(store, "objects", keys.synth!, "audio");
  const cls = await box.cli(["classify", "--model", "latest", "--store", store, audio]);
  assertEquals(cls.code, 0, cls.stderr);
  assertMatch(cls.stdout, /accuracy \d+\.\d% \(\d+\/24\)/);
});
