import { assertClose, assertThrows } from "../../../tests/assert.ts";
import { layerNormBackward, layerNormForward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createLayerNormBackward, createLayerNormForward } from "./layer_norm.ts";
import {
  assertBitIdentical,
  pack,
  randomNormal,
  readPacked,
  recordSteps,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

interface Case {
  B: number;
  S: number;
  d: number;
  x: Float32Array<ArrayBuffer>;
  gamma: Float32Array<ArrayBuffer>;
  beta: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
  dgamma0: Float32Array<ArrayBuffer>;
  dbeta0: Float32Array<ArrayBuffer>;
}

function randomCase(seed: number, B: number, S: number, d: number): Case {
  const rng = new Random(seed, "layer-norm");
  const R = B * S;
  const x = randomNormal(rng, R * d, 2);
  for (let i = 0; i < x.length; i++) x[i] += 3; // an offset mean, as in real activations
  return {
    B,
    S,
    d,
    x,
    gamma: randomNormal(rng, d),
    beta: randomNormal(rng, d),
    dy: randomNormal(rng, R * d),
    dgamma0: randomNormal(rng, d),
    dbeta0: randomNormal(rng, d),
  };
}

/**
 * Forward then backward in one submission; activations, parameters and
 * gradients each packed. `hardware` builds the kernels a hardware GPU gets.
 */
async function run(k: Case, hardware = false, rowPerInvocation?: boolean, recorded = false) {
  const testDevice = await testGpu();
  const gpu = hardware ? { ...testDevice, isFallback: false } : testDevice;
  const R = k.B * k.S;
  const act = pack(gpu, [
    k.x,
    new Float32Array(R * k.d),
    new Float32Array(R),
    new Float32Array(R),
    k.dy,
    new Float32Array(R * k.d),
  ], "activations");
  const params = pack(gpu, [k.gamma, k.beta], "params");
  const grads = pack(gpu, [k.dgamma0, k.dbeta0], "grads");
  const [x, y, mean, rstd, dy, dx] = act.slices;
  const [gamma, beta] = params.slices;
  const [dgamma, dbeta] = grads.slices;
  const maxRows = R + 5;
  const forward = createLayerNormForward(gpu, {
    x,
    gamma,
    beta,
    y,
    mean,
    rstd,
    d: k.d,
    maxRows,
    rowPerInvocation,
  });
  const backward = createLayerNormBackward(gpu, {
    dy,
    x,
    gamma,
    mean,
    rstd,
    dx,
    dgamma,
    dbeta,
    d: k.d,
    maxRows,
    rowPerInvocation,
  });
  const dims = { B: k.B, S: k.S };
  if (recorded && !(forward.encodeCommands && backward.encodeCommands)) {
    throw new Error("expected the texture forms on the software test adapter");
  }
  await (recorded ? recordSteps : runSteps)(gpu, [[forward, dims], [backward, dims]]);
  const a = await readPacked(gpu, act);
  const p = await readPacked(gpu, params);
  const g = await readPacked(gpu, grads);
  a.assertGapsIntact();
  p.assertGapsIntact();
  g.assertGapsIntact();
  const out = {
    y: a.f32(1).slice(),
    mean: a.f32(2).slice(),
    rstd: a.f32(3).slice(),
    dx: a.f32(5).slice(),
    dgamma: g.f32(0).slice(),
    dbeta: g.f32(1).slice(),
  };
  forward.destroy();
  backward.destroy();
  for (const b of [act, params, grads]) b.buffer.destroy();
  return out;
}

function assertMatchesReference(k: Case, gpu: Awaited<ReturnType<typeof run>>): void {
  const R = k.B * k.S;
  const f = layerNormForward(k.x, k.gamma, k.beta, R, k.d, 1e-5);
  assertClose(gpu.y, f.y, 1e-5, "y");
  assertClose(gpu.mean, f.mean, 1e-6, "mean");
  assertClose(gpu.rstd, f.rstd, 1e-5, "rstd");
  const b = layerNormBackward(k.dy, k.x, k.gamma, f.mean, f.rstd, R, k.d);
  assertClose(gpu.dx, b.dx, 1e-4, "dx");
  assertClose(gpu.dgamma, b.dgamma.map((v, i) => v + k.dgamma0[i]), 1e-5, "dgamma (added)");
  assertClose(gpu.dbeta, b.dbeta.map((v, i) => v + k.dbeta0[i]), 1e-5, "dbeta (added)");
}

Deno.test("layer norm matches the reference with several row blocks and d below the workgroup", async () => {
  const k = randomCase(16, 5, 29, 20); // 145 rows: 3 partial blocks, the last one short
  assertMatchesReference(k, await run(k));
});

Deno.test("layer norm matches the reference with d above the workgroup size", async () => {
  const k = randomCase(17, 3, 13, 150);
  assertMatchesReference(k, await run(k));
});

Deno.test("layer norm's hardware-GPU kernels (64 invocations per row) match the reference", async () => {
  const k = randomCase(19, 3, 13, 150);
  assertMatchesReference(k, await run(k, true));
});

Deno.test("layer norm: one invocation per row, and texture inputs, give the bits of one workgroup per row", async () => {
  // d below, at and above the 16 invocations per row; 131 rows: a partial workgroup of rows.
  for (const d of [12, 16, 20, 36, 64, 128]) {
    const k = randomCase(20 + d, 1, 131, d);
    const rows = await run(k, false, true);
    const workgroups = await run(k, false, false);
    // Recorded as the graphs record them: the inputs read through texture copies.
    const textured = await run(k, false, true, true);
    for (const key of ["y", "mean", "rstd", "dx", "dgamma", "dbeta"] as const) {
      assertBitIdentical(rows[key], workgroups[key], `${key} (d=${d})`);
      assertBitIdentical(textured[key], workgroups[key], `${key} (d=${d}, texture inputs)`);
    }
    assertMatchesReference(k, rows);
  }
});

Deno.test("layer norm backward is bit-identical across runs", async () => {
  const k = randomCase(18, 5, 29, 20);
  const a = await run(k);
  const b = await run(k);
  for (const key of ["y", "dx", "dgamma", "dbeta"] as const) {
    assertBitIdentical(a[key], b[key], key);
  }
});

Deno.test("layer norm backward rejects more rows than it was built for", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(8)], "t");
  const x = p.slices[0];
  const step = createLayerNormBackward(gpu, {
    dy: x,
    x,
    gamma: x,
    mean: x,
    rstd: x,
    dx: x,
    dgamma: x,
    dbeta: x,
    d: 2,
    maxRows: 4,
  });
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  assertThrows(() => step.encode(pass, { B: 3, S: 2 }), "B*S = 6, expected an integer in [0, 4]");
  pass.end();
  encoder.finish();
  step.destroy();
  p.buffer.destroy();
});
