import { assert, assertEquals } from "../../tests/assert.ts";
import type { TokenBatch } from "../data/types.ts";
import { requestGpu } from "../gpu/device.ts";
import { Random } from "../random/mod.ts";
import type { SamOutConfig } from "./config.ts";
import { SamOutInference, topK } from "./inference.ts";
import { initParameters } from "./params.ts";
import { samoutForward, samoutInitialState, samoutStep } from "./reference.ts";

// Awkward sizes: nothing is a multiple of a tile or workgroup.
const cfg: SamOutConfig = { vocabSize: 37, hidden: 24, heads: 4, layers: 2, maxPositions: 20 };
const weights = initParameters(cfg, 5);

function randomBatch(seed: number, length: number, lengths: number[]): TokenBatch {
  const rng = new Random(seed, "inference_test/batch");
  const tokens = new Int32Array(lengths.length * length);
  lengths.forEach((n, r) => {
    for (let t = 0; t < n; t++) tokens[r * length + t] = 1 + rng.int(cfg.vocabSize - 1);
  });
  return { rows: lengths.length, length, tokens };
}

/** max |a - e| / max |e|; Infinity when any value is not finite or the lengths differ. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]) || !Number.isFinite(expected[i])) return Infinity;
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Reference per-position loss and hit of a teacher-forced batch, in float64. */
function referenceScores(batch: TokenBatch) {
  const S = batch.length - 1, V = cfg.vocabSize;
  const input = new Int32Array(batch.rows * S);
  const target = new Int32Array(batch.rows * S);
  for (let b = 0; b < batch.rows; b++) {
    for (let t = 0; t < S; t++) {
      input[b * S + t] = batch.tokens[b * batch.length + t];
      target[b * S + t] = batch.tokens[b * batch.length + t + 1];
    }
  }
  const logits = samoutForward(weights, cfg, input, batch.rows, S).logits;
  const nll = new Float64Array(batch.rows * S);
  const hit = new Uint8Array(batch.rows * S);
  for (let i = 0; i < nll.length; i++) {
    if (target[i] === 0) continue;
    const row = logits.subarray(i * V, (i + 1) * V);
    let max = -Infinity, arg = 0;
    row.forEach((x, v) => {
      if (x > max) [max, arg] = [x, v];
    });
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    nll[i] = max + Math.log(sum) - row[target[i]];
    hit[i] = arg === target[i] ? 1 : 0;
  }
  return { nll, hit, logits, input };
}

Deno.test("score: per-position loss and hits match the CPU reference; totals are their sums", async () => {
  const model = await SamOutInference.create(await requestGpu(), {
    config: cfg,
    maxBatch: 3,
    maxLength: 14,
  });
  try {
    model.uploadWeights(weights);
    const batch = randomBatch(1, 14, [14, 9, 5]);
    const got = await model.score(batch);
    const ref = referenceScores(batch);
    const err = relativeError(got.nll, ref.nll);
    assert(err < 1e-5, `per-position loss relative error ${err}`);
    assertEquals(got.tokens, 13 + 8 + 4);
    const refSum = ref.nll.reduce((a, b) => a + b, 0);
    assert(Math.abs(got.lossSum - refSum) / refSum < 1e-5, `loss sum ${got.lossSum} vs ${refSum}`);
    assertEquals(Array.from(got.hit), Array.from(ref.hit));
    assertEquals(got.correct, ref.hit.reduce((a, b) => a + b, 0));
    // Padding targets contribute nothing.
    assertEquals(got.nll[1 * 13 + 8], 0);
    assertEquals(got.nll[2 * 13 + 12], 0);
  } finally {
    model.destroy();
  }
});

Deno.test("logitsAt returns the reference logits of the chosen positions only", async () => {
  const model = await SamOutInference.create(await requestGpu(), {
    config: cfg,
    maxBatch: 2,
    maxLength: 11,
    maxPicks: 5,
  });
  try {
    model.uploadWeights(weights);
    const inputs = randomBatch(3, 11, [11, 7]);
    const picks = [{ row: 0, position: 10 }, { row: 1, position: 6 }, { row: 0, position: 0 }];
    const got = await model.logitsAt(inputs, picks);
    const ref = samoutForward(weights, cfg, inputs.tokens, 2, 11).logits;
    const V = cfg.vocabSize;
    const expected = new Float64Array(picks.length * V);
    picks.forEach((p, i) => {
      const o = (p.row * 11 + p.position) * V;
      expected.set(ref.subarray(o, o + V), i * V);
    });
    assertEquals(got.length, picks.length * V);
    const err = relativeError(got, expected);
    assert(err < 1e-5, `picked logits relative error ${err}`);
    const top = topK(got.subarray(0, V), 3);
    const refTop = topK(new Float32Array(expected.subarray(0, V)), 3);
    assertEquals(top.map((x) => x.id), refTop.map((x) => x.id));
    await assertRejectsMessage(() => model.logitsAt(inputs, [{ row: 2, position: 0 }]), "outside");
  } finally {
    model.destroy();
  }
});

Deno.test("the step form gives the full forward's logits position by position, and the reference state", async () => {
  const gpu = await requestGpu();
  const model = await SamOutInference.create(gpu, { config: cfg, maxBatch: 3, maxLength: 13 });
  const stepper = await model.createStepper(3);
  try {
    model.uploadWeights(weights);
    const rows = 3, S = 13, V = cfg.vocabSize;
    const seq = randomBatch(4, S, [13, 13, 13]);
    const full = await model.logitsAt(
      seq,
      Array.from({ length: rows }, (_, row) => ({ row, position: 0 })),
    );
    const fullRef = samoutForward(weights, cfg, seq.tokens, rows, S).logits;
    const state = samoutInitialState(cfg, rows);
    let worst = 0;
    for (let t = 0; t < S; t++) {
      const ids = new Int32Array(rows);
      for (let b = 0; b < rows; b++) ids[b] = seq.tokens[b * S + t];
      stepper.step(ids);
      const got = await stepper.readLogits();
      const refStep = samoutStep(weights, cfg, state, ids);
      const fromFull = new Float64Array(rows * V);
      for (let b = 0; b < rows; b++) {
        fromFull.set(fullRef.subarray((b * S + t) * V, (b * S + t + 1) * V), b * V);
      }
      worst = Math.max(worst, relativeError(got, fromFull), relativeError(got, refStep));
      if (t === 0) assert(relativeError(full, fromFull) < 1e-5, "full forward at position 0");
    }
    assert(worst < 1e-5, `step-form logits relative error ${worst}`);
    const m = await stepper.readState();
    const refM = new Float64Array(cfg.layers * rows * cfg.hidden);
    state.m.forEach((x, l) => refM.set(x, l * rows * cfg.hidden));
    assert(relativeError(m, refM) < 1e-5, "running-max state");
    assertEquals(stepper.position, S);
    stepper.reset();
    assertEquals(stepper.position, 0);
    const first = new Int32Array(rows);
    for (let b = 0; b < rows; b++) first[b] = seq.tokens[b * S];
    stepper.step(first);
    const again = await stepper.readLogits();
    const ref0 = new Float64Array(rows * V);
    for (let b = 0; b < rows; b++) ref0.set(fullRef.subarray(b * S * V, (b * S + 1) * V), b * V);
    assert(relativeError(again, ref0) < 1e-5, "after reset the first step starts afresh");
  } finally {
    stepper.destroy();
    model.destroy();
  }
});

Deno.test("the inference model refuses batches it was not built for", async () => {
  const model = await SamOutInference.create(await requestGpu(), {
    config: cfg,
    maxBatch: 2,
    maxLength: 6,
  });
  try {
    model.uploadWeights(weights);
    await assertRejectsMessage(() => model.score(randomBatch(1, 7, [7])), "at most 6");
    await assertRejectsMessage(() => model.score(randomBatch(1, 5, [5, 5, 5])), "at most 2");
    const bad = randomBatch(1, 5, [5]);
    bad.tokens[3] = 99;
    await assertRejectsMessage(() => model.score(bad), "row 0, position 3");
  } finally {
    model.destroy();
  }
});

async function assertRejectsMessage(fn: () => Promise<unknown>, includes: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(String(e).includes(includes), `expected an error containing "${includes}", got ${e}`);
    return;
  }
  throw new Error(`expected a rejection containing "${includes}"`);
}
