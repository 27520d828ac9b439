/**
 * The export bundle (lib/export/bundle.ts) from hand-made train, tokenize and
 * evaluate artifacts of a tiny model: its files, its model card, that it
 * works when copied away from its inputs, and the input checks.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { TINY, tinyWeights, writeTinyArtifacts } from "./export_fixture.ts";
import { UserError } from "../lib/errors/mod.ts";
import { exportBundle, type ExportBundleOptions } from "../lib/export/mod.ts";
import { requestGpu } from "../lib/gpu/device.ts";
import { samoutFromSafetensors } from "../lib/model/safetensors.ts";
import { openTokenizerDir } from "../lib/tokenizers/mod.ts";

async function withDirs<T>(f: (root: string) => Promise<T>): Promise<T> {
  const root = await Deno.makeTempDir();
  try {
    return await f(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function options(root: string): Promise<ExportBundleOptions> {
  const inputs = await writeTinyArtifacts(join(root, "inputs"));
  const outDir = join(root, "bundle"), workDir = join(root, "work");
  await Deno.mkdir(outDir);
  await Deno.mkdir(workDir);
  return {
    ...inputs,
    outDir,
    workDir,
    gpu: await requestGpu(),
    tolerance: 1e-4,
    webgpu: "auto",
    checkRows: 3,
    sources: { model: "a".repeat(64) },
  };
}

Deno.test("exportBundle: a checked, self-contained bundle with a model card", async () => {
  await withDirs(async (root) => {
    const opts = await options(root);
    const { metrics, check } = await exportBundle(opts);
    const files = [];
    for await (const e of Deno.readDir(opts.outDir)) files.push(e.name);
    assertEquals(files.sort(), [
      "README.md",
      "check.json",
      "codebook.f32",
      "config.json",
      "model.onnx",
      "model.safetensors",
      "model.step.onnx",
      "samout.py",
      "tokenizer.json",
      "vocab.json",
    ]);
    assert(check.max_relative_error < 1e-5, `max relative error ${check.max_relative_error}`);
    assertEquals(metrics.check_max_relative_error, check.max_relative_error);
    assertEquals(metrics.webgpu_all_nodes_on_gpu, true, "the WebGPU backend ran on this machine");
    assertEquals(check.webgpu.ran, true);
    assertEquals(
      check.comparisons.filter((c) => c.backend === "webgpu").map((c) => c.batch),
      [
        "sequences [3 x 20]",
        "sequences [3 x 20]",
        "sequences [3 x 20]",
        "long [1 x 20]",
      ],
    );

    // Copied anywhere, it needs nothing else: weights, sizes, tokenizer.
    const copy = join(root, "elsewhere");
    await Deno.mkdir(copy);
    for (const f of files) await Deno.copyFile(join(opts.outDir, f), join(copy, f));
    await Deno.remove(join(root, "inputs"), { recursive: true });
    const { cfg, params } = samoutFromSafetensors(
      await Deno.readFile(join(copy, "model.safetensors")),
      { file: "model.safetensors" },
    );
    assertEquals(cfg, TINY);
    const expected = tinyWeights();
    for (const [name, values] of params) assertEquals(values, expected.get(name), name);
    const config = JSON.parse(await Deno.readTextFile(join(copy, "config.json")));
    assertEquals(config, {
      voc_size: 37,
      hidden_size: 24,
      num_heads: 4,
      num_layers: 2,
      max_positions: 20,
      parameters: config.parameters,
    });
    const opened = await openTokenizerDir(copy);
    assertEquals([opened.tokenizer.kind, opened.vocab.categories], ["mel-vq", [
      "coin",
      "jump",
      "laser",
    ]]);
    await opened.tokenizer.close();

    const examples = JSON.parse(await Deno.readTextFile(join(copy, "check.json"))).examples;
    assertEquals(examples.ids.length, 3);
    assertEquals(examples.picks[0].logits.length, TINY.vocabSize);

    const card = await Deno.readTextFile(join(copy, "README.md"));
    const checked = JSON.parse(await Deno.readTextFile(join(copy, "check.json")));
    assert(/^\d+\.\d+\.\d+/.test(checked.onnxruntime_web), checked.onnxruntime_web);
    for (
      const text of [
        "vocabulary V = 37, hidden d = 24, heads H = 4 (head size 6), layers L = 2, maximum positions P = 20",
        "| loss (nats/token) | 2.500 | bigram 2.750, unigram 3.400, uniform 3.611 |",
        "| token accuracy | 42.0% | repeat-previous 31.0%, bigram 40.0% |",
        "| category accuracy | 80.0% | chance 33.3%, majority 40.0% |",
        "- sequences: 3 train, 5 test (split by file)",
        "WebGPU backend: every node of both models ran on the GPU",
        "samout.SamOut.from_bundle",
        'ort.InferenceSession("model.onnx")',
        'import * as ort from "onnxruntime-web";',
        'InferenceSession.create(await readFile("model.onnx")',
        `"npm:onnxruntime-web@${checked.onnxruntime_web}/webgpu"`,
        "stopped early (no validation improvement for `patience` evaluations)",
        "deno task tokens to-audio --tokenizer .",
        "deno task generate --model . --category coin --count 4",
        "4 Pad, Slice and Max".replace("4 ", "") +
        " by log-step doubling (5 steps, enough for 20 positions)",
        `- model: artifact \`${"a".repeat(64)}\``,
      ]
    ) assertStringIncludes(card, text);
  });
});

Deno.test("exportBundle: a model trained on another vocabulary than the tokenizer's is a UserError", async () => {
  await withDirs(async (root) => {
    const opts = await options(root);
    const vocabFile = join(opts.modelDir, "vocab.json");
    const vocab = JSON.parse(await Deno.readTextFile(vocabFile));
    vocab.categories = ["coin", "jump", "zap"];
    vocab.tokens[6] = "zap";
    await Deno.writeTextFile(vocabFile, JSON.stringify(vocab));
    const e = await assertRejects(() => exportBundle(opts));
    assert(e instanceof UserError, String(e));
    assertEquals(e.location.file, vocabFile);
    assertStringIncludes(e.message, "another vocabulary");
  });
});

Deno.test("exportBundle: a config.json that disagrees with the checkpoint is a UserError", async () => {
  await withDirs(async (root) => {
    const opts = await options(root);
    const file = join(opts.modelDir, "config.json");
    const config = JSON.parse(await Deno.readTextFile(file));
    await Deno.writeTextFile(file, JSON.stringify({ ...config, num_heads: 8 }));
    const e = await assertRejects(() => exportBundle(opts));
    assert(e instanceof UserError, String(e));
    assertEquals([e.location.file, e.location.field, e.found], [file, "num_heads", "8"]);
  });
});
