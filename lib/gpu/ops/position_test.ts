import { assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { concatPositionHidden, concatPositionHiddenBackward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createPositionConcat, createPositionConcatBackward } from "./position.ts";
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
const d = D[0];

// "recorded": as the graphs record them (the vec4 kernels read texture copies of their inputs).
for (const [d, recorded] of [[D[0], false], [D[1], false], [D[0], true]] as const) {
  Deno.test(`position concat puts Pos[t] first, then h[b, t] (d ${d}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const rng = new Random(5, "position-forward");
    const pos = randomNormal(rng, P * d);
    const h = randomNormal(rng, B * S * d);
    const p = pack(gpu, [pos, h, new Float32Array(B * S * 2 * d)], "t");
    const step = createPositionConcat(gpu, {
      pos: p.slices[0],
      h: p.slices[1],
      out: p.slices[2],
      d,
      P,
      maxRows: B * S,
    });
    if (recorded) assertEquals(step.encodeCommands !== undefined, true, "texture form");
    await (recorded ? recordSteps : runSteps)(gpu, [[step, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    assertClose(r.f32(2), concatPositionHidden(pos, h, B, S, d), 0, "concat(p, h)");
    step.destroy();
    p.buffer.destroy();
  });
}

async function runBackward(
  dcat: Float32Array<ArrayBuffer>,
  dPos0: Float32Array<ArrayBuffer>,
  d = D[0],
  recorded = false,
) {
  const gpu = await testGpu();
  const p = pack(gpu, [dcat, new Float32Array(B * S * d), dPos0], "t");
  const step = createPositionConcatBackward(gpu, {
    dcat: p.slices[0],
    dh: p.slices[1],
    dPos: p.slices[2],
    d,
    P,
    maxRows: B * S,
  });
  if (recorded) assertEquals(step.encodeCommands !== undefined, true, "texture form");
  await (recorded ? recordSteps : runSteps)(gpu, [[step, { B, S }]]);
  const r = await readPacked(gpu, p);
  r.assertGapsIntact();
  const out = { dh: r.f32(1).slice(), dPos: r.f32(2).slice() };
  step.destroy();
  p.buffer.destroy();
  return out;
}

for (const d of D) {
  Deno.test(`position concat backward splits dh and adds sum_b into dPos rows t < S only (d ${d})`, async () => {
    const rng = new Random(6, "position-backward");
    const dcat = randomNormal(rng, B * S * 2 * d);
    const dPos0 = randomNormal(rng, P * d);
    const { dh, dPos } = await runBackward(dcat, dPos0, d);
    const ref = concatPositionHiddenBackward(dcat, B, S, d);
    assertClose(dh, ref.dh, 0, "dh");
    const expected = new Float64Array(S * d);
    for (let i = 0; i < S * d; i++) expected[i] = dPos0[i] + ref.dpos[i];
    assertClose(dPos.subarray(0, S * d), expected, 1e-6, "dPos rows t < S");
    assertEquals(
      Array.from(dPos.subarray(S * d)),
      Array.from(dPos0.subarray(S * d)),
      "dPos rows t >= S must be untouched",
    );
  });
}

Deno.test("position concat backward is bit-identical across runs", async () => {
  const rng = new Random(7, "position-determinism");
  const dcat = randomNormal(rng, B * S * 2 * d, 2);
  const a = await runBackward(dcat, new Float32Array(P * d));
  const b = await runBackward(dcat, new Float32Array(P * d));
  assertBitIdentical(a.dPos, b.dPos, "dPos");
  // Recorded as the graphs record it: dcat read through a texture copy, the same sums.
  const c = await runBackward(dcat, new Float32Array(P * d), d, true);
  assertBitIdentical(c.dPos, a.dPos, "dPos (texture input)");
  assertBitIdentical(c.dh, a.dh, "dh (texture input)");
});

Deno.test("position concat rejects a sequence longer than P", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(P * d), new Float32Array(S * d), new Float32Array(1)], "t");
  const step = createPositionConcat(gpu, {
    pos: p.slices[0],
    h: p.slices[1],
    out: p.slices[2],
    d,
    P,
    maxRows: 100,
  });
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  assertThrows(
    () => step.encode(pass, { B: 1, S: P + 1 }),
    `S = ${P + 1}, expected an integer in [0, ${P}]`,
  );
  pass.end();
  encoder.finish();
  step.destroy();
  p.buffer.destroy();
});
