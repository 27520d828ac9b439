import { assert, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { createStorageBuffer, readFloat32 } from "../device.ts";
import {
  createAccumulate,
  createAdd,
  createCopy,
  createFill,
  dispatchElements,
  ELEMENT_WORKGROUP_SIZE,
} from "./elementwise.ts";
import {
  pack,
  randomNormal,
  readPacked,
  recordSteps,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

// count 776 runs the vec4 kernels, 775 the scalar ones; "recorded" as the graphs record
// them (the vec4 add then reads texture copies of its inputs on the software adapter).
for (const [short, recorded] of [[5, false], [6, false], [5, true], [6, true]] as const) {
  Deno.test(`add, copy, accumulate and fill act on exactly \`count\` elements of their slices (n - ${short}${recorded ? ", recorded" : ""})`, async () => {
    const gpu = await testGpu();
    const rng = new Random(1, "elementwise");
    const n = 3 * 13 * 20 + 1; // not a multiple of the workgroup size
    const a = randomNormal(rng, n);
    const b = randomNormal(rng, n);
    const acc = randomNormal(rng, n);
    const p = pack(
      gpu,
      [a, b, new Float32Array(n), new Float32Array(n), acc, new Float32Array(n)],
      "t",
    );
    const [sa, sb, sSum, sCopy, sAcc, sFill] = p.slices;
    const count = n - short; // the tail of each slice must stay untouched
    const steps = [
      createAdd(gpu, { a: sa, b: sb, out: sSum, maxCount: n }),
      createCopy(gpu, { src: sa, out: sCopy, maxCount: n }),
      createAccumulate(gpu, { src: sb, target: sAcc, maxCount: n }),
      createFill(gpu, { out: sFill, maxCount: n, value: 0.75 }),
    ];
    if (recorded) {
      assert(steps[0].encodeCommands !== undefined, "add has a texture form");
      await recordSteps(gpu, steps.map((s) => [s, { count }]));
    } else {
      await runSteps(gpu, steps.map((s) => [s, { count }]));
    }
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    for (let i = 0; i < n; i++) {
      const live = i < count;
      assertEquals(r.f32(2)[i], live ? Math.fround(a[i] + b[i]) : 0, `sum[${i}]`);
      assertEquals(r.f32(3)[i], live ? a[i] : 0, `copy[${i}]`);
      assertEquals(r.f32(4)[i], live ? Math.fround(acc[i] + b[i]) : acc[i], `accumulate[${i}]`);
      assertEquals(r.f32(5)[i], live ? 0.75 : 0, `fill[${i}]`);
    }
    steps.forEach((s) => s.destroy());
    p.buffer.destroy();
  });
}

Deno.test("dispatchElements covers counts beyond one grid dimension with a 2-D grid", () => {
  const calls: number[][] = [];
  const pass = {
    dispatchWorkgroups: (...xyz: number[]) => calls.push(xyz),
  } as unknown as GPUComputePassEncoder;
  dispatchElements(pass, 0);
  dispatchElements(pass, 1);
  dispatchElements(pass, 40_000_000);
  assertEquals(calls.length, 2, "a count of 0 records no dispatch");
  assertEquals(calls[0], [1, 1]);
  const [x, y] = calls[1];
  assert(x <= 65535, `x = ${x} exceeds the per-dimension limit`);
  assert(x * y * ELEMENT_WORKGROUP_SIZE >= 40_000_000, `grid ${x}x${y} too small`);
});

Deno.test("fill reaches the elements past 65535 workgroups (2-D grid)", async () => {
  const gpu = await testGpu();
  const count = 65535 * ELEMENT_WORKGROUP_SIZE + 300;
  const big = createStorageBuffer(gpu, (count + 64) * 4, "big");
  const fill = createFill(gpu, { out: big, maxCount: count, value: 2.5 });
  await runSteps(gpu, [[fill, { count }]]);
  // Read back only the tail: the last 364 floats (300 in the second grid row, 64 past count).
  const tail = createStorageBuffer(gpu, 364 * 4, "tail");
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(big, (count - 300) * 4, tail, 0, 364 * 4);
  gpu.device.queue.submit([encoder.finish()]);
  const values = await readFloat32(gpu, tail, 364);
  for (let i = 0; i < 364; i++) assertEquals(values[i], i < 300 ? 2.5 : 0, `tail[${i}]`);
  fill.destroy();
  big.destroy();
  tail.destroy();
});

Deno.test("an element-wise step rejects a count above the size it was built for", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(8)], "t");
  const fill = createFill(gpu, { out: p.slices[0], maxCount: 8 });
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  assertThrows(() => fill.encode(pass, { count: 9 }), "count = 9, expected an integer in [0, 8]");
  assertThrows(() => fill.encode(pass, { count: 2.5 }), "expected an integer");
  pass.end();
  encoder.finish();
  fill.destroy();
  p.buffer.destroy();
});
