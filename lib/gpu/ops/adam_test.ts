import { assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { adamStep } from "../../model/reference.ts";
import { createStorageBufferFrom, type Gpu, requestGpu } from "../device.ts";
import { createAdam } from "./adam.ts";
import { createStatsBuffer } from "./cross_entropy.ts";
import { createGradNorm } from "./grad_norm.ts";
import { packTensors, randomUniform, readSlice, recordSteps, runSteps } from "./test_helpers.ts";

const COUNT = 1000 + 7;
const LR = 1e-2;
const HYPER = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

interface Run {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * Three steps on the GPU with fresh gradients each step; params, m, v packed at
 * non-zero offsets; optionally clipped to `clipNorm` through the grad-norm step.
 */
async function gpuSteps(
  g: Gpu,
  init: Float32Array<ArrayBuffer>,
  grads: Float32Array<ArrayBuffer>[],
  opts: {
    weightDecay: number;
    decoupled: boolean;
    clipNorm?: number;
    maxBindingBytes?: number;
    /** Record as the graph does: the vec4 part reads texture copies (software adapter). */
    textures?: boolean;
  },
): Promise<Run> {
  const state = packTensors(g, [init], 256);
  const moments = packTensors(g, [new Float32Array(COUNT), new Float32Array(COUNT)], 512);
  const grad = createStorageBufferFrom(g, new Float32Array(COUNT), "grad");
  const stats = createStatsBuffer(g, 1);
  const norm = opts.clipNorm === undefined
    ? undefined
    : createGradNorm(g, { grad, count: COUNT, stats, clipNorm: opts.clipNorm });
  const adam = createAdam(g, {
    params: state.slices[0],
    grads: grad,
    m: moments.slices[0],
    v: moments.slices[1],
    count: COUNT,
    clip: norm?.result,
    ...HYPER,
    weightDecay: opts.weightDecay,
    decoupled: opts.decoupled,
    maxBindingBytes: opts.maxBindingBytes,
  });
  for (let t = 1; t <= grads.length; t++) {
    g.device.queue.writeBuffer(grad, 0, grads[t - 1]);
    if (norm) await runSteps(g, [[norm, { slot: 0 }]]);
    if (opts.textures) {
      assertEquals(adam.encodeCommands !== undefined, true, "the texture form exists");
      await recordSteps(g, [[adam, { step: t, lr: LR }]]);
    } else {
      await runSteps(g, [[adam, { step: t, lr: LR }]]);
    }
  }
  const run = {
    params: await readSlice(g, state.slices[0]),
    m: await readSlice(g, moments.slices[0]),
    v: await readSlice(g, moments.slices[1]),
  };
  adam.destroy();
  norm?.destroy();
  for (const b of [state.buffer, moments.buffer, grad, stats]) b.destroy();
  return run;
}

/** The same three steps with the f64 reference (clipping done on the host). */
function referenceSteps(
  init: Float32Array,
  grads: Float32Array[],
  opts: { weightDecay: number; decoupled: boolean; clipNorm?: number },
) {
  const params = Float64Array.from(init);
  const m = new Float64Array(COUNT), v = new Float64Array(COUNT);
  grads.forEach((grad, i) => {
    let scale = 1;
    if (opts.clipNorm !== undefined) {
      const norm = Math.sqrt(grad.reduce((s, x) => s + x * x, 0));
      scale = Math.min(1, opts.clipNorm / (norm + 1e-6));
    }
    const g = Float64Array.from(grad, (x) => x * scale);
    adamStep(params, g, m, v, { lr: LR, ...HYPER, ...opts, step: i + 1 });
  });
  return { params, m, v };
}

function problem(seed: number) {
  const rng = new Random(seed, "adam_test");
  const init = randomUniform(rng, COUNT);
  const grads = [0, 1, 2].map(() => randomUniform(rng, COUNT, -0.1, 0.1));
  return { init, grads };
}

for (
  const opts of [
    { name: "Adam with L2 decay", weightDecay: 0.05, decoupled: false },
    { name: "AdamW", weightDecay: 0.05, decoupled: true },
    { name: "AdamW with clipping", weightDecay: 0.01, decoupled: true, clipNorm: 0.5 },
  ]
) {
  Deno.test(`adam: three steps of ${opts.name} match the reference adamStep`, async () => {
    const g = await requestGpu();
    const { init, grads } = problem(1);
    const run = await gpuSteps(g, init, grads, opts);
    const expected = referenceSteps(init, grads, opts);
    assertClose(run.params, expected.params, 2e-6, "params");
    assertClose(run.m, expected.m, 2e-6, "m");
    assertClose(run.v, expected.v, 2e-6, "v");
  });
}

Deno.test("adam: bound in several segments, the update is bit-identical", async () => {
  const g = await requestGpu();
  const { init, grads } = problem(2);
  const opts = { weightDecay: 0.01, decoupled: true };
  const whole = await gpuSteps(g, init, grads, opts);
  const split = await gpuSteps(g, init, grads, { ...opts, maxBindingBytes: 1024 });
  assertEquals(
    new Uint32Array(split.params.slice().buffer),
    new Uint32Array(whole.params.slice().buffer),
  );
  assertEquals(new Uint32Array(split.v.slice().buffer), new Uint32Array(whole.v.slice().buffer));
});

Deno.test("adam: reading param, grad, m and v through texture copies gives the same bits", async () => {
  const g = await requestGpu();
  const { init, grads } = problem(3);
  for (
    const opts of [{ weightDecay: 0.01, decoupled: true, clipNorm: 0.5 }, {
      weightDecay: 0.05,
      decoupled: false,
    }]
  ) {
    const storage = await gpuSteps(g, init, grads, opts);
    const textured = await gpuSteps(g, init, grads, { ...opts, textures: true });
    for (const key of ["params", "m", "v"] as const) {
      assertEquals(
        new Uint32Array(textured[key].slice().buffer),
        new Uint32Array(storage[key].slice().buffer),
        `${key} (${JSON.stringify(opts)})`,
      );
    }
  }
});

Deno.test("adam: a step number below 1 is refused", async () => {
  const g = await requestGpu();
  const buf = createStorageBufferFrom(g, new Float32Array(4), "x");
  const grad = createStorageBufferFrom(g, new Float32Array(4), "g");
  const adam = createAdam(g, {
    params: buf,
    grads: grad,
    m: buf,
    v: buf,
    count: 4,
    ...HYPER,
    weightDecay: 0,
    decoupled: false,
  });
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assertThrows(() => adam.encode(pass, { step: 0, lr: 1e-3 }), "step must be >= 1");
  pass.end();
  enc.finish();
  adam.destroy();
  buf.destroy();
  grad.destroy();
});
