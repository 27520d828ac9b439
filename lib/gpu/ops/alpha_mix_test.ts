import { assertAlmostEquals, assertClose } from "../../../tests/assert.ts";
import { alphaMixBackward, alphaMixForward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createAlphaMixBackward, createAlphaMixForward } from "./alpha_mix.ts";
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
  alpha: number;
  f: Float32Array<ArrayBuffer>;
  u: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
  dalpha0: number;
}

function randomCase(seed: number, B: number, S: number, d: number): Case {
  const rng = new Random(seed, "alpha-mix");
  const n = B * S * d;
  return {
    B,
    S,
    d,
    alpha: Math.fround(rng.range(0.1, 0.9)),
    f: randomNormal(rng, n),
    u: randomNormal(rng, n),
    dy: randomNormal(rng, n),
    dalpha0: Math.fround(rng.normal()),
  };
}

/**
 * Forward then backward in one submission; alpha and its gradient are slices
 * of packed buffers. `recorded`: as the graphs record them (texture copies of
 * the inputs on the software adapter).
 */
async function run(k: Case, recorded = false, residual?: Float32Array<ArrayBuffer>) {
  const gpu = await testGpu();
  const n = k.B * k.S * k.d;
  const act = pack(gpu, [
    k.f,
    k.u,
    new Float32Array(n),
    k.dy,
    new Float32Array(n),
    new Float32Array(n),
    residual ?? new Float32Array(4),
  ], "act");
  const params = pack(gpu, [new Float32Array(5), new Float32Array([k.alpha])], "params");
  const grads = pack(gpu, [new Float32Array(5), new Float32Array([k.dalpha0])], "grads");
  const [f, u, y, dy, df, du] = act.slices;
  const alpha = params.slices[1];
  const dalpha = grads.slices[1];
  const common = { d: k.d, maxRows: k.B * k.S };
  const forward = createAlphaMixForward(gpu, { f, u, alpha, y, ...common });
  const backward = createAlphaMixBackward(gpu, {
    dy,
    f,
    u,
    alpha,
    df,
    du,
    dalpha,
    ...(residual && { residual: act.slices[6] }),
    ...common,
  });
  const dims = { B: k.B, S: k.S };
  if (recorded && !(forward.encodeCommands && backward.encodeCommands)) {
    throw new Error("expected the texture forms on the software test adapter");
  }
  await (recorded ? recordSteps : runSteps)(gpu, [[forward, dims], [backward, dims]]);
  const a = await readPacked(gpu, act);
  const g = await readPacked(gpu, grads);
  a.assertGapsIntact();
  g.assertGapsIntact();
  const out = {
    y: a.f32(2).slice(),
    df: a.f32(4).slice(),
    du: a.f32(5).slice(),
    dalpha: g.f32(1).slice(),
  };
  forward.destroy();
  backward.destroy();
  for (const b of [act, params, grads]) b.buffer.destroy();
  return out;
}

function assertMatchesReference(k: Case, gpu: Awaited<ReturnType<typeof run>>): void {
  assertClose(gpu.y, alphaMixForward(k.f, k.u, k.alpha), 1e-6, "y");
  const ref = alphaMixBackward(k.dy, k.f, k.u, k.alpha);
  assertClose(gpu.df, ref.df, 1e-6, "df");
  assertClose(gpu.du, ref.du, 1e-6, "du");
  let sumAbs = 0;
  for (let i = 0; i < k.dy.length; i++) sumAbs += Math.abs(k.dy[i] * (k.f[i] - k.u[i]));
  assertAlmostEquals(gpu.dalpha[0], k.dalpha0 + ref.dalpha, 1e-6 * sumAbs, "dalpha (added)");
}

Deno.test("alpha mix matches the reference over several chunks, the last one short", async () => {
  const k = randomCase(19, 5, 37, 50); // 9250 elements: 3 chunks of 4096
  assertMatchesReference(k, await run(k));
});

Deno.test("alpha mix matches the reference on a batch smaller than one chunk", async () => {
  const k = randomCase(20, 3, 13, 20);
  assertMatchesReference(k, await run(k));
});

Deno.test("alpha mix backward is bit-identical across runs", async () => {
  const k = randomCase(21, 5, 37, 50);
  const a = await run(k);
  const b = await run(k);
  assertBitIdentical(a.dalpha, b.dalpha, "dalpha");
  assertBitIdentical(a.du, b.du, "du");
});

Deno.test("alpha mix reading its inputs through texture copies gives the same bits", async () => {
  // d % 4 == 0: every kernel has a texture form. 8960 elements: two whole
  // chunks of 4096 and a short one; 780: one short chunk.
  for (const k of [randomCase(22, 7, 40, 32), randomCase(23, 3, 13, 20)]) {
    const storage = await run(k);
    const recorded = await run(k, true);
    for (const key of ["y", "df", "du", "dalpha"] as const) {
      assertBitIdentical(recorded[key], storage[key], `${key} (B=${k.B} S=${k.S})`);
    }
  }
});

Deno.test("alpha mix backward adds the residual's gradient to du with the bits of adding it afterwards", async () => {
  // d = 50: the scalar kernel (9250 elements); d = 32: vec4, and texture copies when recorded.
  for (const k of [randomCase(24, 5, 37, 50), randomCase(25, 7, 40, 32)]) {
    const residual = randomNormal(new Random(26, "alpha-mix-residual"), k.B * k.S * k.d);
    for (const recorded of [false, true]) {
      const alone = await run(k, recorded);
      const fused = await run(k, recorded, residual);
      const expected = alone.du.map((v, i) => Math.fround(v + residual[i]));
      const form = `d=${k.d}${recorded ? ", recorded" : ""}`;
      assertBitIdentical(fused.du, expected, `du + residual (${form})`);
      assertBitIdentical(fused.df, alone.df, `df (${form})`);
      assertBitIdentical(fused.dalpha, alone.dalpha, `dalpha (${form})`);
    }
  }
});
