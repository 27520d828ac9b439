import { join } from "node:path";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { assertStringIncludes } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import type { SamOutConfig } from "../model/config.ts";
import { initParameters } from "../model/params.ts";
import { samoutLossAndGrads } from "../model/reference.ts";
import { readSafetensors, samoutToSafetensors, writeSafetensors } from "../model/safetensors.ts";
import { main, modelInfo, modelLoss, parseBatch } from "./model.ts";

const cfg: SamOutConfig = { vocabSize: 29, hidden: 12, heads: 3, layers: 1, maxPositions: 9 };

Deno.test("parseBatch pads rows with 0 to the longest", () => {
  const b = parseBatch("[[1, 2, 3], [4, 5]]", cfg, "b.json");
  assertEquals(b, { rows: 2, length: 3, tokens: Int32Array.from([1, 2, 3, 4, 5, 0]) });
});

Deno.test("parseBatch rejects bad batch files with UserErrors naming the file and place", () => {
  const cases: [string, string][] = [
    ['{"a": 1}', "non-empty list of sequences"],
    ["[]", "non-empty list of sequences"],
    ["[[1, 2], 3]", "row 1 of the batch is not a list"],
    ["[[1, 2.5]]", "bad token id at row 0, column 1"],
    ["[[1, 2], [3, 29]]", "bad token id at row 1, column 1"],
    ["[[1, -1]]", "bad token id at row 0, column 1"],
    ['[[1, "2"]]', "bad token id at row 0, column 1"],
    ["[[1]]", "no sequence of two or more tokens"],
    [JSON.stringify([Array(11).fill(1)]), "longer than the model's positions"],
    ["[[1, 2]", "not valid JSON"],
  ];
  for (const [text, message] of cases) {
    const e = assertThrows(() => parseBatch(text, cfg, "b.json"), message);
    assert(e instanceof UserError && e.location.file === "b.json", text);
  }
  // P + 1 = 10 tokens is the longest accepted.
  assertEquals(parseBatch(JSON.stringify([Array(10).fill(1)]), cfg, "b.json").length, 10);
});

Deno.test("model loss on the GPU matches the CPU reference and writes the gradients", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const weights = initParameters(cfg, 4);
    const wPath = join(dir, "w.safetensors");
    await Deno.writeFile(wPath, samoutToSafetensors(cfg, weights));
    const rows = [[1, 5, 9, 2, 7], [3, 4, 28], [6, 6]];
    const bPath = join(dir, "batch.json");
    await Deno.writeTextFile(bPath, JSON.stringify(rows));
    const gPath = join(dir, "grads.safetensors");
    const result = await modelLoss({ weights: wPath, batch: bPath, grads: gPath });
    const seq = Int32Array.from([1, 5, 9, 2, 7, 3, 4, 28, 0, 0, 6, 6, 0, 0, 0]);
    const ref = samoutLossAndGrads(weights, cfg, seq, 3, 5);
    assertAlmostEquals(result.loss, ref.loss, 1e-4 * ref.loss);
    assertAlmostEquals(result.token_accuracy, ref.accuracy, 1e-7);
    const grads = readSafetensors(await Deno.readFile(gPath), { file: gPath }).tensors;
    assertEquals(grads.size, weights.size);
    const g = grads.get("down.0.weight")!;
    assertEquals(g.shape, [12, 24]);
    const want = ref.grads.get("down.0.weight")!;
    let err = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(g.data[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    assert(err <= 1e-4 * scale, `down.0.weight gradient error ${err} (scale ${scale})`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model loss needs the head count from the metadata or --heads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const weights = initParameters(cfg, 4);
    // A checkpoint whose metadata lacks num_heads.
    const full = readSafetensors(samoutToSafetensors(cfg, weights), { file: "x" }).tensors;
    const bytes = writeSafetensors(
      [...full].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
      { voc_size: "29" },
    );
    const wPath = join(dir, "w.safetensors");
    await Deno.writeFile(wPath, bytes);
    const bPath = join(dir, "batch.json");
    await Deno.writeTextFile(bPath, "[[1, 2, 3]]");
    assertEquals(await main(["loss", "--weights", wPath, "--batch", bPath]), 1);
    const r = await modelLoss({ weights: wPath, batch: bPath, heads: 3 });
    assert(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model info lists sizes, tensors, metadata and the vocabulary beside the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const wPath = join(dir, "best.safetensors");
    await Deno.writeFile(wPath, samoutToSafetensors(cfg, initParameters(cfg, 1)));
    const tokens = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|wav|>", "dog", "cat"];
    for (let i = 0; i < 23; i++) tokens.push(String(i));
    await Deno.writeTextFile(
      join(dir, "vocab.json"),
      JSON.stringify({
        tokens,
        categories: ["cat", "dog"],
        layout: "seed",
        codebook_size: 23,
        code_offset: 6,
      }),
    );
    const text = await modelInfo(wPath);
    for (
      const part of [
        "V = 29",
        "d = 12",
        "H = 3",
        "L = 1",
        "P = 9",
        "decoder_layers.0.ffn.ffn1.weight",
        "[24, 12]",
        "num_heads = 3",
        "29 tokens, layout seed",
        "2 categories: cat, dog",
      ]
    ) assertStringIncludes(text, part);
    assertEquals(await main(["info", join(dir, "missing.safetensors")]), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
