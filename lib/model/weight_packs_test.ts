import { assert, assertEquals } from "../../tests/assert.ts";
import type { TokenBatch } from "../data/types.ts";
import { isSoftwareAdapter, requestGpu } from "../gpu/device.ts";
import { Random } from "../random/mod.ts";
import type { SamOutConfig } from "./config.ts";
import { SamOutInference } from "./inference.ts";
import { parameterLayout } from "./layout.ts";
import { initParameters } from "./params.ts";
import { GraphResources } from "./resources.ts";
import { forwardWeightNames, WeightPacks } from "./weight_packs.ts";

// Awkward sizes: nothing is a multiple of a tile or workgroup.
const cfg: SamOutConfig = { vocabSize: 37, hidden: 24, heads: 4, layers: 2, maxPositions: 20 };

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function batch(seed: number, rows: number, length: number): TokenBatch {
  const rng = new Random(seed, "weight_packs_test");
  const tokens = Int32Array.from({ length: rows * length }, () => 1 + rng.int(cfg.vocabSize - 1));
  return { rows, length, tokens };
}

/** A compute pass that only counts dispatches (the packs' pipelines are real). */
function countingPass(): { pass: GPUComputePassEncoder; dispatches: () => number } {
  let n = 0;
  const pass = {
    setPipeline() {},
    setBindGroup() {},
    dispatchWorkgroups() {
      n++;
    },
  } as unknown as GPUComputePassEncoder;
  return { pass, dispatches: () => n };
}

Deno.test("weight packs: every forward weight is packed in the first recording after an upload, and not again until the next", async () => {
  const gpu = await requestGpu();
  const layout = parameterLayout(cfg);
  const res = new GraphResources(gpu);
  const params = res.buffer(layout.totalFloats, "params");
  const names = forwardWeightNames(cfg);
  assertEquals(
    names.length,
    cfg.layers * 7 + 1,
    "Down, head0..2, Ffn1, Gate, Ffn2 a layer, and the head",
  );
  const packs = new WeightPacks(gpu, layout, params, names);
  try {
    const { pass, dispatches } = countingPass();
    const expected = isSoftwareAdapter(gpu) ? names.length : 0;
    packs.encode(pass);
    assertEquals(dispatches(), expected, "the first recording packs every weight");
    packs.encode(pass);
    assertEquals(dispatches(), expected, "unchanged weights are not packed again");
    packs.invalidate();
    packs.encode(pass);
    assertEquals(dispatches(), 2 * expected, "an upload packs them again");
    for (const name of names) {
      assertEquals(packs.get(name) !== undefined, expected > 0, `${name}'s pack`);
    }
  } finally {
    packs.destroy();
    res.destroy();
  }
});

Deno.test("weight packs: a matrix the layout does not have is refused", async () => {
  const gpu = await requestGpu();
  const layout = parameterLayout(cfg);
  const res = new GraphResources(gpu);
  const params = res.buffer(layout.totalFloats, "params");
  try {
    let message = "";
    try {
      new WeightPacks(gpu, layout, params, ["decoder_layers.0.alpha"]).destroy();
    } catch (e) {
      message = (e as Error).message;
    }
    assert(message.includes("decoder_layers.0.alpha is not a matrix"), `the error: ${message}`);
  } finally {
    res.destroy();
  }
});

Deno.test("weight packs: after a second upload, score, logitsAt and a stepper made before it give a fresh model's results bit for bit", async () => {
  const gpu = await requestGpu();
  const first = initParameters(cfg, 5);
  const second = initParameters(cfg, 6);
  const opts = { config: cfg, maxBatch: 3, maxLength: 9 };
  const seq = batch(1, 3, 9);
  const picks = [{ row: 0, position: 8 }, { row: 2, position: 3 }];
  const ids = Int32Array.from([3, 7, 11]);
  const readouts = async (
    model: SamOutInference,
    stepper: Awaited<ReturnType<SamOutInference["createStepper"]>>,
  ) => {
    const score = await model.score(seq);
    const logits = await model.logitsAt(seq, picks);
    stepper.reset();
    stepper.step(ids);
    stepper.step(ids);
    return [bits(score.nll), bits(logits), bits(await stepper.readLogits())];
  };
  const reused = await SamOutInference.create(gpu, opts);
  const fresh = await SamOutInference.create(gpu, opts);
  const reusedStepper = await reused.createStepper(3);
  const freshStepper = await fresh.createStepper(3);
  try {
    reused.uploadWeights(first);
    const before = await readouts(reused, reusedStepper);
    reused.uploadWeights(second);
    const after = await readouts(reused, reusedStepper);
    fresh.uploadWeights(second);
    const expected = await readouts(fresh, freshStepper);
    for (const [i, what] of ["score", "logitsAt", "stepper"].entries()) {
      assertEquals(after[i], expected[i], `${what} after the second upload`);
      assert(
        before[i].some((b, j) => b !== after[i][j]),
        `${what} changed with the weights (the test's weights differ)`,
      );
    }
  } finally {
    reusedStepper.destroy();
    freshStepper.destroy();
    reused.destroy();
    fresh.destroy();
  }
});
