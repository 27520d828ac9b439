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

// width 40: the vec4 kernels; 7 (B*S*width odd): the scalar ones; "recorded" as the graphs
// record them (the vec4 kernels then read texture copies of their inputs).
for (const [width, recorded] of [[40, false], [7, false], [40, true], [7, true]] as const) {
  Deno.test(`gated forward and backward match the reference, zero gate included (width ${width}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const B = 3, S = 13;
    const n = B * S * width;
    const rng = new Random(15, "gated");
    const f1 = randomNormal(rng, n);
    const g = randomNormal(rng, n);
    for (let i = 0; i < n; i += 17) g[i] = 0; // relu'(0) = 0
    const dy = randomNormal(rng, n);
    const zeros = () => new Float32Array(n);
    const p = pack(gpu, [f1, g, zeros(), dy, zeros(), zeros()], "t");
    const [sf1, sg, sy, sdy, sdf1, sdg] = p.slices;
    const maxRows = B * S + 3;
    const forward = createGatedForward(gpu, { f1: sf1, g: sg, y: sy, width, maxRows });
    const backward = createGatedBackward(gpu, {
      dy: sdy,
      f1: sf1,
      g: sg,
      df1: sdf1,
      dg: sdg,
      width,
      maxRows,
    });
    await (recorded ? recordSteps : runSteps)(gpu, [[forward, { B, S }], [backward, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    assertClose(r.f32(2), gatedForward(f1, g), 1e-7, "y");
    const ref = gatedBackward(dy, f1, g);
    assertClose(r.f32(4), ref.df1, 1e-7, "df1");
    assertClose(r.f32(5), ref.dg, 1e-7, "dg");
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
