import { assertAlmostEquals, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { createStorageBufferFrom, type Gpu, readFloat32, requestGpu } from "../device.ts";
import { createStatsBuffer, readStats } from "./cross_entropy.ts";
import { bindingSegments, createGradNorm, NORM_CHUNK, NORM_RESULT } from "./grad_norm.ts";
import { packTensors, randomUniform, recordSteps, runSteps } from "./test_helpers.ts";

/** Awkward length: three whole chunks and a ragged tail. */
const COUNT = 3 * NORM_CHUNK + 123;

function l2(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

/** Runs the step on `grad` (packed at a non-zero offset) and returns [norm, clipScale] and the stats. */
async function normOf(
  g: Gpu,
  grad: Float32Array<ArrayBuffer>,
  clipNorm: number | null,
  maxBindingBytes?: number,
  recorded = false,
) {
  const packed = packTensors(g, [grad], 768);
  const stats = createStatsBuffer(g, 2);
  const step = createGradNorm(g, {
    grad: packed.slices[0],
    count: grad.length,
    stats,
    clipNorm,
    maxBindingBytes,
  });
  if (recorded && !step.encodeCommands) throw new Error("expected the texture form");
  await (recorded ? recordSteps : runSteps)(g, [[step, { slot: 1 }]]);
  const result = await readFloat32(g, step.result, 2);
  const slots = await readStats(g, stats, 2);
  step.destroy();
  stats.destroy();
  packed.buffer.destroy();
  return { result, slots };
}

Deno.test("gradNorm: the norm matches the f64 L2 norm and is added to the stats slot", async () => {
  const g = await requestGpu();
  const grad = randomUniform(new Random(1, "grad_norm_test"), COUNT);
  const { result, slots } = await normOf(g, grad, null);
  const expected = l2(grad);
  assertAlmostEquals(result[NORM_RESULT.norm], expected, 1e-6 * expected);
  assertEquals(result[NORM_RESULT.clipScale], 1, "no clipping: scale 1");
  assertEquals(slots[1].gradNorm, result[NORM_RESULT.norm]);
  assertEquals(slots[0].gradNorm, 0, "other slot untouched");
});

Deno.test("gradNorm: clipScale is min(1, clipNorm / (norm + 1e-6))", async () => {
  const g = await requestGpu();
  const grad = randomUniform(new Random(2, "grad_norm_test"), COUNT);
  const norm = l2(grad);
  const clipped = await normOf(g, grad, norm / 4);
  assertAlmostEquals(clipped.result[NORM_RESULT.clipScale], (norm / 4) / (norm + 1e-6), 1e-6);
  const unclipped = await normOf(g, grad, norm * 2);
  assertEquals(unclipped.result[NORM_RESULT.clipScale], 1, "a norm under the limit is not scaled");
});

Deno.test("gradNorm: bound in several segments, the result is bit-identical", async () => {
  const g = await requestGpu();
  const grad = randomUniform(new Random(3, "grad_norm_test"), COUNT);
  const whole = await normOf(g, grad, 1);
  const split = await normOf(g, grad, 1, NORM_CHUNK * 4);
  assertEquals(bindingSegments(COUNT, NORM_CHUNK * 4, NORM_CHUNK).length, 4);
  assertEquals(Array.from(split.result), Array.from(whole.result));
  const again = await normOf(g, grad, 1);
  assertEquals(Array.from(again.result), Array.from(whole.result), "run to run");
});

Deno.test("gradNorm: reading the gradient through a texture copy gives the same bits", async () => {
  const g = await requestGpu();
  const grad = randomUniform(new Random(4, "grad_norm_test"), COUNT + 1); // whole texels
  // The copy shares a scratch texture with other kernels: fill it past this gradient's end
  // first, so that reading past the end (the last chunk is ragged) would show.
  const longer = randomUniform(new Random(5, "grad_norm_test"), COUNT + 1 + 2 * NORM_CHUNK);
  await normOf(g, longer.map((v) => v * 1000), 1, undefined, true);
  const storage = await normOf(g, grad, 1);
  const textured = await normOf(g, grad, 1, undefined, true);
  assertEquals(Array.from(textured.result), Array.from(storage.result));
  assertEquals(textured.slots[1].gradNorm, storage.slots[1].gradNorm);
});

Deno.test("gradNorm: an all-zero gradient has norm 0 and scale 1", async () => {
  const g = await requestGpu();
  const grad = createStorageBufferFrom(g, new Float32Array(777), "grad");
  const stats = createStatsBuffer(g, 1);
  const step = createGradNorm(g, { grad, count: 777, stats, clipNorm: 1 });
  await runSteps(g, [[step, { slot: 0 }]]);
  assertEquals(Array.from(await readFloat32(g, step.result, 2)), [0, 1]);
  step.destroy();
  stats.destroy();
  grad.destroy();
});

Deno.test("bindingSegments: refuses a binding smaller than one block", () => {
  assertThrows(() => bindingSegments(100, 1000, NORM_CHUNK), "below one block");
});
