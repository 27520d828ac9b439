import { assertClose, assertThrows } from "../../../tests/assert.ts";
import { gatedBackward, gatedForward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createGatedBackward, createGatedForward } from "./gated.ts";
import {
  pack,
  randomNormal,
  readPacked,
  recordSteps,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

// width 40: the vec4 kernels; 7 and 6: the scalar ones (with width 6 the batch holds a multiple
// of 4 floats, but a vec4 would straddle two rows of the [df1 | dg] gradient); "recorded" as
// the graphs record them (the vec4 kernels then read texture copies of their inputs).
for (
  const [width, recorded] of [[40, false], [7, false], [6, false], [40, true], [7, true], [
    6,
    true,
  ]] as const
) {
  Deno.test(`gated forward and backward match the reference, zero gate included (width ${width}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const B = 3, S = width === 6 ? 14 : 13;
    const n = B * S * width;
    const rng = new Random(15, "gated");
    const f1 = randomNormal(rng, n);
    const g = randomNormal(rng, n);
    for (let i = 0; i < n; i += 17) g[i] = 0; // relu'(0) = 0
    const dy = randomNormal(rng, n);
    const zeros = () => new Float32Array(n);
    const p = pack(gpu, [f1, g, zeros(), dy, new Float32Array(2 * n)], "t");
    const [sf1, sg, sy, sdy, sgrad] = p.slices;
    const maxRows = B * S + 3;
    const forward = createGatedForward(gpu, { f1: sf1, g: sg, y: sy, width, maxRows });
    const backward = createGatedBackward(gpu, {
      dy: sdy,
      f1: sf1,
      g: sg,
      grad: sgrad,
      width,
      maxRows,
    });
    await (recorded ? recordSteps : runSteps)(gpu, [[forward, { B, S }], [backward, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    assertClose(r.f32(2), gatedForward(f1, g), 1e-7, "y");
    const ref = gatedBackward(dy, f1, g);
    // Each row of the gradient is [df1 | dg].
    const grad = r.f32(4);
    const part = (which: number) =>
      Float32Array.from(
        { length: n },
        (_, i) => grad[Math.floor(i / width) * 2 * width + which * width + i % width],
      );
    assertClose(part(0), ref.df1, 1e-7, "df1");
    assertClose(part(1), ref.dg, 1e-7, "dg");
    forward.destroy();
    backward.destroy();
    p.buffer.destroy();
  });
}

Deno.test("gated forward rejects more rows than it was built for", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(8)], "t");
  const x = p.slices[0];
  const step = createGatedForward(gpu, { f1: x, g: x, y: x, width: 2, maxRows: 4 });
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  assertThrows(() => step.encode(pass, { B: 2, S: 3 }), "B*S = 6, expected an integer in [0, 4]");
  pass.end();
  encoder.finish();
  step.destroy();
  p.buffer.destroy();
});
