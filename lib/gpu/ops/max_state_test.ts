import { assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import {
  maxStateBackward,
  maxStateForward,
  runningMaxBackward,
  runningMaxForward,
} from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import { createMaxStateBackward, createMaxStateForward } from "./max_state.ts";
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
  heads: number;
  a: Float32Array<ArrayBuffer>;
  b: Float32Array<ArrayBuffer>;
  c: Float32Array<ArrayBuffer>;
  ds: Float32Array<ArrayBuffer>;
}

function randomCase(seed: number, B: number, S: number, d: number, heads: number): Case {
  const rng = new Random(seed, "max-state");
  const n = B * S * d;
  return {
    B,
    S,
    d,
    heads,
    a: randomNormal(rng, n),
    b: randomNormal(rng, n),
    c: randomNormal(rng, n),
    ds: randomNormal(rng, n),
  };
}

/**
 * The fused forward and backward in one submission, slices of one buffer;
 * `textures`: recorded as the graph records them, the inputs read through
 * texture copies (on the software test adapter).
 */
async function runFused(k: Case, textures = false) {
  const gpu = await testGpu();
  const n = k.B * k.S * k.d;
  const zeros = () => new Float32Array(n);
  const p = pack(gpu, [
    k.a,
    k.b,
    k.c,
    zeros(),
    new Uint32Array(n),
    zeros(),
    k.ds,
    new Float32Array(3 * n),
  ], "t");
  const [a, b, c, m, argmax, s, ds, grad] = p.slices;
  const common = { d: k.d, heads: k.heads, maxRows: k.B * k.S };
  const forward = createMaxStateForward(gpu, { a, b, c, m, argmax, s, ...common });
  const backward = createMaxStateBackward(gpu, { ds, m, c, argmax, grad, ...common });
  const dims = { B: k.B, S: k.S };
  if (textures) {
    assertEquals(forward.encodeCommands !== undefined, k.d % 4 === 0, "texture form (vec4 only)");
    assertEquals(backward.encodeCommands !== undefined, k.d % 4 === 0, "texture form (vec4 only)");
    await recordSteps(gpu, [[forward, dims], [backward, dims]]);
  } else {
    await runSteps(gpu, [[forward, dims], [backward, dims]]);
  }
  const r = await readPacked(gpu, p);
  r.assertGapsIntact();
  // Each row of the gradient is [da | db | dc].
  const g = r.f32(7);
  const part = (which: number) =>
    Float32Array.from(
      { length: n },
      (_, i) => g[Math.floor(i / k.d) * 3 * k.d + which * k.d + i % k.d],
    );
  const out = {
    m: r.f32(3).slice(),
    argmax: r.u32(4).slice(),
    s: r.f32(5).slice(),
    da: part(0),
    db: part(1),
    dc: part(2),
  };
  forward.destroy();
  backward.destroy();
  p.buffer.destroy();
  return out;
}

/** The reference composed op by op: z in f32 as the kernel computes it, then f64. */
function reference(k: Case) {
  const { B, S, d } = k;
  const sqrtHs = Math.fround(Math.sqrt(d / k.heads));
  const z = new Float32Array(B * S * d);
  for (let i = 0; i < z.length; i++) z[i] = Math.fround(k.a[i] + k.b[i]) / sqrtHs;
  const { m, argmax } = runningMaxForward(z, B, S, d);
  const s = maxStateForward(m, k.c, k.b);
  const g = maxStateBackward(k.ds, m, k.c);
  const dz = runningMaxBackward(g.dm, argmax, B, S, d);
  const da = dz.map((v) => v / sqrtHs);
  const db = g.db.map((v, i) => v + da[i]);
  return { m, argmax, s, da, db, dc: g.dc };
}

function assertMatchesReference(k: Case, gpu: Awaited<ReturnType<typeof runFused>>): void {
  const ref = reference(k);
  assertEquals(Array.from(gpu.argmax), Array.from(ref.argmax), "argmax");
  assertClose(gpu.m, ref.m, 1e-6, "m");
  assertClose(gpu.s, ref.s, 1e-6, "s");
  assertClose(gpu.da, ref.da, 1e-5, "da");
  assertClose(gpu.db, ref.db, 1e-5, "db");
  assertClose(gpu.dc, ref.dc, 1e-6, "dc");
}

Deno.test("fused MaxState forward/backward match the composed reference (hs = 3)", async () => {
  const k = randomCase(11, 3, 13, 21, 7);
  assertMatchesReference(k, await runFused(k));
});

Deno.test("fused MaxState with exact ties in z sends gradients to the latest position", async () => {
  // Small integers with hs = 4: z = (a + b) / 2 is exact and ties often.
  const k = randomCase(12, 2, 17, 20, 5);
  const rng = new Random(13, "max-state-ties");
  for (let i = 0; i < k.a.length; i++) {
    k.a[i] = rng.int(3);
    k.b[i] = rng.int(3);
  }
  const gpu = await runFused(k);
  assertMatchesReference(k, gpu);
  // Ties that moved the argmax: z[t] equal to the running max before t.
  let ties = 0;
  for (let i = 0; i < gpu.m.length; i++) {
    const t = Math.floor(i / k.d) % k.S;
    if (t > 0 && gpu.argmax[i] === t && gpu.m[i] === gpu.m[i - k.d]) ties++;
  }
  if (ties < 10) throw new Error(`the test input should hold many ties, found ${ties}`);
});

Deno.test("fused MaxState backward is bit-identical across runs", async () => {
  const k = randomCase(14, 3, 13, 20, 4);
  const x = await runFused(k);
  const y = await runFused(k);
  for (const key of ["m", "s", "da", "db", "dc"] as const) assertBitIdentical(x[key], y[key], key);
});

Deno.test("fused MaxState reading its inputs through textures gives the storage kernels' bits", async () => {
  // 3*13*5 = 195 vec4s (one partial texture row), 5*29*20 = 2900 (11 full rows and a partial
  // one); the small case runs again after the large one grew the shared textures.
  const cases = [randomCase(15, 3, 13, 20, 4), randomCase(16, 5, 29, 80, 4)];
  const ties = randomCase(17, 2, 17, 20, 5);
  for (let i = 0; i < ties.a.length; i++) [ties.a[i], ties.b[i]] = [i % 3, (i * 7) % 3];
  for (const k of [...cases, cases[0], ties]) {
    const storage = await runFused(k);
    const textured = await runFused(k, true);
    for (const key of ["m", "argmax", "s", "da", "db", "dc"] as const) {
      assertBitIdentical(textured[key], storage[key], `${key} (B=${k.B} S=${k.S} d=${k.d})`);
    }
  }
});

Deno.test("a MaxState step reads the right textures after another step grew the shared ones", async () => {
  const gpu = await testGpu();
  const build = (k: Case) => {
    const n = k.B * k.S * k.d;
    const p = pack(gpu, [
      k.a,
      k.b,
      k.c,
      new Float32Array(n),
      new Uint32Array(n),
      new Float32Array(n),
    ], "t");
    const [a, b, c, m, argmax, s] = p.slices;
    const step = createMaxStateForward(gpu, {
      a,
      b,
      c,
      m,
      argmax,
      s,
      d: k.d,
      heads: k.heads,
      maxRows: k.B * k.S,
    });
    return { p, step, dims: { B: k.B, S: k.S } };
  };
  const small = build(randomCase(18, 2, 5, 8, 2));
  await recordSteps(gpu, [[small.step, small.dims]]);
  const first = (await readPacked(gpu, small.p)).f32(5).slice();
  // A larger step replaces the shared textures (64*64*64/4 vec4s: 256 rows).
  const large = build(randomCase(19, 64, 64, 64, 2));
  await recordSteps(gpu, [[large.step, large.dims]]);
  await recordSteps(gpu, [[small.step, small.dims]]);
  assertBitIdentical((await readPacked(gpu, small.p)).f32(5), first, "s after the textures grew");
  for (const x of [small, large]) {
    x.step.destroy();
    x.p.buffer.destroy();
  }
});

Deno.test("MaxState rejects a head count that does not divide d", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(4)], "t");
  const x = p.slices[0];
  assertThrows(
    () =>
      createMaxStateForward(gpu, {
        a: x,
        b: x,
        c: x,
        m: x,
        argmax: x,
        s: x,
        d: 20,
        heads: 3,
        maxRows: 1,
      }),
    "d = 20 is not divisible by heads = 3",
  );
  p.buffer.destroy();
});
