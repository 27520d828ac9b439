import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import type { TokenBatch } from "../data/types.ts";
import { UserError } from "../errors/mod.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { defaultTile, type MatmulTiles } from "../gpu/ops/matmul.ts";
import { Random } from "../random/mod.ts";
import type { SamOutConfig } from "./config.ts";
import { type OptimizerSettings, SamOutTrainingGraph } from "./graph.ts";
import { initParameters } from "./params.ts";
import { adamStep, samoutForward, samoutLossAndGrads } from "./reference.ts";
import { allMatmulCandidates } from "../gpu/tuning.ts";

// Awkward sizes: nothing is a multiple of a tile or workgroup.
const cfg: SamOutConfig = { vocabSize: 37, hidden: 24, heads: 4, layers: 2, maxPositions: 20 };
const MAX_BATCH = 3;
const MAX_LENGTH = 14; // S = 13 input positions
const ADAM: OptimizerSettings = {
  kind: "adam",
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  clipNorm: null,
};

/** `rows` sequences padded with 0 to `length`; row r holds `lengths[r]` random non-pad tokens. */
function randomBatch(seed: number, length: number, lengths: number[]): TokenBatch {
  const rng = new Random(seed, "graph_test/batch");
  const tokens = new Int32Array(lengths.length * length);
  lengths.forEach((n, r) => {
    for (let t = 0; t < n; t++) tokens[r * length + t] = 1 + rng.int(cfg.vocabSize - 1);
  });
  return { rows: lengths.length, length, tokens };
}

async function newGraph(optimizer: Partial<OptimizerSettings> = {}): Promise<SamOutTrainingGraph> {
  return await SamOutTrainingGraph.create(await requestGpu(), {
    config: cfg,
    maxBatch: MAX_BATCH,
    maxLength: MAX_LENGTH,
    optimizer: { ...ADAM, ...optimizer },
  });
}

/** max |a - e| / max |e|. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assertEquals(actual.length, expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

function assertClose(
  actual: Map<string, ArrayLike<number>>,
  expected: Map<string, ArrayLike<number>>,
  tolerance: number,
  what: string,
): void {
  assertEquals([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: tensor names`);
  for (const [name, e] of expected) {
    const err = relativeError(actual.get(name)!, e);
    assert(err <= tolerance, `${what}: ${name} relative error ${err} > ${tolerance}`);
  }
}

const weights = initParameters(cfg, 11);
// Padding inside the batch: rows of 14, 9 and 5 tokens (S = 13).
const batchA = randomBatch(1, 14, [14, 9, 5]);
// A shorter batch with fewer rows: S = 6.
const batchB = randomBatch(2, 7, [7, 4]);

Deno.test("lossAndGrads matches the CPU reference on a padded batch (1e-4 relative)", async () => {
  const graph = await newGraph();
  try {
    graph.uploadWeights(weights);
    const gpu = await graph.lossAndGrads(batchA);
    const ref = samoutLossAndGrads(weights, cfg, batchA.tokens, batchA.rows, batchA.length);
    assertAlmostEquals(gpu.loss, ref.loss, 1e-4 * ref.loss, `loss ${gpu.loss} vs ${ref.loss}`);
    assertAlmostEquals(gpu.tokenAccuracy, ref.accuracy, 1e-7);
    assertClose(gpu.grads, ref.grads, 1e-4, "gradient");
    assertEquals(
      [...gpu.grads.get("em.weight")!.subarray(0, cfg.hidden)].every((x) => x === 0),
      true,
    );
  } finally {
    graph.destroy();
  }
});

Deno.test("two batches of different lengths in a row both match the reference", async () => {
  const graph = await newGraph();
  try {
    graph.uploadWeights(weights);
    for (const batch of [batchA, batchB, batchA]) {
      const gpu = await graph.lossAndGrads(batch);
      const ref = samoutLossAndGrads(weights, cfg, batch.tokens, batch.rows, batch.length);
      assertAlmostEquals(gpu.loss, ref.loss, 1e-4 * ref.loss, `length ${batch.length} loss`);
      // No stale gradient from the longer batch (pos rows >= S must be zero).
      assertClose(gpu.grads, ref.grads, 1e-4, `length ${batch.length} gradient`);
    }
  } finally {
    graph.destroy();
  }
});

Deno.test("weight gradients summed over several row blocks match the reference", async () => {
  // 40 x 13 = 520 rows: more than one 512-row block of the weight-gradient
  // products; then 39 x 11 = 429 rows, fewer blocks than the graph holds.
  const graph = await SamOutTrainingGraph.create(await requestGpu(), {
    config: cfg,
    maxBatch: 40,
    maxLength: MAX_LENGTH,
    optimizer: ADAM,
  });
  try {
    graph.uploadWeights(weights);
    const lengths = Array.from({ length: 40 }, (_, r) => 2 + (r * 5) % 13);
    for (const batch of [randomBatch(4, 14, lengths), randomBatch(5, 12, lengths.slice(0, 39))]) {
      const gpu = await graph.lossAndGrads(batch);
      const ref = samoutLossAndGrads(weights, cfg, batch.tokens, batch.rows, batch.length);
      assertAlmostEquals(gpu.loss, ref.loss, 1e-4 * ref.loss);
      assertClose(gpu.grads, ref.grads, 1e-4, `${batch.rows} x ${batch.length} gradient`);
    }
  } finally {
    graph.destroy();
  }
});

Deno.test("head0..2 not adjacent in the layout (d = 12): the stacked products' scratch copies match the reference", async () => {
  // With d = 12 a head weight is 576 bytes, padded to 768 in the layout, so
  // the backward copies the three into a [3d, d] scratch and the gradient
  // back out (backward.ts stackedHeads). Twice in a row, with the default
  // kernels and with the storage weight gradient (a chain of row blocks:
  // 40 x 14 rows are two), each step overwriting the scratch gradient.
  const small: SamOutConfig = { vocabSize: 23, hidden: 12, heads: 3, layers: 2, maxPositions: 20 };
  const w = initParameters(small, 5);
  const rng = new Random(9, "graph_test/d12");
  const rows = 40;
  const tokens = Int32Array.from(
    { length: rows * 14 },
    (_, i) => (i % 14 < 14 - (Math.floor(i / 14) % 9) ? 1 + rng.int(22) : 0),
  );
  const batch: TokenBatch = { rows, length: 14, tokens };
  const ref = samoutLossAndGrads(w, small, batch.tokens, batch.rows, batch.length);
  const gpu = await requestGpu();
  const storageTN = allMatmulCandidates().TN.find((c) => !c.tile.texture)!;
  for (const tiles of [undefined, { TN: storageTN.tile }]) {
    const graph = await SamOutTrainingGraph.create(gpu, {
      config: small,
      maxBatch: rows,
      maxLength: 14,
      optimizer: ADAM,
      ...(tiles && { tiles }),
    });
    try {
      graph.uploadWeights(w);
      for (let i = 0; i < 2; i++) {
        const got = await graph.lossAndGrads(batch);
        assertAlmostEquals(got.loss, ref.loss, 1e-4 * ref.loss);
        assertClose(got.grads, ref.grads, 1e-4, `${tiles ? "storage TN" : "default"} call ${i}`);
      }
    } finally {
      graph.destroy();
    }
  }
});

Deno.test("the hardware GPUs' product kernels give the graph the same loss and gradients, bit for bit", async () => {
  // Every candidate sums in the same order (matmul_test.ts checks the
  // products); here the whole graph, Down's position half included, runs on
  // them: the workgroup-memory kernels and a register-tiled storage one, and
  // the weight gradients' parallel row blocks.
  const gpu = await requestGpu();
  const build = (tiles?: MatmulTiles) =>
    SamOutTrainingGraph.create(gpu, {
      config: cfg,
      maxBatch: MAX_BATCH,
      maxLength: MAX_LENGTH,
      optimizer: ADAM,
      ...(tiles && { tiles }),
    });
  const run = async (tiles?: MatmulTiles) => {
    const graph = await build(tiles);
    try {
      graph.uploadWeights(weights);
      return await graph.lossAndGrads(batchA);
    } finally {
      graph.destroy();
    }
  };
  const base = await run();
  const all = allMatmulCandidates();
  const defaultTiles = (["NT", "NN", "TN"] as const).reduce(
    (t, kind) => ({ ...t, [kind]: defaultTile(gpu, kind) }),
    {} as MatmulTiles,
  );
  const candidates: [string, MatmulTiles][] = [
    ...all.NT.filter((c) => c.tile.workgroupK !== undefined || c.name === "storage 4x4 wg16x16")
      .map(({ name, tile }): [string, MatmulTiles] => [name, { NT: tile, NN: tile, TN: tile }]),
    ...all.TN.filter((c) => c.tile.blockParallel).map(({ name, tile }): [string, MatmulTiles] => [
      `TN ${name}`,
      { ...defaultTiles, TN: tile },
    ]),
  ];
  assert(candidates.length >= 5, "expected the hardware candidates");
  for (const [name, tiles] of candidates) {
    const got = await run(tiles);
    assertEquals(got.loss, base.loss, `${name}: loss`);
    for (const [tensor, g] of base.grads) {
      const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
      assertEquals(bits(got.grads.get(tensor)!), bits(g), `${name}: ${tensor} gradient bits`);
    }
  }
});

Deno.test("forwardLogits are the reference logits of seq[:, :-1], [rows, length-1, V]", async () => {
  const graph = await newGraph();
  try {
    graph.uploadWeights(weights);
    const logits = await graph.forwardLogits(batchB);
    const S = batchB.length - 1;
    const input = new Int32Array(batchB.rows * S);
    for (let b = 0; b < batchB.rows; b++) {
      input.set(batchB.tokens.subarray(b * batchB.length, b * batchB.length + S), b * S);
    }
    const ref = samoutForward(weights, cfg, input, batchB.rows, S).logits;
    assertEquals(logits.length, batchB.rows * S * cfg.vocabSize);
    const err = relativeError(logits, ref);
    assert(err < 1e-5, `logits relative error ${err}`);
  } finally {
    graph.destroy();
  }
});

Deno.test("a train step is Adam on the reference gradient; stats give its loss and norm", async () => {
  const graph = await newGraph();
  try {
    graph.uploadWeights(weights);
    const lr = 3e-3;
    graph.trainStep(batchA, lr);
    graph.trainStep(batchB, lr);
    const [s1, s2] = await graph.readTrainStats();
    const ref1 = samoutLossAndGrads(weights, cfg, batchA.tokens, batchA.rows, batchA.length);
    assertAlmostEquals(s1.loss, ref1.loss, 1e-4 * ref1.loss);
    let sq = 0;
    for (const g of ref1.grads.values()) for (const x of g) sq += x * x;
    assertAlmostEquals(s1.gradNorm, Math.sqrt(sq), 1e-4 * Math.sqrt(sq));
    assertEquals(s1.tokens, 13 + 8 + 4);
    // The CPU reference takes the same two Adam steps.
    const p = new Map([...weights].map(([k, v]) => [k, Float64Array.from(v)]));
    const m = new Map([...p].map(([k, v]) => [k, new Float64Array(v.length)]));
    const v = new Map([...p].map(([k, x]) => [k, new Float64Array(x.length)]));
    const opts = { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false };
    for (const [step, batch] of [[1, batchA], [2, batchB]] as const) {
      const r = samoutLossAndGrads(p, cfg, batch.tokens, batch.rows, batch.length);
      if (step === 2) assertAlmostEquals(s2.loss, r.loss, 1e-4 * r.loss);
      for (const [name, g] of r.grads) {
        adamStep(p.get(name)!, g, m.get(name)!, v.get(name)!, { ...opts, step });
      }
    }
    // Adam steps are ~lr in size: compare the update, not only the weights.
    const after = await graph.downloadWeights();
    for (const [name, w0] of weights) {
      const got = after.get(name)!.map((x, i) => x - w0[i]);
      const want = p.get(name)!.map((x, i) => x - w0[i]);
      const err = relativeError(got, want);
      assert(err < 2e-3, `${name}: update relative error ${err}`);
    }
    assertEquals(await graph.readTrainStats(), [], "stats reset after a read");
  } finally {
    graph.destroy();
  }
});

Deno.test("training is deterministic and resumes bit-identically from downloaded state", async () => {
  const run = async (
    steps: TokenBatch[],
    from?: {
      w: Map<string, Float32Array>;
      o: Awaited<ReturnType<SamOutTrainingGraph["downloadOptimizerState"]>>;
    },
  ) => {
    const graph = await newGraph({ clipNorm: 0.5 });
    try {
      graph.uploadWeights(from?.w ?? weights);
      if (from) graph.uploadOptimizerState(from.o);
      for (const b of steps) graph.trainStep(b, 1e-2);
      await graph.readTrainStats();
      return { w: await graph.downloadWeights(), o: await graph.downloadOptimizerState() };
    } finally {
      graph.destroy();
    }
  };
  const steps = [batchA, batchB, batchA, batchB];
  const a = await run(steps);
  const b = await run(steps);
  const half = await run(steps.slice(0, 2));
  const resumed = await run(steps.slice(2), half);
  assertEquals(a.o.step, 4);
  assertEquals(resumed.o.step, 4);
  for (const [name, w] of a.w) {
    assertEquals(b.w.get(name), w, `${name} differs between two identical runs`);
    assertEquals(resumed.w.get(name), w, `${name} differs after resuming`);
  }
});

Deno.test("the profiles train the step trainStep does and time every op", async () => {
  const run = async (how: "train" | "cpu" | "timestamps") => {
    const graph = await newGraph({ clipNorm: 0.5 });
    try {
      graph.uploadWeights(weights);
      let times: Record<string, number> | undefined;
      for (const b of [batchA, batchB]) {
        if (how === "train") graph.trainStep(b, 1e-2);
        else if (how === "cpu") times = await graph.profileStep(b, 1e-2);
        else times = await graph.profileStepTimestamps(b, 1e-2);
      }
      const stats = await graph.readTrainStats();
      return { w: await graph.downloadWeights(), stats, times };
    } finally {
      graph.destroy();
    }
  };
  const trained = await run("train");
  const kinds = ["cpu", ...((await requestGpu()).timestamps ? ["timestamps"] as const : [])];
  assert(kinds.includes("timestamps"), "the software test adapter offers timestamp queries");
  for (const how of kinds as ("cpu" | "timestamps")[]) {
    const profiled = await run(how);
    for (const [name, w] of trained.w) {
      assertEquals(profiled.w.get(name), w, `${how}: ${name} differs from trainStep's`);
    }
    assertEquals(profiled.stats, trained.stats, `${how}: train stats`);
    const times = profiled.times!;
    // Layers are summed under one name; every kind of op is there.
    for (const op of ["embedding", "head", "head.dw", "cross_entropy", "adam", "max_state"]) {
      assert(op in times, `${how}: no time for ${op} (${Object.keys(times).join(", ")})`);
    }
    assert(!Object.keys(times).some((k) => /\.\d+(\.|$)/.test(k)), `${how}: layer numbers`);
    for (const [op, ms] of Object.entries(times)) {
      assert(Number.isFinite(ms) && ms >= 0, `${how}: ${op} took ${ms} ms`);
    }
  }
});

Deno.test("readTrainStats returns every step in order past the accumulator's 256 slots", async () => {
  const graph = await SamOutTrainingGraph.create(await requestGpu(), {
    config: cfg,
    maxBatch: 1,
    maxLength: 4,
    optimizer: ADAM,
  });
  try {
    graph.uploadWeights(weights);
    const short = randomBatch(6, 4, [4]);
    const long = randomBatch(7, 4, [3]);
    // lr 0 keeps the weights, so each batch's loss repeats exactly.
    const steps = 300;
    for (let i = 0; i < steps; i++) graph.trainStep(i % 3 === 0 ? long : short, 0);
    const stats = await graph.readTrainStats();
    assertEquals(stats.length, steps);
    for (let i = 0; i < steps; i++) {
      assertEquals(stats[i].tokens, i % 3 === 0 ? 2 : 3, `step ${i} tokens`);
      assertEquals(stats[i].loss, stats[i % 3 === 0 ? 0 : 1].loss, `step ${i} loss`);
    }
    graph.trainStep(short, 0);
    assertEquals((await graph.readTrainStats()).map((s) => s.loss), [stats[1].loss]);
  } finally {
    graph.destroy();
  }
});

Deno.test("eval stats are the token-weighted loss of lossAndGrads over the batches", async () => {
  const graph = await newGraph();
  try {
    graph.uploadWeights(weights);
    const a = await graph.lossAndGrads(batchA);
    const b = await graph.lossAndGrads(batchB);
    graph.evalBatch(batchA);
    graph.evalBatch(batchB);
    const ev = await graph.readEvalStats();
    const na = 13 + 8 + 4;
    const nb = 6 + 3;
    assertEquals(ev.tokens, na + nb);
    assertAlmostEquals(ev.loss, (a.loss * na + b.loss * nb) / (na + nb), 1e-5);
    assertAlmostEquals(
      ev.accuracy,
      (a.tokenAccuracy * na + b.tokenAccuracy * nb) / (na + nb),
      1e-6,
    );
    graph.evalBatch(batchB);
    assertAlmostEquals((await graph.readEvalStats()).loss, b.loss, 1e-5, "eval stats reset");
  } finally {
    graph.destroy();
  }
});

Deno.test("batches the graph was not built for are UserErrors", async () => {
  const graph = await newGraph();
  try {
    const tooLong = randomBatch(3, MAX_LENGTH + 1, [MAX_LENGTH + 1]);
    assertThrows(() => graph.trainStep(tooLong, 1e-3), "at most 14");
    const tooMany = randomBatch(3, 5, [5, 5, 5, 5]);
    assertThrows(() => graph.evalBatch(tooMany), "at most 3");
    const bad = randomBatch(3, 5, [5]);
    bad.tokens[3] = cfg.vocabSize;
    const e = assertThrows(() => graph.trainStep(bad, 1e-3), "row 0, position 3");
    assert(e instanceof UserError);
    const missing = new Map(weights);
    missing.delete("head.weight");
    assertThrows(() => graph.uploadWeights(missing), "head.weight");
  } finally {
    graph.destroy();
  }
});

Deno.test("sizes over the adapter's binding limit are refused, naming the limit and what fits", async () => {
  const real = await requestGpu();
  // 64 KiB bindings: the logits [3 * 13, 1100] f32 (171,600 bytes) do not fit.
  const small = {
    ...real,
    limits: { maxStorageBufferBindingSize: 65536, maxBufferSize: 1 << 30 } as GPUSupportedLimits,
  } as Gpu;
  const e = await assertRejects(() =>
    SamOutTrainingGraph.create(small, {
      config: { ...cfg, vocabSize: 1100 },
      maxBatch: 3,
      maxLength: 14,
      optimizer: ADAM,
    }), "maxStorageBufferBindingSize");
  assert(e instanceof UserError);
  // 65536 / 4400 bytes per row = 14 rows: 1 sequence of 13 positions.
  assert(e.expected?.includes("at most 1 sequences"), e.expected);
  // A small vocabulary: the widest buffer is the backward's [df1 | dg] gradient, 4d floats a
  // row (d = 160: 2,560 bytes, 25 rows fit; [B*S, 2d] alone would have fitted 51).
  const wide = await assertRejects(() =>
    SamOutTrainingGraph.create(small, {
      config: { ...cfg, hidden: 160, heads: 4 },
      maxBatch: 3,
      maxLength: 14,
      optimizer: ADAM,
    }), "[B*S, 4d=640]");
  assert(wide instanceof UserError);
  assert(wide.expected?.includes("at most 1 sequences"), wide.expected);
});
