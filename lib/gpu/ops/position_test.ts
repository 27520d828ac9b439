import { assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import {
  createBatchSum,
  createDownHalves,
  createDownMerge,
  createPositionBroadcast,
} from "./position.ts";
import {
  assertBitIdentical,
  pack,
  randomNormal,
  readPacked,
  recordSteps,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

const B = 3, S = 13, P = 17;
/** d = 20: the vec4 kernels (4 channels per invocation); 18: the scalar ones. */
const D = [20, 18];

for (const d of D) {
  Deno.test(`Down's halves: the split copies columns 0..d-1 and d..2d-1, the merge writes them back (d ${d})`, async () => {
    const gpu = await testGpu();
    const rng = new Random(5, "position-halves");
    const weight = randomNormal(rng, d * 2 * d);
    const p = pack(gpu, [
      weight,
      new Float32Array(d * d),
      new Float32Array(d * d),
      new Float32Array(d * 2 * d).fill(7),
    ], "t");
    const [w, left, right, merged] = p.slices;
    const split = createDownHalves(gpu, { weight: w, position: left, hidden: right, d });
    const merge = createDownMerge(gpu, { position: left, hidden: right, grad: merged, d });
    await runSteps(gpu, [[split, undefined], [merge, undefined]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    const expectLeft = new Float32Array(d * d), expectRight = new Float32Array(d * d);
    for (let j = 0; j < d; j++) {
      expectLeft.set(weight.subarray(j * 2 * d, j * 2 * d + d), j * d);
      expectRight.set(weight.subarray(j * 2 * d + d, (j + 1) * 2 * d), j * d);
    }
    assertBitIdentical(r.f32(1), expectLeft, "Down_p");
    assertBitIdentical(r.f32(2), expectRight, "Down_h");
    assertBitIdentical(r.f32(3), weight, "merged [d, 2d]");
    split.destroy();
    merge.destroy();
    p.buffer.destroy();
  });
}

// "recorded": as the graphs record them (the vec4 kernels read texture copies of their inputs).
for (const [d, recorded] of [[D[0], false], [D[1], false], [D[0], true]] as const) {
  Deno.test(`position broadcast gives every batch row its position's row (d ${d}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const pp = randomNormal(new Random(6, "position-broadcast"), S * d);
    const p = pack(gpu, [pp, new Float32Array(B * S * d).fill(7)], "t");
    const step = createPositionBroadcast(gpu, {
      pp: p.slices[0],
      out: p.slices[1],
      d,
      P,
      maxRows: B * S,
    });
    if (recorded) assertEquals(step.encodeCommands !== undefined, true, "texture form");
    await (recorded ? recordSteps : runSteps)(gpu, [[step, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    const expected = new Float32Array(B * S * d);
    for (let b = 0; b < B; b++) expected.set(pp, b * S * d);
    assertBitIdentical(r.f32(1), expected, "out");
    step.destroy();
    p.buffer.destroy();
  });

  Deno.test(`batch sum adds each position's rows over b = 0, 1, … in order (d ${d}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const g = randomNormal(new Random(7, "position-batch-sum"), B * S * d);
    const p = pack(gpu, [g, new Float32Array(P * d).fill(7)], "t");
    const step = createBatchSum(gpu, { g: p.slices[0], sum: p.slices[1], d, P, maxRows: B * S });
    if (recorded) assertEquals(step.encodeCommands !== undefined, true, "texture form");
    await (recorded ? recordSteps : runSteps)(gpu, [[step, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    const expected = new Float32Array(P * d).fill(7);
    for (let j = 0; j < S * d; j++) {
      let total = 0;
      for (let b = 0; b < B; b++) total = Math.fround(total + g[b * S * d + j]);
      expected[j] = total;
    }
    assertBitIdentical(r.f32(1), expected, "sum (rows t >= S untouched)");
    step.destroy();
    p.buffer.destroy();
  });
}

Deno.test("position broadcast and batch sum reject a sequence longer than P", async () => {
  const gpu = await testGpu();
  const d = D[0];
  const p = pack(gpu, [new Float32Array(P * d), new Float32Array(100 * d)], "t");
  const steps = [
    createPositionBroadcast(gpu, { pp: p.slices[0], out: p.slices[1], d, P, maxRows: 100 }),
    createBatchSum(gpu, { g: p.slices[1], sum: p.slices[0], d, P, maxRows: 100 }),
  ];
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const step of steps) {
    assertThrows(
      () => step.encode(pass, { B: 1, S: P + 1 }),
      `S = ${P + 1}, expected an integer in [0, ${P}]`,
    );
  }
  pass.end();
  for (const step of steps) step.destroy();
  p.buffer.destroy();
});

Deno.test("batch sum of an empty batch writes nothing", async () => {
  const gpu = await testGpu();
  const d = D[0];
  const p = pack(gpu, [new Float32Array(B * S * d), new Float32Array(P * d).fill(7)], "t");
  const step = createBatchSum(gpu, { g: p.slices[0], sum: p.slices[1], d, P, maxRows: B * S });
  await runSteps(gpu, [[step, { B: 0, S }]]);
  const r = await readPacked(gpu, p);
  assertClose(r.f32(1), new Float32Array(P * d).fill(7), 0, "sum");
  step.destroy();
  p.buffer.destroy();
});
