import {
  assert,
  assertAlmostEquals,
  assertClose,
  assertEquals,
  assertThrows,
} from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { crossEntropy } from "../../model/reference.ts";
import {
  createStorageBuffer,
  createStorageBufferFrom,
  type Gpu,
  readFloat32,
  requestGpu,
} from "../device.ts";
import {
  createCrossEntropy,
  createStatsBuffer,
  readAndResetStats,
  readStats,
} from "./cross_entropy.ts";
import { packTensors, randomUniform, readSlice, recordSteps, runSteps } from "./test_helpers.ts";

/** Logits [N, V] in [-4, 4) and targets in [0, V) with about a quarter padding. */
function batch(seed: number, N: number, V: number) {
  const rng = new Random(seed, "cross_entropy_test");
  const logits = randomUniform(rng, N * V, -4, 4);
  const targets = new Int32Array(N);
  for (let n = 0; n < N; n++) targets[n] = rng.uniform() < 0.25 ? 0 : 1 + rng.int(V - 1);
  const count = targets.filter((t) => t !== 0).length;
  return { logits, targets, count };
}

function setup(g: Gpu, logits: Float32Array<ArrayBuffer>, targets: Int32Array<ArrayBuffer>) {
  const logitsBuf = packTensors(g, [logits], 512);
  const targetsBuf = packTensors(g, [targets], 256);
  return { logitsBuf, targetsBuf, logits: logitsBuf.slices[0], targets: targetsBuf.slices[0] };
}

// V = 301 runs the scalar kernel, V = 300 the vec4 one.
for (
  const [rowWorkgroupSize, V] of [[undefined, 301], [64, 301], [undefined, 300], [64, 300]] as const
) {
  const which = `${
    rowWorkgroupSize ? `${rowWorkgroupSize} invocations per row` : "default"
  }, V=${V}`;
  Deno.test(`crossEntropy: loss, hits, count and in-place dlogits match the reference (${which})`, async () => {
    const g = await requestGpu();
    const N = 53;
    const b = batch(1, N, V);
    const bufs = setup(g, b.logits, b.targets);
    const stats = createStatsBuffer(g, 3);
    const step = createCrossEntropy(g, {
      logits: bufs.logits,
      targets: bufs.targets,
      stats,
      V,
      maxRows: 64,
      mode: "train",
      rowWorkgroupSize,
    });
    await runSteps(g, [[step, { N, count: b.count, slot: 1 }]]);
    const expected = crossEntropy(b.logits, b.targets, N, V);
    assertClose(await readSlice(g, bufs.logits), expected.dlogits, 1e-5, "dlogits");
    const [s0, s1, s2] = await readStats(g, stats, 3);
    assertEquals(s1.count, expected.count);
    assertEquals(s1.correct, expected.correct);
    assertAlmostEquals(s1.meanLoss, expected.loss, 1e-5 * expected.loss, "mean loss");
    assertEquals([s0.count, s2.count, s1.gradNorm], [0, 0, 0], "other slots and fields untouched");
    step.destroy();
    stats.destroy();
    bufs.logitsBuf.buffer.destroy();
    bufs.targetsBuf.buffer.destroy();
  });
}

for (const V of [150, 152]) {
  Deno.test(`crossEntropy: argmax ties go to the lowest index (V=${V})`, async () => {
    const g = await requestGpu();
    // Row 0: max 2.0 at 7 and 130 (target 7 is a hit); row 1: the same, target 130 a miss;
    // rows 2 and 3: max at 5 and 7 (one vec4 apart of V=152's kernel), target 7 a miss, 5 a hit.
    const logits = new Float32Array(4 * V);
    for (const r of [0, 1]) {
      logits[r * V + 7] = 2;
      logits[r * V + 130] = 2;
    }
    for (const r of [2, 3]) {
      logits[r * V + 5] = 3;
      logits[r * V + 7] = 3;
    }
    const targets = new Int32Array([7, 130, 7, 5]);
    const bufs = setup(g, logits, targets);
    const stats = createStatsBuffer(g, 1);
    const step = createCrossEntropy(g, {
      logits: bufs.logits,
      targets: bufs.targets,
      stats,
      V,
      maxRows: 4,
      mode: "eval",
    });
    await runSteps(g, [[step, { N: 4, count: 4, slot: 0 }]]);
    const [s] = await readStats(g, stats, 1);
    assertEquals(s.correct, 2, "only the rows whose target is the lowest tied index are hits");
    step.destroy();
    stats.destroy();
    bufs.logitsBuf.buffer.destroy();
    bufs.targetsBuf.buffer.destroy();
  });
}

Deno.test("crossEntropy: eval mode leaves logits untouched and accumulates across batches", async () => {
  const g = await requestGpu();
  const V = 97;
  const b1 = batch(2, 31, V), b2 = batch(3, 20, V);
  const logits = createStorageBufferFrom(g, new Float32Array(31 * V), "logits");
  const targets = createStorageBufferFrom(g, new Int32Array(31), "targets");
  const stats = createStatsBuffer(g, 1);
  const step = createCrossEntropy(g, { logits, targets, stats, V, maxRows: 31, mode: "eval" });
  for (const b of [b1, b2]) {
    g.device.queue.writeBuffer(logits, 0, b.logits);
    g.device.queue.writeBuffer(targets, 0, b.targets);
    await runSteps(g, [[step, { N: b.targets.length, count: b.count, slot: 0 }]]);
  }
  assertEquals(await readFloat32(g, logits, 20 * V), b2.logits, "eval must not write the logits");
  const r1 = crossEntropy(b1.logits, b1.targets, 31, V);
  const r2 = crossEntropy(b2.logits, b2.targets, 20, V);
  const [s] = await readAndResetStats(g, stats, 1);
  assertEquals(s.count, r1.count + r2.count);
  assertEquals(s.correct, r1.correct + r2.correct);
  const lossSum = r1.loss * r1.count + r2.loss * r2.count;
  assertAlmostEquals(s.lossSum, lossSum, 1e-5 * lossSum);
  const [after] = await readStats(g, stats, 1);
  assertEquals([after.lossSum, after.correct, after.count], [0, 0, 0], "reset zeroes the slot");
  step.destroy();
  for (const buf of [logits, targets, stats]) buf.destroy();
});

Deno.test("crossEntropy: an all-padding batch gives zero gradient and adds nothing", async () => {
  const g = await requestGpu();
  const V = 40, N = 9;
  const b = batch(4, N, V);
  const bufs = setup(g, b.logits, new Int32Array(N));
  const stats = createStatsBuffer(g, 1);
  const step = createCrossEntropy(g, {
    logits: bufs.logits,
    targets: bufs.targets,
    stats,
    V,
    maxRows: N,
    mode: "train",
  });
  await runSteps(g, [[step, { N, count: 0, slot: 0 }]]);
  assertEquals(Array.from(await readSlice(g, bufs.logits)), new Array(N * V).fill(0));
  const [s] = await readStats(g, stats, 1);
  assertEquals([s.lossSum, s.correct, s.count], [0, 0, 0]);
  step.destroy();
  stats.destroy();
  bufs.logitsBuf.buffer.destroy();
  bufs.targetsBuf.buffer.destroy();
});

Deno.test("crossEntropy: two runs give bit-identical gradients and stats", async () => {
  const g = await requestGpu();
  const N = 300, V = 1100;
  const b = batch(5, N, V);
  const runs: Float32Array[] = [];
  for (let r = 0; r < 2; r++) {
    const logits = createStorageBufferFrom(g, b.logits, "logits");
    const targets = createStorageBufferFrom(g, b.targets, "targets");
    const stats = createStatsBuffer(g, 1);
    const step = createCrossEntropy(g, { logits, targets, stats, V, maxRows: N, mode: "train" });
    await runSteps(g, [[step, { N, count: b.count, slot: 0 }]]);
    const grad = await readFloat32(g, logits, N * V);
    const s = await readFloat32(g, stats, 4);
    const both = new Float32Array(grad.length + 4);
    both.set(grad);
    both.set(s, grad.length);
    runs.push(both);
    step.destroy();
    for (const buf of [logits, targets, stats]) buf.destroy();
  }
  assertEquals(new Uint32Array(runs[0].buffer), new Uint32Array(runs[1].buffer));
});

Deno.test("crossEntropy: more rows than maxRows is refused at encode time", async () => {
  const g = await requestGpu();
  const logits = createStorageBufferFrom(g, new Float32Array(8), "logits");
  const targets = createStorageBufferFrom(g, new Int32Array(4), "targets");
  const stats = createStatsBuffer(g, 1);
  const step = createCrossEntropy(g, { logits, targets, stats, V: 2, maxRows: 4, mode: "eval" });
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assertThrows(() => step.encode(pass, { N: 5, count: 1, slot: 0 }), "exceed maxRows");
  pass.end();
  enc.finish();
  step.destroy();
  for (const buf of [logits, targets, stats]) buf.destroy();
});

/**
 * The bits one form of the kernel leaves: the logits (or their gradient), the
 * per-row loss and hit, and the stats slot. `recorded`: as the graphs record
 * the step (the logits read through a texture copy on the software adapter).
 */
async function formBits(
  g: Gpu,
  logits: Float32Array<ArrayBuffer>,
  b: ReturnType<typeof batch>,
  V: number,
  mode: "train" | "eval",
  form: { vec4?: boolean; rowPerInvocation?: boolean; recorded?: boolean },
): Promise<Uint32Array> {
  const N = b.targets.length;
  const bufs = setup(g, logits, b.targets);
  const stats = createStatsBuffer(g, 1);
  const rowStats = createStorageBufferFrom(g, new Float32Array(N * 2), "rowStats");
  const step = createCrossEntropy(g, {
    logits: bufs.logits,
    targets: bufs.targets,
    stats,
    V,
    maxRows: N,
    mode,
    rowStats,
    vec4: form.vec4,
    rowPerInvocation: form.rowPerInvocation,
  });
  if (form.recorded) {
    assert(step.encodeCommands !== undefined, "the software adapter reads textures");
  }
  const dims = { N, count: b.count, slot: 0 };
  await (form.recorded ? recordSteps : runSteps)(g, [[step, dims]]);
  const grad = await readSlice(g, bufs.logits);
  const rows = await readFloat32(g, rowStats, N * 2);
  const s = await readFloat32(g, stats, 4);
  step.destroy();
  stats.destroy();
  rowStats.destroy();
  bufs.logitsBuf.buffer.destroy();
  bufs.targetsBuf.buffer.destroy();
  return new Uint32Array([
    ...new Uint32Array(grad.buffer, grad.byteOffset, grad.length),
    ...new Uint32Array(rows.buffer),
    ...new Uint32Array(s.buffer),
  ]);
}

// V = 300: 3975 vec4s over 53 rows, 15 full texture rows and a partial one.
for (const mode of ["train", "eval"] as const) {
  Deno.test(`crossEntropy: the vec4, one-invocation-per-row and texture-read kernels give the scalar kernel's bits, ties and padding included (${mode})`, async () => {
    const g = await requestGpu();
    const N = 53, V = 300;
    const b = batch(4, N, V);
    // Few distinct values: many rows have tied maxima, some inside one vec4.
    const logits = b.logits.map((x) => Math.round(x) / 2);
    const scalar = await formBits(g, logits, b, V, mode, { vec4: false, rowPerInvocation: false });
    for (
      const form of [
        { vec4: true, rowPerInvocation: false },
        { vec4: true, rowPerInvocation: true },
        { vec4: true, rowPerInvocation: true, recorded: true },
      ]
    ) {
      assertEquals(
        await formBits(g, logits, b, V, mode, form),
        scalar,
        `logits or gradient, per-row loss and hits, stats (${JSON.stringify(form)})`,
      );
    }
  });
}

// V = 267 (odd, like the default pipeline's vocabulary): rows start inside texels.
for (const mode of ["train", "eval"] as const) {
  Deno.test(`crossEntropy: with V not a multiple of 4 the one-invocation-per-row kernels, from storage and from a texture copy, give the workgroup kernel's bits (${mode})`, async () => {
    const g = await requestGpu();
    const N = 53, V = 267;
    const b = batch(5, N, V);
    // Whole texels (the graphs allocate logits so): a texture copy reaches the last row's end.
    const logits = new Float32Array(Math.ceil(N * V / 4) * 4);
    logits.set(b.logits.map((x) => Math.round(x) / 2));
    const group = await formBits(g, logits, b, V, mode, { rowPerInvocation: false });
    for (
      const form of [{ rowPerInvocation: true }, { rowPerInvocation: true, recorded: true }]
    ) {
      assertEquals(
        await formBits(g, logits, b, V, mode, form),
        group,
        `logits or gradient, per-row loss and hits, stats (${JSON.stringify(form)})`,
      );
    }
  });
}

Deno.test("crossEntropy: logits that end inside a texel are read from storage, not through a texture copy", async () => {
  const g = await requestGpu();
  const N = 7, V = 267; // 1869 floats: the last texel would run past the buffer
  const buffers = [N * V * 4, N * 4, 16].map((n, i) => createStorageBuffer(g, n, `test.${i}`));
  const [logits, targets, stats] = buffers;
  const step = createCrossEntropy(g, {
    logits,
    targets,
    stats,
    V,
    maxRows: N,
    mode: "train",
    rowPerInvocation: true,
  });
  assertEquals(step.encodeCommands, undefined);
  step.destroy();
  for (const buffer of buffers) buffer.destroy();
});
