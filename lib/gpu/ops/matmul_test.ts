import { assert, assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { linearBackward, linearForward } from "../../model/reference.ts";
import {
  type BufferSlice,
  createStorageBufferFrom,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
  readFloat32,
  requestGpu,
} from "../device.ts";
import {
  createMatmulNN,
  createMatmulNT,
  createMatmulTN,
  createOperandPack,
  defaultTile,
  HARDWARE_TILE,
  linearPackWidth,
  type MatmulDims,
  type MatmulTile,
  SOFTWARE_TILE,
  SOFTWARE_TILE_TN,
  subgroupXRuns,
  textureFetch,
} from "./matmul.ts";
import { createColumnSum } from "./column_sum.ts";
import { createPack, textureMatmulWgsl } from "./matmul_texture.ts";
import { allMatmulCandidates } from "../tuning.ts";
import { recordStages, type Stage } from "../../model/resources.ts";
import { packTensors, randomUniform, readSlice, recordSteps, runSteps } from "./test_helpers.ts";

const TOL = 2e-6;

function gpu(): Promise<Gpu> {
  return requestGpu();
}

/** x [M,K], w [N,K], bias [N], dy [M,N] with uniform entries. */
function randomLayer(seed: number, { M, N, K }: MatmulDims) {
  const rng = new Random(seed, "matmul_test");
  return {
    x: randomUniform(rng, M * K),
    w: randomUniform(rng, N * K),
    bias: randomUniform(rng, N),
    dy: randomUniform(rng, M * N),
  };
}

// N, K multiples of 4 run the vec4 kernels; the others the scalar ones.
for (
  const dims of [
    { M: 37, N: 45, K: 29 },
    { M: 5, N: 3, K: 1 },
    { M: 130, N: 67, K: 200 },
    { M: 37, N: 44, K: 28 },
  ]
) {
  const shape = `M=${dims.M} N=${dims.N} K=${dims.K}`;

  Deno.test(`matmulNT: y = x W^T + b matches linearForward (${shape})`, async () => {
    const g = await gpu();
    const { x, w, bias } = randomLayer(1, dims);
    const inputs = packTensors(g, [x, w, bias]);
    const [a, b, bs] = inputs.slices;
    const output = packTensors(g, [new Float32Array(dims.M * dims.N)], 768);
    const [c] = output.slices;
    const step = createMatmulNT(g, { a, b, bias: bs, c });
    await runSteps(g, [[step, dims]]);
    assertClose(
      await readSlice(g, c),
      linearForward(x, w, bias, dims.M, dims.K, dims.N),
      TOL,
      "y",
    );
    step.destroy();
    inputs.buffer.destroy();
    output.buffer.destroy();
  });

  Deno.test(`matmulNN/TN/columnSum: dx, dW, db match linearBackward (${shape})`, async () => {
    const g = await gpu();
    const { x, w, dy } = randomLayer(2, dims);
    const inputs = packTensors(g, [x, w, dy], 512);
    const [xs, ws, dys] = inputs.slices;
    const outputs = packTensors(g, [
      new Float32Array(dims.M * dims.K),
      new Float32Array(dims.N * dims.K),
      new Float32Array(dims.N),
    ]);
    const [dx, dw, db] = outputs.slices;
    const nn = createMatmulNN(g, { a: dys, b: ws, c: dx });
    const tn = createMatmulTN(g, { a: dys, b: xs, c: dw });
    const cs = createColumnSum(g, { dy: dys, db });
    await runSteps<MatmulDims>(g, [[nn, dims], [tn, dims], [cs, dims]]);
    const expected = linearBackward(x, w, dy, dims.M, dims.K, dims.N);
    assertClose(await readSlice(g, dx), expected.dx, TOL, "dx");
    assertClose(await readSlice(g, dw), expected.dw, TOL, "dW");
    assertClose(await readSlice(g, db), expected.db, TOL, "db");
    for (const s of [nn, tn, cs]) s.destroy();
    inputs.buffer.destroy();
    outputs.buffer.destroy();
  });
}

// N, K multiples of 4: the vec4 kernels' accumulate epilogue; otherwise the scalar ones'.
for (const dims of [{ M: 19, N: 13, K: 11 }, { M: 19, N: 12, K: 8 }]) {
  const shape = `M=${dims.M} N=${dims.N} K=${dims.K}`;
  Deno.test(`matmul: accumulate adds the product to the output's contents (${shape})`, async () => {
    const g = await gpu();
    const { x, w, bias, dy } = randomLayer(3, dims);
    const rng = new Random(4, "matmul_test");
    const y0 = randomUniform(rng, dims.M * dims.N);
    const dx0 = randomUniform(rng, dims.M * dims.K);
    const dw0 = randomUniform(rng, dims.N * dims.K);
    const db0 = randomUniform(rng, dims.N);
    const inputs = packTensors(g, [x, w, bias, dy]);
    const [xs, ws, bs, dys] = inputs.slices;
    const outputs = packTensors(g, [y0, dx0, dw0, db0]);
    const [y, dx, dw, db] = outputs.slices;
    const steps = [
      createMatmulNT(g, { a: xs, b: ws, bias: bs, c: y, accumulate: true }),
      createMatmulNN(g, { a: dys, b: ws, c: dx, accumulate: true }),
      createMatmulTN(g, { a: dys, b: xs, c: dw, accumulate: true }),
      createColumnSum(g, { dy: dys, db, accumulate: true }),
    ];
    await runSteps<MatmulDims>(g, steps.map((s) => [s, dims]));
    const fwd = linearForward(x, w, bias, dims.M, dims.K, dims.N);
    const bwd = linearBackward(x, w, dy, dims.M, dims.K, dims.N);
    const plus = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a, (v, i) => v + b[i]);
    assertClose(await readSlice(g, y), plus(y0, fwd), TOL, "y += x W^T + b");
    assertClose(await readSlice(g, dx), plus(dx0, bwd.dx), TOL, "dx += dy W");
    assertClose(await readSlice(g, dw), plus(dw0, bwd.dw), TOL, "dW += dy^T x");
    assertClose(await readSlice(g, db), plus(db0, bwd.db), TOL, "db += colsum(dy)");
    for (const s of steps) s.destroy();
    inputs.buffer.destroy();
    outputs.buffer.destroy();
  });
}

Deno.test("matmul: M changes per encode and only the first M rows are written", async () => {
  const g = await gpu();
  const full = { M: 40, N: 21, K: 17 };
  const { x, w } = randomLayer(5, full);
  const a = createStorageBufferFrom(g, x, "x");
  const b = createStorageBufferFrom(g, w, "w");
  const c = createStorageBufferFrom(g, new Float32Array(full.M * full.N).fill(7), "y");
  const step = createMatmulNT(g, { a, b, c });
  const small = { ...full, M: 9 };
  await runSteps(g, [[step, small]]);
  const y = await readFloat32(g, c, full.M * full.N);
  assertClose(
    y.subarray(0, small.M * full.N),
    linearForward(x, w, undefined, small.M, full.K, full.N),
    TOL,
    "first rows",
  );
  assert(y.subarray(small.M * full.N).every((v) => v === 7), "rows past M must stay untouched");
  step.destroy();
  for (const buf of [a, b, c]) buf.destroy();
});

Deno.test("matmul: the hardware-GPU tiling gives the same products (M=37 N=45 K=29)", async () => {
  const g = await gpu();
  const dims = { M: 37, N: 45, K: 29 };
  const { x, w, bias, dy } = randomLayer(7, dims);
  const inputs = packTensors(g, [x, w, bias, dy]);
  const [xs, ws, bs, dys] = inputs.slices;
  const outputs = packTensors(g, [
    new Float32Array(dims.M * dims.N),
    new Float32Array(dims.M * dims.K),
    new Float32Array(dims.N * dims.K),
  ]);
  const [y, dx, dw] = outputs.slices;
  const steps = [
    createMatmulNT(g, { a: xs, b: ws, bias: bs, c: y }, HARDWARE_TILE),
    createMatmulNN(g, { a: dys, b: ws, c: dx }, HARDWARE_TILE),
    createMatmulTN(g, { a: dys, b: xs, c: dw }, HARDWARE_TILE),
  ];
  await runSteps<MatmulDims>(g, steps.map((s) => [s, dims]));
  const bwd = linearBackward(x, w, dy, dims.M, dims.K, dims.N);
  assertClose(await readSlice(g, y), linearForward(x, w, bias, dims.M, dims.K, dims.N), TOL, "y");
  assertClose(await readSlice(g, dx), bwd.dx, TOL, "dx");
  assertClose(await readSlice(g, dw), bwd.dw, TOL, "dW");
  for (const s of steps) s.destroy();
  inputs.buffer.destroy();
  outputs.buffer.destroy();
});

/**
 * The kernel variants that must agree bit for bit: every candidate the
 * tuner may pick on any adapter (lib/gpu/tuning.ts), so a GPU-only variant is
 * never untested, plus the scalar storage kernel.
 */
function variants(): Record<string, MatmulTile> {
  const out: Record<string, MatmulTile> = {
    "storage scalar 16x8": { ...SOFTWARE_TILE, texture: false, vec4: false },
  };
  const seen = new Set<string>();
  for (const list of Object.values(allMatmulCandidates())) {
    for (const c of list) {
      const key = JSON.stringify(c.tile);
      if (seen.has(key)) continue;
      seen.add(key);
      out[`${c.name} (${c.tile.wgX}x${c.tile.wgY} wg)`] = c.tile;
    }
  }
  return out;
}

Deno.test("matmul: every kernel variant gives bit-identical products (M=37 N=44 K=28)", async () => {
  const g = await gpu();
  const dims = { M: 37, N: 44, K: 28 };
  const { x, w, bias, dy } = randomLayer(8, dims);
  const inputs = packTensors(g, [x, w, bias, dy]);
  const [xs, ws, bs, dys] = inputs.slices;
  const dx0 = randomUniform(new Random(9, "matmul_test"), dims.M * dims.K);
  const sizes = [dims.M * dims.N, dims.M * dims.K, dims.N * dims.K];
  const results = new Map<string, Uint32Array[]>();
  for (const [name, tile] of Object.entries(variants())) {
    const outputs = packTensors(g, [new Float32Array(sizes[0]), dx0, new Float32Array(sizes[2])]);
    const [y, dx, dw] = outputs.slices;
    const steps = [
      createMatmulNT(g, { a: xs, b: ws, bias: bs, c: y }, tile),
      createMatmulNN(g, { a: dys, b: ws, c: dx, accumulate: true }, tile),
      createMatmulTN(g, { a: dys, b: xs, c: dw }, tile),
    ];
    await runSteps<MatmulDims>(g, steps.map((s) => [s, dims]));
    results.set(name, await readBits(g, outputs.slices));
    for (const s of steps) s.destroy();
    outputs.buffer.destroy();
  }
  const [first, ...others] = [...results.entries()];
  for (const [name, got] of others) {
    for (const [i, what] of ["y = xW^T + b", "dx += dy W", "dW"].entries()) {
      assertEquals(got[i], first[1][i], `${what}: ${name} and ${first[0]} bits differ`);
    }
  }
  inputs.buffer.destroy();
});

// Sizes not multiples of 4 (zero-padded texels, scalar stores), with bias and accumulate.
Deno.test("matmul: the texture kernels' edges and epilogues, loaded or read as images, match the storage kernels bit for bit (M=37 N=45 K=29)", async () => {
  const g = await gpu();
  const dims = { M: 37, N: 45, K: 29 };
  const { x, w, bias, dy } = randomLayer(11, dims);
  const inputs = packTensors(g, [x, w, bias, dy]);
  const [xs, ws, bs, dys] = inputs.slices;
  const rng = new Random(12, "matmul_test");
  const start = [dims.M * dims.N, dims.M * dims.K, dims.N * dims.K].map((n) =>
    randomUniform(rng, n)
  );
  const results: Uint32Array[][] = [];
  // Storage, then texture read by textureLoad (hardware GPUs), then as images (llvmpipe),
  // then with X broadcast through subgroups, and the same on a device without 8-wide
  // subgroups (where the tile runs as if subgroupX were unset).
  const noSubgroups: Gpu = { ...g, subgroupSize: undefined };
  const forms = [
    { texture: false },
    { texture: true, fetch: "load" as const },
    { texture: true, fetch: "image" as const },
    { texture: true, fetch: "image" as const, subgroupX: true },
    { texture: true, fetch: "image" as const, subgroupX: true, device: noSubgroups },
  ];
  assertEquals(textureFetch(g, SOFTWARE_TILE), "image", "llvmpipe's default");
  assert(!subgroupXRuns(noSubgroups));
  for (const { device, ...form } of forms) {
    const h = device ?? g;
    const tile = { ...SOFTWARE_TILE, ...form };
    const outputs = packTensors(g, [...start, ...start]);
    const [y, dx, dw, yAcc, dxAcc, dwAcc] = outputs.slices;
    const steps = [
      createMatmulNT(h, { a: xs, b: ws, bias: bs, c: y }, tile),
      createMatmulNN(h, { a: dys, b: ws, c: dx }, tile),
      createMatmulTN(h, { a: dys, b: xs, c: dw }, tile),
      createMatmulNT(h, { a: xs, b: ws, bias: bs, c: yAcc, accumulate: true }, tile),
      createMatmulNN(h, { a: dys, b: ws, c: dxAcc, accumulate: true }, tile),
      createMatmulTN(h, { a: dys, b: xs, c: dwAcc, accumulate: true }, tile),
    ];
    await runSteps<MatmulDims>(g, steps.map((s) => [s, dims]));
    results.push(await readBits(g, outputs.slices));
    for (const s of steps) s.destroy();
    outputs.buffer.destroy();
  }
  for (const [i, what] of ["y", "dx", "dW", "y+=", "dx+=", "dW+="].entries()) {
    assertEquals(results[1][i], results[0][i], `${what}: texture (load) and storage bits differ`);
    assertEquals(results[2][i], results[0][i], `${what}: texture (image) and storage bits differ`);
    assertEquals(results[3][i], results[0][i], `${what}: subgroupX and storage bits differ`);
    assertEquals(results[4][i], results[0][i], `${what}: subgroupX unrun and storage bits differ`);
  }
  inputs.buffer.destroy();
});

async function readBits(g: Gpu, slices: BufferSlice[]): Promise<Uint32Array[]> {
  return await Promise.all(slices.map(async (s) => {
    const f = await readSlice(g, s);
    return new Uint32Array(f.buffer, f.byteOffset, f.length);
  }));
}

Deno.test("matmul: operands larger than the device's textures run the storage kernel", async () => {
  const g = await gpu();
  // A device whose textures hold at most 8 rows: M = 37 rows cannot be packed.
  const small: Gpu = { ...g, limits: { maxTextureDimension2D: 8 } as GPUSupportedLimits };
  const dims = { M: 37, N: 12, K: 8 };
  const { x, w, bias } = randomLayer(10, dims);
  const inputs = packTensors(g, [x, w, bias]);
  const [xs, ws, bs] = inputs.slices;
  const outputs = packTensors(g, [new Float32Array(dims.M * dims.N)]);
  const step = createMatmulNT(small, { a: xs, b: ws, bias: bs, c: outputs.slices[0] }, {
    ...SOFTWARE_TILE,
    texture: true,
  });
  await runSteps(g, [[step, dims]]);
  assertClose(
    await readSlice(g, outputs.slices[0]),
    linearForward(x, w, bias, dims.M, dims.K, dims.N),
    TOL,
    "y",
  );
  step.destroy();
  inputs.buffer.destroy();
  outputs.buffer.destroy();
});

Deno.test("matmul: an output in the same buffer as an input is refused", async () => {
  const g = await gpu();
  const packed = packTensors(g, [new Float32Array(6), new Float32Array(6), new Float32Array(4)]);
  const [a, b, c] = packed.slices;
  assertThrows(() => createMatmulNT(g, { a, b, c }), "same GPUBuffer");
  packed.buffer.destroy();
});

Deno.test("matmul: two runs give bit-identical results", async () => {
  const g = await gpu();
  const dims = { M: 300, N: 33, K: 70 };
  const { x, dy } = randomLayer(6, dims);
  const a = createStorageBufferFrom(g, dy, "dy");
  const b = createStorageBufferFrom(g, x, "x");
  const runs: Float32Array[] = [];
  for (let r = 0; r < 2; r++) {
    const c = createStorageBufferFrom(g, new Float32Array(dims.N * dims.K), "dw");
    const step = createMatmulTN(g, { a, b, c });
    await runSteps(g, [[step, dims]]);
    runs.push(await readFloat32(g, c, dims.N * dims.K));
    step.destroy();
    c.destroy();
  }
  assertEquals(new Uint32Array(runs[0].buffer), new Uint32Array(runs[1].buffer));
  a.destroy();
  b.destroy();
});

// H, N = 128, 64: rows of 256-byte multiples, copied as they are; 100, 36: whole
// texels, copied into linear textures (the products address those by index).
for (const [H, N] of [[128, 64], [100, 36]]) {
  Deno.test(`matmul: operands packed by a copy give the products of the storage kernels bit for bit (H=${H} N=${N})`, async () => {
    // h = x W1^T (a dispatch), h copied into its texture (outside the pass),
    // y = h W2^T, dh = dy W2 and dW2 = dy^T h read the copies: recordStages orders them.
    const g = await gpu();
    const [M, K] = [37, 64];
    const rng = new Random(21, "matmul_test");
    const [x, w1, w2, dy] = [M * K, H * K, N * H, M * N].map((n) => randomUniform(rng, n));
    const inputs = packTensors(g, [x, w1, w2, dy]);
    const [xs, w1s, w2s, dys] = inputs.slices;
    const results: Uint32Array[][] = [];
    for (const texture of [false, true]) {
      const tile = { ...SOFTWARE_TILE, texture };
      const tileTN = { ...SOFTWARE_TILE_TN, texture };
      const outputs = [M * H, M * N, M * H, N * H].map((n) =>
        createStorageBufferFrom(g, new Float32Array(n), "out")
      );
      const [hs, ys, dhs, dws] = outputs;
      const hPack = createOperandPack(g, hs, H, "h", M)!;
      const dyPack = createOperandPack(g, dys, N, "dy", M)!;
      assert(hPack.encodeCommands && dyPack.encodeCommands, "both are copied");
      const linear = H % 64 !== 0;
      assertEquals(
        [hPack.operand.linearWidth() > 0, dyPack.operand.linearWidth() > 0],
        [linear, linear],
      );
      const packed = (p: typeof hPack) => texture ? p.operand : undefined;
      const steps = [
        createMatmulNT(g, { a: xs, b: w1s, c: hs }, tile),
        createMatmulNT(g, { a: hs, b: w2s, c: ys, packedA: packed(hPack) }, tile),
        createMatmulNN(g, { a: dys, b: w2s, c: dhs, packedA: packed(dyPack) }, tile),
        createMatmulTN(
          g,
          { a: dys, b: hs, c: dws, packedA: packed(dyPack), packedB: packed(hPack) },
          tileTN,
        ),
      ];
      const stage = <D>(step: GpuStep<D>, d: D): Stage => ({
        name: "s",
        encode: (pass) => step.encode(pass, d),
        ...(step.encodeCommands && { commands: (enc) => step.encodeCommands!(enc, d) }),
      });
      const stages = [
        stage(steps[0], { M, N: H, K }),
        ...(texture ? [stage(hPack, { rows: M }), stage(dyPack, { rows: M })] : []),
        stage(steps[1], { M, N, K: H }),
        stage(steps[2], { M, N, K: H }),
        stage(steps[3], { M, N, K: H }),
      ];
      const enc = g.device.createCommandEncoder();
      recordStages(enc, "test", stages, { B: 1, S: M, rows: M });
      g.device.queue.submit([enc.finish()]);
      results.push(
        await readBits(g, outputs.map((buffer) => ({ buffer, offset: 0, size: buffer.size }))),
      );
      for (const s of [...steps, hPack, dyPack]) s.destroy();
      for (const b of outputs) b.destroy();
    }
    for (const [i, what] of ["h", "y", "dh", "dW"].entries()) {
      assertEquals(results[1][i], results[0][i], `${what}: copied-texture and storage bits differ`);
    }
    inputs.buffer.destroy();
  });
}

Deno.test("matmul: row-major operands of whole texels at a 16-byte offset are copied", async () => {
  const g = await gpu();
  const buffer = createStorageBufferFrom(g, new Float32Array(64 * 100), "copyable");
  const pack = (cols: number, offset = 0) =>
    createOperandPack(g, { buffer, offset, size: 4 * cols * 8 }, cols, "p", 8)!;
  const form = (cols: number, offset = 0) => {
    const p = pack(cols, offset);
    const copied = p.encodeCommands !== undefined;
    const result = copied ? (p.operand.linearWidth() ? "linear" : "rows") : "dispatch";
    p.destroy();
    return result;
  };
  assertEquals([form(64), form(128), form(64, 256), form(64, 16)], [
    "rows",
    "rows",
    "rows",
    "rows",
  ]);
  assertEquals([form(100), form(60), form(1100)], ["linear", "linear", "linear"]);
  assertEquals(form(62), "dispatch", "62-float rows split texels");
  assertEquals(form(64, 8), "dispatch", "an 8-byte offset");
  const transposed = createPack(g, buffer, true, "t");
  assert(!transposed.copyable({ rows: 8, cols: 64 }), "a transposed read is not a copy");
  const rows = createPack(g, buffer, false, "n");
  assert(rows.copyable({ rows: 8, cols: 64 }));
  assert(!rows.copyable({ rows: 8, cols: 100 }), "a 2-D pack needs 256-byte rows");
  assert(!rows.copyable({ rows: 8, cols: 64, padRows: 12 }), "zero rows need the dispatch");
  assertThrows(() => rows.encodeCopy(g.device.createCommandEncoder(), { rows: 8, cols: 60 }));
  assertThrows(() => createPack(g, buffer, true, "tl", 256), "a linear pack cannot be transposed");
  // A device whose textures are 256 texels on a side (a linear pack cannot widen past 256):
  // 300 rows of 1100 floats need 323 rows of a linear texture; 8 rows of 16 floats need one.
  const small: Gpu = { ...g, limits: { maxTextureDimension2D: 256 } as GPUSupportedLimits };
  assertEquals(createOperandPack(small, buffer, 1100, "big", 300), undefined, "too large: no pack");
  const fits = createOperandPack(small, buffer, 16, "fits", 8);
  assert(fits !== undefined, "8 rows of 16 floats fit");
  fits.destroy();
  for (const p of [transposed, rows]) p.destroy();
  buffer.destroy();
});

Deno.test("matmul: a linear pack widens until its rows fit in the device's textures", async () => {
  const g = await gpu();
  const max = g.limits.maxTextureDimension2D;
  assertEquals(linearPackWidth(g, 1100 * 16), 256, "a small operand keeps 256-texel rows");
  assertEquals(linearPackWidth(g, 256 * max), 256, "exactly the device's rows");
  assertEquals(linearPackWidth(g, 256 * max + 1), 512);
  const dLogits = 4096 * 1025; // the large bench configuration's [B·S, V] at V = 4100
  assertEquals(linearPackWidth(g, dLogits), Math.ceil(dLogits / 256) > max ? 512 : 256);
});

Deno.test("matmul: products read a 512-texel-wide linear pack as the storage kernel reads the buffer, bit for bit", async () => {
  const g = await gpu();
  const [M, N, K] = [37, 45, 300]; // 75 texels a row: rows straddle the texture's rows
  const rng = new Random(31, "matmul_test");
  const [x, w] = [M * K, N * K].map((n) => randomUniform(rng, n));
  const inputs = packTensors(g, [x, w]);
  const [xs, ws] = inputs.slices;
  const results: Uint32Array[] = [];
  for (const wide of [false, true]) {
    const out = createStorageBufferFrom(g, new Float32Array(M * N), "out");
    const pack = wide ? createPack(g, xs, false, "wide", 512) : undefined;
    const step = createMatmulNT(
      g,
      { a: xs, b: ws, c: out, packedA: pack },
      { ...SOFTWARE_TILE, texture: wide },
    );
    const enc = g.device.createCommandEncoder();
    pack?.encodeCopy(enc, { rows: M, cols: K });
    const pass = enc.beginComputePass();
    step.encode(pass, { M, N, K });
    pass.end();
    g.device.queue.submit([enc.finish()]);
    assertEquals(pack?.linearWidth() ?? 512, 512);
    const [bits] = await readBits(g, [{ buffer: out, offset: 0, size: out.size }]);
    results.push(bits);
    step.destroy();
    pack?.destroy();
    out.destroy();
  }
  assertEquals(results[1], results[0], "wide linear pack and storage bits differ");
  inputs.buffer.destroy();
});

for (const [N, K] of [[45, 29], [44, 28]]) {
  Deno.test(`matmulTN: blockRows gives the sums of a chain of block products, bit for bit, in one texture dispatch, a storage chain or parallel blocks (M=150 in blocks of 64, N=${N} K=${K})`, async () => {
    const g = await gpu();
    const [M, B] = [150, 64];
    const rng = new Random(41, "matmul_test");
    const [dy, x] = [M * N, M * K].map((n) => randomUniform(rng, n));
    const dyBuf = createStorageBufferFrom(g, dy, "dy");
    const xBuf = createStorageBufferFrom(g, x, "x");
    const rows = (buffer: GPUBuffer, row: number, cols: number) => ({
      buffer,
      offset: row * cols * 4,
    });
    // Partials that do not fit one binding: the parallel tile runs the chain.
    const limits: Record<string, unknown> = {};
    for (const key in g.limits) limits[key] = g.limits[key as keyof GPUSupportedLimits];
    const cramped: Gpu = {
      ...g,
      limits: { ...limits, maxStorageBufferBindingSize: 2 * N * K * 4 } as GPUSupportedLimits,
    };
    const storage = { ...SOFTWARE_TILE_TN, texture: false };
    const forms: [string, MatmulTile, Gpu][] = [
      ["storage chain", storage, g],
      ["texture", { ...SOFTWARE_TILE_TN, texture: true }, g],
      ["parallel storage", { ...storage, blockParallel: true }, g],
      ["parallel storage, 4x4 wg16x16", { ...HARDWARE_TILE, blockParallel: true }, g],
      [
        "parallel storage, partials over the binding limit",
        { ...storage, blockParallel: true },
        cramped,
      ],
      ...Object.values(allMatmulCandidates()).flat()
        .filter((c) => c.tile.blockParallel)
        .map((c): [string, MatmulTile, Gpu] => [c.name, c.tile, g]),
    ];
    assert(forms.some(([, t]) => t.workgroupK && t.blockParallel), "no parallel workgroup tile");
    // The reference: one product per block, the first overwriting, the others adding.
    const chain = async () => {
      const out = createStorageBufferFrom(g, new Float32Array(N * K).fill(7), "dW");
      const steps: [GpuStep<MatmulDims>, MatmulDims][] = [0, 1, 2].map((b) => [
        createMatmulTN(
          g,
          { a: rows(dyBuf, b * B, N), b: rows(xBuf, b * B, K), c: out, accumulate: b > 0 },
          storage,
        ),
        { M: Math.min(B, M - b * B), N, K },
      ]);
      await runSteps<MatmulDims>(g, steps);
      const [bits] = await readBits(g, [{ buffer: out, offset: 0, size: out.size }]);
      for (const [s] of steps) s.destroy();
      out.destroy();
      return bits;
    };
    const reference = await chain();
    for (const [name, tile, device] of forms) {
      const out = createStorageBufferFrom(g, new Float32Array(N * K).fill(7), "dW");
      const step = createMatmulTN(device, { a: dyBuf, b: xBuf, c: out, blockRows: B }, tile);
      // Twice, the second with fewer rows (two blocks; then three again): the
      // partials are reused, and only the blocks in use are summed.
      for (const m of [M, 2 * B - 5, M]) {
        await runSteps<MatmulDims>(g, [[step, { M: m, N, K }]]);
      }
      const [bits] = await readBits(g, [{ buffer: out, offset: 0, size: out.size }]);
      assertEquals(bits, reference, `${name} and the chain of products differ`);
      step.destroy();
      out.destroy();
    }
    assertThrows(
      () => createMatmulTN(g, { a: dyBuf, b: xBuf, c: dyBuf, blockRows: 100 }),
      "not a positive multiple of 64",
    );
    assertThrows(
      () => createMatmulTN(g, { a: dyBuf, b: xBuf, c: dyBuf, blockRows: 64, accumulate: true }),
      "does not combine with accumulate",
    );
    dyBuf.destroy();
    xBuf.destroy();
  });
}

Deno.test("matmul: the workgroup-memory kernels over several blocks and slices match the storage kernel bit for bit, and the CPU reference (M=150 N=70 K=45)", async () => {
  const g = await gpu();
  // Rows span 2-3 workgroup blocks, columns 1-2, the reduction 3-6 slices
  // with a short last one; TN sums its rows in blocks of 64.
  const dims = { M: 150, N: 70, K: 45 };
  const { x, w, bias, dy } = randomLayer(43, dims);
  const dx0 = randomUniform(new Random(44, "matmul_test"), dims.M * dims.K);
  const inputs = packTensors(g, [x, w, bias, dy]);
  const [xs, ws, bs, dys] = inputs.slices;
  const sizes = [dims.M * dims.N, dims.M * dims.K, dims.N * dims.K];
  const run = async (tile: MatmulTile) => {
    const outputs = packTensors(g, [new Float32Array(sizes[0]), dx0, new Float32Array(sizes[2])]);
    const [y, dx, dw] = outputs.slices;
    const steps = [
      createMatmulNT(g, { a: xs, b: ws, bias: bs, c: y }, tile),
      createMatmulNN(g, { a: dys, b: ws, c: dx, accumulate: true }, tile),
      createMatmulTN(g, { a: dys, b: xs, c: dw, blockRows: 64 }, tile),
    ];
    await runSteps<MatmulDims>(g, steps.map((s) => [s, dims]));
    const bits = await readBits(g, outputs.slices);
    const values = await Promise.all(outputs.slices.map((s) => readSlice(g, s)));
    for (const s of steps) s.destroy();
    outputs.buffer.destroy();
    return { bits, values };
  };
  const reference = await run({ ...SOFTWARE_TILE, texture: false, vec4: false });
  const bwd = linearBackward(x, w, dy, dims.M, dims.K, dims.N);
  const expected = [
    linearForward(x, w, bias, dims.M, dims.K, dims.N),
    dx0.map((v, i) => v + bwd.dx[i]),
    bwd.dw,
  ];
  const candidates = Object.values(allMatmulCandidates()).flat()
    .filter((c) => c.tile.workgroupK !== undefined);
  assert(candidates.length > 0, "no workgroup-memory candidate to test");
  for (const { name, tile } of candidates) {
    const got = await run(tile);
    for (const [i, what] of ["y = xW^T + b", "dx += dy W", "dW (blocks of 64 rows)"].entries()) {
      assertClose(got.values[i], expected[i], 1e-5, `${what}: ${name} against the CPU reference`);
      assertEquals(
        got.bits[i],
        reference.bits[i],
        `${what}: ${name} and the storage kernel differ`,
      );
    }
  }
  inputs.buffer.destroy();
});

Deno.test("matmul: a workgroup-memory tile the device cannot run, or with textures, is refused", async () => {
  const g = await gpu();
  const a = createStorageBufferFrom(g, new Float32Array(16), "a");
  const b = createStorageBufferFrom(g, new Float32Array(16), "b");
  const c = createStorageBufferFrom(g, new Float32Array(16), "c");
  const base = { ...HARDWARE_TILE, texture: false };
  assertThrows(
    () => createMatmulNN(g, { a, b, c }, { ...base, rows: 32, cols: 32, workgroupK: 16 }),
    "bytes of workgroup memory",
  );
  assertThrows(
    () => createMatmulNN(g, { a, b, c }, { ...base, workgroupK: 3 }),
    "multiples of the workgroup",
  );
  assertThrows(
    () => createMatmulNN(g, { a, b, c }, { ...base, texture: true, workgroupK: 16 }),
    "storage buffers only",
  );
  for (const buf of [a, b, c]) buf.destroy();
});

Deno.test("matmul: subgroupX needs one 8x1 workgroup per subgroup and rows a multiple of 8", () => {
  const spec = { x: "pr" as const, bias: false, accumulate: false, vec4Out: true };
  const tile = { ...SOFTWARE_TILE, subgroupX: true };
  assert(textureMatmulWgsl({ ...spec, tile }).includes("subgroupBroadcast"));
  assert(!textureMatmulWgsl({ ...spec, tile: SOFTWARE_TILE }).includes("subgroupBroadcast"));
  // Two rows of 4 lanes would broadcast another row's X; 12 rows leave a partial lane load.
  assertThrows(
    () => textureMatmulWgsl({ ...spec, tile: { ...tile, wgX: 4, wgY: 2 } }),
    "8x1",
  );
  assertThrows(() => textureMatmulWgsl({ ...spec, tile: { ...tile, rows: 12 } }), "8x1");
  assertThrows(
    () => textureMatmulWgsl({ ...spec, x: "rp", tile: { ...tile, rows: 4 } }),
    "multiple of 8",
  );
});

Deno.test("matmul: accumulating products recorded outside a pass read C's old values from a texture copy, the same bits", async () => {
  const g = await gpu();
  for (const dims of [{ M: 37, N: 44, K: 28 }, { M: 37, N: 45, K: 29 }]) {
    const { x, w, bias, dy } = randomLayer(13, dims);
    const inputs = packTensors(g, [x, w, bias, dy]);
    const [xs, ws, bs, dys] = inputs.slices;
    const rng = new Random(14, "matmul_test");
    const start = [dims.M * dims.N, dims.M * dims.K].map((n) => randomUniform(rng, n));
    const results: Uint32Array[][] = [];
    for (const record of [false, true]) {
      const outputs = packTensors(g, start);
      const [y, dx] = outputs.slices;
      const tile = defaultTile(g, "NT");
      const steps = [
        createMatmulNT(g, { a: xs, b: ws, bias: bs, c: y, accumulate: true }, tile),
        createMatmulNN(g, { a: dys, b: ws, c: dx, accumulate: true }, tile),
      ];
      // Where C's rows are whole texels the recorded form copies C first (on a software
      // adapter); elsewhere it reads C as the pass form does.
      if (isSoftwareAdapter(g)) {
        for (const s of steps) assertEquals(s.encodeCommands !== undefined, true);
      }
      const pairs = steps.map((s) => [s, dims] as [GpuStep<MatmulDims>, MatmulDims]);
      if (record) await recordSteps(g, pairs);
      else await runSteps(g, pairs);
      results.push(await readBits(g, outputs.slices));
      for (const s of steps) s.destroy();
      outputs.buffer.destroy();
    }
    assertEquals(results[1][0], results[0][0], `y += x W^T + b (${JSON.stringify(dims)})`);
    assertEquals(results[1][1], results[0][1], `dx += dy W (${JSON.stringify(dims)})`);
    inputs.buffer.destroy();
  }
});
