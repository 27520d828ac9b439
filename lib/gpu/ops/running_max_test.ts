import { assertClose, assertEquals } from "../../../tests/assert.ts";
import { runningMaxBackward, runningMaxForward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createRunningMaxBackward, createRunningMaxForward } from "./running_max.ts";
import {
  assertBitIdentical,
  pack,
  randomNormal,
  readPacked,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

/** Forward then backward on the GPU; returns m, argmax and dz. */
async function runScan(
  z: Float32Array<ArrayBuffer>,
  dm: Float32Array<ArrayBuffer>,
  B: number,
  S: number,
  d: number,
) {
  const gpu = await testGpu();
  const n = B * S * d;
  const p = pack(gpu, [z, new Float32Array(n), new Uint32Array(n), dm, new Float32Array(n)], "t");
  const [sz, sm, sArg, sdm, sdz] = p.slices;
  const forward = createRunningMaxForward(gpu, { z: sz, m: sm, argmax: sArg, d, maxRows: B * S });
  const backward = createRunningMaxBackward(gpu, {
    dm: sdm,
    argmax: sArg,
    dz: sdz,
    d,
    maxRows: B * S,
  });
  await runSteps(gpu, [[forward, { B, S }], [backward, { B, S }]]);
  const r = await readPacked(gpu, p);
  r.assertGapsIntact();
  const out = { m: r.f32(1).slice(), argmax: r.u32(2).slice(), dz: r.f32(4).slice() };
  forward.destroy();
  backward.destroy();
  p.buffer.destroy();
  return out;
}

Deno.test("running max forward and backward match the reference on random input", async () => {
  const B = 3, S = 13, d = 20;
  const rng = new Random(8, "running-max");
  const z = randomNormal(rng, B * S * d);
  const dm = randomNormal(rng, B * S * d);
  const gpu = await runScan(z, dm, B, S, d);
  const ref = runningMaxForward(z, B, S, d);
  assertClose(gpu.m, ref.m, 0, "m");
  assertEquals(Array.from(gpu.argmax), Array.from(ref.argmax), "argmax");
  assertClose(gpu.dz, runningMaxBackward(dm, ref.argmax, B, S, d), 1e-6, "dz");
});

Deno.test("running max sends ties to the latest position", async () => {
  // One column (B = 1, d = 1) written out by hand.
  const z = new Float32Array([1, 3, 3, 2, 3, 5, 5, -1]);
  const dm = new Float32Array([1, 2, 4, 8, 16, 32, 64, 128]);
  const gpu = await runScan(z, dm, 1, z.length, 1);
  assertEquals(Array.from(gpu.argmax), [0, 1, 2, 2, 4, 5, 6, 6]);
  assertEquals(Array.from(gpu.m), [1, 3, 3, 3, 3, 5, 5, 5]);
  assertEquals(Array.from(gpu.dz), [1, 2, 12, 0, 16, 32, 192, 0]);
});

Deno.test("running max with many exact ties matches the reference (latest index wins)", async () => {
  const B = 2, S = 29, d = 7;
  const rng = new Random(9, "running-max-ties");
  const z = new Float32Array(B * S * d);
  for (let i = 0; i < z.length; i++) z[i] = rng.int(4) - 1.5; // 4 distinct values
  const dm = randomNormal(rng, B * S * d);
  const gpu = await runScan(z, dm, B, S, d);
  const ref = runningMaxForward(z, B, S, d);
  assertEquals(Array.from(gpu.argmax), Array.from(ref.argmax), "argmax");
  assertClose(gpu.m, ref.m, 0, "m");
  assertClose(gpu.dz, runningMaxBackward(dm, ref.argmax, B, S, d), 1e-6, "dz");
});

Deno.test("running max backward is bit-identical across runs", async () => {
  const B = 3, S = 13, d = 20;
  const rng = new Random(10, "running-max-determinism");
  const z = randomNormal(rng, B * S * d);
  const dm = randomNormal(rng, B * S * d);
  const a = await runScan(z, dm, B, S, d);
  const b = await runScan(z, dm, B, S, d);
  assertBitIdentical(a.dz, b.dz, "dz");
  assertBitIdentical(a.argmax, b.argmax, "argmax");
});
