/**
 * The CPU reference against PyTorch: tests/fixtures/samout/ was made by
 * tools/make_fixtures.py (PyTorch 1.13, float64 from F32 weights). Tolerances
 * are relative to each tensor's largest magnitude.
 */
import { assert, assertAlmostEquals, assertClose, assertEquals } from "./assert.ts";
import {
  adamStep,
  clipGradNorm,
  type SamOutConfig,
  samoutForward,
  samoutLossAndGrads,
  teacherForcingSplit,
} from "../lib/model/mod.ts";
import {
  assertTensorsClose,
  fixture,
  init,
  readTensors,
  trained,
} from "./fixtures/samout_fixture.ts";

const B = fixture.batch.length;
const S1 = fixture.batch[0].length;
const seq = Int32Array.from(fixture.batch.flat());
const cfg: SamOutConfig = init.cfg;

function toF64(params: Map<string, Float32Array>): Map<string, Float64Array> {
  return new Map([...params].map(([k, v]) => [k, Float64Array.from(v)]));
}

Deno.test("fixture config is read from the checkpoint's shapes and metadata", () => {
  assertEquals(cfg, {
    vocabSize: fixture.config.vocab_size,
    hidden: fixture.config.hidden,
    heads: fixture.config.heads,
    layers: fixture.config.layers,
    maxPositions: fixture.config.max_positions,
  });
});

Deno.test("forward logits match PyTorch to 1e-5 relative", () => {
  const { input } = teacherForcingSplit(seq, B, S1);
  const { logits } = samoutForward(init.params, cfg, input, B, S1 - 1);
  const expected = readTensors("logits.safetensors").get("logits")!;
  assertClose(logits, expected.data, 1e-5, "logits");
});

Deno.test("loss, accuracy and every gradient match PyTorch to 1e-4 relative", () => {
  const r = samoutLossAndGrads(init.params, cfg, seq, B, S1);
  assertAlmostEquals(r.loss, fixture.loss, 1e-4 * fixture.loss, `loss ${r.loss}`);
  assertEquals(r.count, fixture.count);
  assertEquals(r.correct, fixture.correct);
  assertAlmostEquals(r.accuracy, fixture.accuracy, 1e-12);
  assertTensorsClose(r.grads, readTensors("grads.safetensors"), 1e-4, "gradient");
});

Deno.test("loss and a non-zero token accuracy match PyTorch at trained weights", () => {
  // At the initial weights the accuracy is 0 of 19; here it is neither 0 nor 1.
  assert(trained.correct > 0 && trained.correct < trained.count, "the fixture's accuracy");
  const r = samoutLossAndGrads(trained.params, cfg, seq, B, S1);
  assertAlmostEquals(r.loss, trained.loss, 1e-6 * trained.loss, `loss ${r.loss}`);
  assertEquals([r.correct, r.count], [trained.correct, trained.count]);
  assertAlmostEquals(r.accuracy, trained.accuracy, 1e-12);
});

/** Runs `steps` optimiser steps on the fixture batch; returns the weights and losses. */
function train(
  steps: number,
  opts: { lr: number; weightDecay: number; decoupled: boolean; maxNorm?: number },
): { params: Map<string, Float64Array>; losses: number[] } {
  const params = toF64(init.params);
  const m = new Map([...params].map(([k, v]) => [k, new Float64Array(v.length)]));
  const v = new Map([...params].map(([k, p]) => [k, new Float64Array(p.length)]));
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const r = samoutLossAndGrads(params, cfg, seq, B, S1);
    losses.push(r.loss);
    if (opts.maxNorm !== undefined) clipGradNorm(r.grads.values(), opts.maxNorm);
    for (const [name, p] of params) {
      adamStep(p, r.grads.get(name)!, m.get(name)!, v.get(name)!, {
        lr: opts.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: opts.weightDecay,
        decoupled: opts.decoupled,
        step,
      });
    }
  }
  return { params, losses };
}

function assertLosses(actual: number[], expected: number[]): void {
  assertEquals(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assertAlmostEquals(actual[i], expected[i], 1e-4 * expected[i], `loss at step ${i + 1}`);
  }
}

Deno.test("weights after 3 Adam steps match PyTorch to 1e-4 relative", () => {
  const { params, losses } = train(fixture.adam.steps, {
    lr: fixture.adam.lr,
    weightDecay: 0,
    decoupled: false,
  });
  assertLosses(losses, fixture.adam.losses);
  assertTensorsClose(params, readTensors("adam3.safetensors"), 1e-4, "Adam weights");
});

Deno.test("weights after 3 Adam steps with global-norm clipping match PyTorch", () => {
  const { params, losses } = train(fixture.adam_clip.steps, {
    lr: fixture.adam_clip.lr,
    weightDecay: 0,
    decoupled: false,
    maxNorm: fixture.adam_clip.max_norm,
  });
  assertLosses(losses, fixture.adam_clip.losses);
  assertTensorsClose(params, readTensors("adam3_clip.safetensors"), 1e-4, "clipped Adam weights");
});

Deno.test("weights after 3 AdamW steps match PyTorch to 1e-4 relative", () => {
  const { params, losses } = train(fixture.adamw.steps, {
    lr: fixture.adamw.lr,
    weightDecay: fixture.adamw.weight_decay,
    decoupled: true,
  });
  assertLosses(losses, fixture.adamw.losses);
  assertTensorsClose(params, readTensors("adamw3.safetensors"), 1e-4, "AdamW weights");
});
