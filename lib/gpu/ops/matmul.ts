/**
 * Row-major f32 matrix products for the linear layers of the training graph:
 *
 * - forward   `C[M,N]  = A[M,K] · B[N,K]^T (+ bias[N]) (+ C)`  ({@link createMatmulNT}),
 * - backward  `dX[M,K] = dY[M,N] · W[N,K]            (+ dX)`  ({@link createMatmulNN}),
 * - backward  `dW[N,K] = dY[M,N]^T · X[M,K]          (+ dW)`  ({@link createMatmulTN});
 *
 * the bias gradient's column sums are column_sum.ts.
 *
 * The three products are one register-tiled kernel template (NT runs it on a
 * transposed copy of its weight): each invocation owns a `TILE.rows x
 * TILE.cols` block of the output and walks the whole reduction axis in order
 * 0, 1, 2, … (no split-K, no atomics), so every output element is summed in a
 * fixed order and results are bit-identical run to run. Sizes need not be
 * multiples of the tile: loads clamp their row/column to the last valid one
 * and stores are guarded. Where the sizes are multiples of 4 the kernel moves
 * `vec4<f32>`s (same sums, same bits), otherwise a scalar variant runs.
 *
 * Tiling depends on the adapter ({@link defaultTile}): large per-invocation
 * blocks on llvmpipe, small ones on GPUs. On llvmpipe the operands are read
 * through textures packed from the buffers (matmul_texture.ts), a texel fetch
 * being several times cheaper there than a storage load; same sums, same
 * bits. lib/gpu/tuning.ts chooses among tilings per adapter. An output must
 * live in a different GPUBuffer than the inputs (WebGPU silently drops a
 * dispatch that binds one buffer read-only and writable); the factories
 * throw otherwise.
 *
 * This file is the products' face: their shapes, tilings, operand packs and
 * the choice between forms. The kernels live beside it: matmul_storage.ts
 * (operands from storage buffers, the weight transpose, parallel row blocks),
 * matmul_texture.ts (operands from textures, and the packs) and
 * matmul_workgroup.ts (workgroup memory, for GPUs).
 *
 * @module
 */
import {
  type BufferSlice,
  createStorageBuffer,
  encodeOutsidePass,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import {
  createPack,
  createTextureProduct,
  packCopyable,
  type PackedOperand,
  SUBGROUP_X_SIZE,
  type TexelFetch,
} from "./matmul_texture.ts";
import {
  createParallelBlocks,
  createStorageProduct,
  createTranspose,
  type PQR,
} from "./matmul_storage.ts";

export type { PackedOperand } from "./matmul_texture.ts";

/** Dimensions of one product, written at encode time (M = rows of this batch). */
export interface MatmulDims {
  /** Rows of the activations (B*S of this batch). */
  M: number;
  /** Output features of the linear layer. */
  N: number;
  /** Input features of the linear layer. */
  K: number;
}

/** Buffers and options of a matrix product. */
export interface MatmulBuffers {
  /** First operand (see each factory for its shape). */
  a: GPUBuffer | BufferSlice;
  /** Second operand. */
  b: GPUBuffer | BufferSlice;
  /** Output. */
  c: GPUBuffer | BufferSlice;
  /** Add the product to the existing contents of `c` instead of overwriting them. */
  accumulate?: boolean;
  /**
   * `a` (and `b`) as already packed in this pass by an {@link OperandPack}
   * stage, for the texture form: the product reads the texture instead of
   * packing its own copy. The storage form reads the buffers as always.
   */
  packedA?: PackedOperand;
  packedB?: PackedOperand;
  /** Row of `packedA`/`packedB` where this product's rows start (TN blocks of a longer matrix). */
  packedRowOffset?: number;
  /**
   * TN only: reduce over the M rows in blocks of this many (a multiple of
   * 64, so that every block's rows start 256-byte aligned), each block summed
   * from zero and added to the running total in block order, `((b0 + b1) +
   * b2) + …`: the sums of a chain of TN products over the row blocks, the
   * first overwriting `c` and the others adding to it. The texture form runs
   * it as one dispatch, the storage form as that chain, or with
   * {@link MatmulTile.blockParallel} as one dispatch of all blocks and their
   * sum. Not with `accumulate` or `packedRowOffset`.
   */
  blockRows?: number;
}

/**
 * Register tiling of the kernel: an invocation computes `rows x cols` outputs,
 * a workgroup is `wgX x wgY` invocations. `interleave` spaces an invocation's
 * columns `wgX` apart (neighbouring invocations read neighbouring columns)
 * instead of giving it `cols` adjacent columns.
 */
export interface MatmulTile {
  rows: number;
  cols: number;
  wgX: number;
  wgY: number;
  interleave: boolean;
  /** Read the operands as `vec4<f32>` where the sizes allow (see matmul_storage.ts's matmulWgsl). */
  vec4: boolean;
  /**
   * Read the operands through `rgba32float` textures, each packed from its
   * buffer first (see matmul_texture.ts); `rows` and `cols` multiples of 4.
   * Same sums, same bits as the storage kernel.
   */
  texture?: boolean;
  /**
   * How the texture form reads a texel (matmul_texture.ts's TexelFetch):
   * `textureLoad` of a sampled texture, or of the texture bound as a
   * read-only storage texture (an image); the same value either way, the
   * image about 2.5x cheaper per fetch on llvmpipe. Default: "image" on
   * software adapters, "load" elsewhere.
   */
  fetch?: TexelFetch;
  /**
   * Texture form: X's texels, the same for every invocation of a workgroup
   * (they share their rows), are read once per subgroup, each lane reading
   * another row's, and handed to every lane by `subgroupBroadcast`: 1/8 of
   * the X fetches. Needs the device's "subgroups" feature, 8-invocation
   * workgroups that are one subgroup, and `rows` a multiple of 8
   * ({@link subgroupXRuns}; without, the tile runs as if unset). Same sums,
   * same bits. On llvmpipe an X texel read for all 8 lanes costs as much as
   * 8 different ones (a gather), and a broadcast a shuffle: at the bench
   * configuration the products ran 10-20% faster.
   */
  subgroupX?: boolean;
  /**
   * Run the workgroup-memory kernel (matmul_workgroup.ts): the workgroup
   * copies slices of this many reduction steps of both operands into
   * workgroup memory and every invocation reads them from there. For
   * hardware GPUs; storage buffers only (not with `texture`), scalar loads
   * (`vec4` and `interleave` do not apply: an invocation's rows and columns
   * are spaced `wgY` and `wgX` apart). Same sums, same bits.
   */
  workgroupK?: number;
  /**
   * TN with {@link MatmulBuffers.blockRows}, storage forms: every row block
   * in one dispatch (its third dimension), each block's sum written to a
   * partial buffer of its own, then the partials added in block order,
   * `((b0 + b1) + b2) + …`: the chain's sums and bits, with the blocks'
   * workgroups running at once instead of one block after another (a GPU
   * with more cores than one block's output tiles fills them). The texture
   * form runs its blocks in one dispatch already and ignores it.
   */
  blockParallel?: boolean;
}

/**
 * Tiling for software adapters (llvmpipe): one 8-lane SIMD group per
 * workgroup, each invocation a 16 x 8 block. llvmpipe turns every storage
 * load into a per-lane loop, so the run time follows the load instructions
 * per FMA, `(rows + cols) / (rows * cols)` (a vec4 load costs what a scalar
 * one does, hence {@link MatmulTile.vec4}), while spilled accumulators are
 * cheap vector moves; but the compile time grows faster than `rows * cols`.
 * Scalar kernels, measured on 2 shared cores (CPU-time GFLOP/s on NT
 * 2048x128x256; cold compile of the plain / bias+accumulate variant):
 * 4x4 (8x8 wg) 6.4; 16x4 10.4; 8x8 13.1 (0.5 s / 0.8 s); 16x8 (8x1 wg) ~15
 * (0.6 s / 1.9 s); 16x16 (8x1) ~20 (4 s / 9 s); 32x16 (8x1) ~21 (6 s / 21 s).
 * With vec4 loads and stores, 8x16, 16x12, 24x8 and 16x16 blocks for NT and
 * NN gave no steadier training-step CPU time than 16x8 (within the ±15%
 * noise of the shared machine); 16x8 compiles in 0.3-0.7 s cold.
 *
 * The operands are read through textures ({@link MatmulTile.texture}): on a
 * Zen 3 host, where a storage load costs far more than on the machines the
 * figures above came from, the 1024³ product went from 2.3 to 9.8-15.6
 * GFLOP/s, and to 23-24 read as images ({@link MatmulTile.fetch}) with
 * accumulators chained over 4 steps (docs/PERFORMANCE.md). Tiles 16x8 to
 * 32x16 gave training steps within the noise of each other there; 32x32
 * ran the d 256 bench step 11% faster and the d 128 one 1.4x slower; the
 * tuner picks per model.
 */
export const SOFTWARE_TILE: MatmulTile = {
  rows: 16,
  cols: 8,
  wgX: 8,
  wgY: 1,
  interleave: true,
  vec4: true,
  texture: true,
};

/**
 * The weight-gradient product (TN) on software adapters: both operands are
 * read row by row of the long M axis, 4 rows or columns per vec4 load, so a
 * 16 x 16 block costs 8 loads per 256 FMAs. Training steps ran ~10% less CPU
 * time than with 8 x 16 blocks (vec4 TN alone: 13-17 against 11-12.6
 * GFLOP per CPU second at 256 x {128, 1100} x {128, 256}); cold compile
 * ~0.6-0.8 s per variant.
 */
export const SOFTWARE_TILE_TN: MatmulTile = { ...SOFTWARE_TILE, rows: 16, cols: 16 };

/**
 * Tiling for hardware GPUs: small per-invocation blocks (registers are per
 * invocation there) and 256-invocation workgroups with neighbouring
 * invocations on neighbouring columns. Not tuned (no GPU on the test machines).
 */
export const HARDWARE_TILE: MatmulTile = {
  rows: 4,
  cols: 4,
  wgX: 16,
  wgY: 16,
  interleave: true,
  vec4: true,
};

/** A tiling for each of the three products (see lib/gpu/tuning.ts for choosing them per adapter). */
export interface MatmulTiles {
  NT: MatmulTile;
  NN: MatmulTile;
  TN: MatmulTile;
}

/**
 * The tiling of `kernel` for `gpu`'s adapter: {@link SOFTWARE_TILE} (or
 * {@link SOFTWARE_TILE_TN}) on llvmpipe and other software adapters,
 * {@link HARDWARE_TILE} otherwise.
 */
export function defaultTile(gpu: Gpu, kernel: "NT" | "NN" | "TN"): MatmulTile {
  if (!isSoftwareAdapter(gpu)) return HARDWARE_TILE;
  const tile = kernel === "TN" ? SOFTWARE_TILE_TN : SOFTWARE_TILE;
  return subgroupXRuns(gpu) ? { ...tile, subgroupX: true } : tile;
}

/**
 * Whether `gpu` runs {@link MatmulTile.subgroupX}: its device has subgroups of
 * exactly 8 invocations. Elsewhere a tile asking for it runs without (the same
 * bits).
 */
export function subgroupXRuns(gpu: Gpu): boolean {
  return gpu.subgroupSize === SUBGROUP_X_SIZE;
}

/**
 * How X is laid out in the generic product `C[p,q] = Σ_r X[p,r] · Y[r,q]`:
 * "pr" means the element (p, r) sits at `p * R + r` (the reduction axis is
 * contiguous), "rp" at `r * P + p`. Y is always `[R, Q]` (columns contiguous):
 * NT transposes its weight first (see {@link createMatmulNT}).
 */
export type Layout = "pr" | "rp";

function bufferOf(b: GPUBuffer | BufferSlice): GPUBuffer {
  return "buffer" in b ? b.buffer : b;
}

/**
 * WebGPU drops a dispatch (a validation error, no exception) that binds one
 * buffer both writable and read-only, so an output must not share its
 * GPUBuffer with an input: fail loudly here instead.
 */
export function refuseAliasing(
  output: GPUBuffer | BufferSlice,
  inputs: (GPUBuffer | BufferSlice | undefined)[],
  label: string,
): void {
  const out = bufferOf(output);
  for (const input of inputs) {
    if (input !== undefined && bufferOf(input) === out) {
      throw new Error(
        `${label}: the output and an input are slices of the same GPUBuffer ` +
          `("${out.label}"); WebGPU cannot bind one buffer read-only and writable in one dispatch`,
      );
    }
  }
}

function createProduct(
  gpu: Gpu,
  buffers: MatmulBuffers & { bias?: GPUBuffer | BufferSlice },
  x: Layout,
  // Maps the layer's dims to the generic (P, Q, R).
  toPQR: (d: MatmulDims) => [number, number, number],
  label: string,
  tile: MatmulTile,
): GpuStep<MatmulDims> {
  refuseAliasing(buffers.c, [buffers.a, buffers.b, buffers.bias], label);
  const storage = createStorageProduct(gpu, buffers, x, label, tile);
  const texture = tile.texture
    ? createPackedProduct(gpu, buffers, x, false, label, tile)
    : undefined;
  const step: GpuStep<MatmulDims> = {
    encode(pass, dims) {
      const pqr = toPQR(dims);
      if (texture?.fits(pqr)) texture.encode(pass, pqr);
      else storage.encode(pass, pqr);
    },
    destroy() {
      storage.destroy();
      texture?.destroy();
    },
  };
  return withPackedCommands(
    step,
    texture,
    toPQR,
    (pass, dims) => storage.encode(pass, toPQR(dims)),
  );
}

/**
 * `step`, given `encodeCommands` where its texture form `packed` has them (an
 * accumulating product's copy of C): `packed`'s where the shapes fit it, else
 * `fallback` in a pass of its own.
 */
function withPackedCommands(
  step: GpuStep<MatmulDims>,
  packed: (GpuStep<PQR> & { fits(pqr: PQR): boolean }) | undefined,
  toPQR: (d: MatmulDims) => PQR,
  fallback: (pass: GPUComputePassEncoder, dims: MatmulDims) => void,
): GpuStep<MatmulDims> {
  const commands = packed?.encodeCommands?.bind(packed);
  if (!packed || !commands) return step;
  step.encodeCommands = (enc, dims) => {
    if (packed.fits(toPQR(dims))) return commands(enc, toPQR(dims));
    const pass = enc.beginComputePass();
    fallback(pass, dims);
    pass.end();
  };
  return step;
}

/**
 * The texture form of a product (matmul_texture.ts): packs X and Y (Y read
 * transposed from a weight stored [N, K] when `yTransposed`), then runs the
 * product on the packed operands.
 */
function createPackedProduct(
  gpu: Gpu,
  buffers: MatmulBuffers & { bias?: GPUBuffer | BufferSlice },
  x: Layout,
  yTransposed: boolean,
  label: string,
  tile: MatmulTile,
): GpuStep<PQR> & { fits(pqr: PQR): boolean } {
  const packX = buffers.packedA ?? createPack(gpu, buffers.a, false, `${label}:x`);
  const packY = buffers.packedB ?? createPack(gpu, buffers.b, yTransposed, `${label}:y`);
  const packOld = x === "pr" ? createOldPack(gpu, buffers, tile, label) : undefined;
  const product = createTextureProduct(
    gpu,
    {
      x: packX,
      y: packY,
      c: buffers.c,
      bias: buffers.bias,
      accumulate: buffers.accumulate ?? false,
      rowOffset: buffers.packedRowOffset ?? 0,
      blockRows: buffers.blockRows,
      old: packOld,
    },
    x,
    {
      ...tile,
      fetch: textureFetch(gpu, tile),
      subgroupX: tile.subgroupX && subgroupXRuns(gpu),
    },
    label,
  );
  const padR = (R: number) => x === "pr" ? Math.ceil(R / 4) * 4 : R;
  const encodePass = (pass: GPUComputePassEncoder, [P, Q, R]: PQR, readOld: boolean) => {
    if (P === 0 || Q === 0) return;
    if (!buffers.packedA) {
      if (x === "pr") packX.encode(pass, { rows: P, cols: R });
      else packX.encode(pass, { rows: R, cols: P });
    }
    if (!buffers.packedB) packY.encode(pass, { rows: R, cols: Q, padRows: padR(R) });
    product.encode(pass, { P, Q, R, readOld });
  };
  const step: GpuStep<PQR> & { fits(pqr: PQR): boolean } = {
    fits([P, Q, R]) {
      // A linear Y has no zero rows past R, which a "pr" reduction reads when R % 4 != 0.
      if (packY.linearWidth() && padR(R) !== R) return false;
      return packX.fits(x === "pr" ? P : R, x === "pr" ? R : P) && packY.fits(padR(R), Q);
    },
    encode(pass, pqr) {
      encodePass(pass, pqr, false);
    },
    destroy() {
      product.destroy();
      packOld?.destroy();
      if (!buffers.packedA) packX.destroy();
      if (!buffers.packedB) packY.destroy();
    },
  };
  if (packOld) {
    // Recorded outside a pass: C copied into its linear texture first, then the pass.
    step.encodeCommands = (enc, pqr) => {
      const [P, Q] = pqr;
      const old = Q % 4 === 0 && packOld.fits(P, Q);
      if (old) packOld.encodeCopy(enc, { rows: P, cols: Q });
      const pass = enc.beginComputePass({ label });
      encodePass(pass, pqr, old);
      pass.end();
    };
  }
  return step;
}

/**
 * A linear pack of C for a software adapter's accumulating texture product
 * (matmul_texture.ts TextureKernelSpec.oldLinear), or undefined where C is
 * read as it is: other adapters, products that overwrite C, a C not at a
 * 16-byte offset.
 */
function createOldPack(
  gpu: Gpu,
  buffers: MatmulBuffers,
  tile: MatmulTile,
  label: string,
): PackedOperand | undefined {
  if (!buffers.accumulate || textureFetch(gpu, tile) !== "image") return undefined;
  const c = buffers.c;
  const bytes = "buffer" in c ? c.size ?? c.buffer.size - (c.offset ?? 0) : c.size;
  // Any row length of whole texels copies into a linear pack (Q % 4 is checked per encode).
  if (!packCopyable(c, 4, true)) return undefined;
  return createPack(gpu, c, false, `${label}:c`, linearPackWidth(gpu, Math.ceil(bytes / 16)));
}

/** How the texture form fetches texels on `gpu` (see {@link MatmulTile.fetch}). */
export function textureFetch(gpu: Gpu, tile: MatmulTile): TexelFetch {
  return tile.fetch ?? (isSoftwareAdapter(gpu) ? "image" : "load");
}

/** The packs of {@link createStepPacks}. */
export interface StepPacks {
  /** Give to the product as `packedA` / `packedB`. */
  packedA?: PackedOperand;
  packedB?: PackedOperand;
  /** Records the packs of the buffers' current contents (copies and dispatches). */
  encode(enc: GPUCommandEncoder): void;
  destroy(): void;
}

/**
 * The packs the training graph makes once per step for a product of `kind`
 * (lib/model/forward.ts, backward.ts): the activation or output-gradient
 * operand `a` of NT and NN, both operands of TN; the weight operand of NT
 * and NN is packed by the product itself. For timing a product as it runs
 * in a step (the kernel tuner, bench/matmul.ts); none for a storage tile.
 */
export function createStepPacks(
  gpu: Gpu,
  kind: "NT" | "NN" | "TN",
  buffers: { a: GPUBuffer; b: GPUBuffer },
  dims: MatmulDims,
  tile: MatmulTile,
): StepPacks {
  const { M, N, K } = dims;
  const packs: OperandPack[] = [];
  const pack = (buffer: GPUBuffer, cols: number) => {
    if (!tile.texture) return undefined;
    const step = createOperandPack(gpu, buffer, cols, `stepPack:${kind}`, M);
    if (step) packs.push(step);
    return step?.operand;
  };
  const packedA = pack(buffers.a, kind === "NT" ? K : N);
  const packedB = kind === "TN" ? pack(buffers.b, K) : undefined;
  return {
    packedA,
    packedB,
    encode(enc) {
      for (const p of packs) encodeOutsidePass(p, enc, { rows: M });
    },
    destroy() {
      for (const p of packs) p.destroy();
    },
  };
}

/** The narrowest linear pack: 256 texels a row (4 KB, a multiple of the 256 bytes a copy's rows need). */
const LINEAR_PACK_MIN_WIDTH = 256;

/**
 * The width of a linear pack of `texels` texels: {@link LINEAR_PACK_MIN_WIDTH},
 * doubled until its rows fit in the device's textures (dLogits of 4096 rows x
 * 4100 tokens need 512 on llvmpipe's 16384 rows), at most the device's limit.
 */
export function linearPackWidth(gpu: Gpu, texels: number): number {
  const max = gpu.limits.maxTextureDimension2D;
  let width = LINEAR_PACK_MIN_WIDTH;
  while (width * 2 <= max && Math.ceil(texels / width) > max) width *= 2;
  return width;
}

/** A stage that packs one operand for several texture-form products (see {@link createOperandPack}). */
export interface OperandPack extends GpuStep<{ rows: number }> {
  /** Give as `packedA`/`packedB` to the products that read this buffer after the stage. */
  operand: PackedOperand;
}

/**
 * Packs `buffer`, a row-major `[rows, cols]` matrix, once per encode for the
 * texture-form products that read it next (a layer input read by several
 * products, then by its weight gradient; an output gradient read by the
 * input- and weight-gradient products). Encode it after the buffer is
 * written and before those products; `undefined` when `maxRows` rows do not
 * fit in a texture (the products then read the buffer). When the rows
 * are a multiple of 64 floats the step also has `encodeCommands`, the pack
 * as a buffer-to-texture copy (recordStages uses it).
 */
export function createOperandPack(
  gpu: Gpu,
  buffer: GPUBuffer | BufferSlice,
  cols: number,
  label: string,
  maxRows: number,
): OperandPack | undefined {
  // Rows of 256-byte multiples are copied as they are; other rows of whole
  // texels into a linear texture (one copy too); the rest packed by a
  // dispatch. Whichever holds the largest batch; none: the products that
  // would read the pack read the buffer (or pack it themselves).
  const linear = !packCopyable(buffer, cols, false) && packCopyable(buffer, cols, true);
  const operand = createPack(
    gpu,
    buffer,
    false,
    label,
    linear ? linearPackWidth(gpu, maxRows * Math.ceil(cols / 4)) : 0,
  );
  if (!operand.fits(maxRows, cols)) {
    operand.destroy();
    return undefined;
  }
  const step: OperandPack = {
    operand,
    encode(pass, { rows }) {
      if (rows > 0) operand.encode(pass, { rows, cols });
    },
    destroy() {
      operand.destroy();
    },
  };
  if (operand.copyable({ rows: 1, cols })) {
    step.encodeCommands = (enc, { rows }) => {
      if (rows > 0) operand.encodeCopy(enc, { rows, cols });
    };
  }
  return step;
}

/**
 * Forward of a linear layer: `c[M,N] = a[M,K] · b[N,K]^T (+ bias[N]) (+ c)`,
 * with `a` the activations and `b` the weight stored `[out, in]`.
 *
 * Each encode first copies the weight transposed (`[K, N]`, a buffer this
 * step owns) and then runs the product in the NN form, where neighbouring
 * invocations read neighbouring columns: on llvmpipe those loads merge into
 * vector loads, about twice the rate of reading `[N, K]` rows a whole row
 * apart. The products are summed in the same order either way.
 */
export function createMatmulNT(
  gpu: Gpu,
  buffers: MatmulBuffers & { bias?: GPUBuffer | BufferSlice },
  tile: MatmulTile = defaultTile(gpu, "NT"),
): GpuStep<MatmulDims> {
  refuseAliasing(buffers.c, [buffers.a, buffers.b, buffers.bias], "matmulNT");
  const toPQR = (d: MatmulDims): PQR => [d.M, d.N, d.K];
  // The texture form reads the weight transposed while packing it.
  const packed = tile.texture
    ? createPackedProduct(gpu, buffers, "pr", true, "matmulNT", tile)
    : undefined;
  let storage: GpuStep<MatmulDims> | undefined;
  const storageNT = () => storage ??= createStorageNT(gpu, buffers, tile);
  const step: GpuStep<MatmulDims> = {
    encode(pass, dims) {
      if (packed?.fits(toPQR(dims))) packed.encode(pass, toPQR(dims));
      else storageNT().encode(pass, dims);
    },
    destroy() {
      packed?.destroy();
      storage?.destroy();
    },
  };
  return withPackedCommands(step, packed, toPQR, (pass, dims) => storageNT().encode(pass, dims));
}

/**
 * The storage form of {@link createMatmulNT}: transpose the weight, then the
 * NN-form product; the workgroup-memory kernel reads the weight as it is
 * stored instead (transposing it while copying it to workgroup memory).
 */
function createStorageNT(
  gpu: Gpu,
  buffers: MatmulBuffers & { bias?: GPUBuffer | BufferSlice },
  tile: MatmulTile,
): GpuStep<MatmulDims> {
  if (tile.workgroupK) {
    const product = createStorageProduct(gpu, buffers, "pr", "matmulNT", tile, true);
    return {
      encode: (pass, d) => product.encode(pass, [d.M, d.N, d.K]),
      destroy: () => product.destroy(),
    };
  }
  const b = buffers.b;
  const bBytes = "buffer" in b ? b.size ?? b.buffer.size - (b.offset ?? 0) : b.size;
  const bT = createStorageBuffer(gpu, bBytes, "matmulNT:weight.T"); // [K, N]
  const transpose = createTranspose(gpu, { src: b, dst: bT });
  const product = createProduct(
    gpu,
    { ...buffers, b: bT },
    "pr",
    (d) => [d.M, d.N, d.K],
    "matmulNT",
    { ...tile, texture: false },
  );
  return {
    encode(pass, dims) {
      if (dims.M === 0 || dims.N === 0) return;
      transpose.encode(pass, { rows: dims.N, cols: dims.K });
      product.encode(pass, dims);
    },
    destroy() {
      product.destroy();
      transpose.destroy();
      bT.destroy();
    },
  };
}

/**
 * Input gradient of a linear layer: `c[M,K] = a[M,N] · b[N,K] (+ c)`, with `a`
 * the output gradient dY and `b` the weight.
 */
export function createMatmulNN(
  gpu: Gpu,
  buffers: MatmulBuffers,
  tile: MatmulTile = defaultTile(gpu, "NN"),
): GpuStep<MatmulDims> {
  return createProduct(gpu, buffers, "pr", (d) => [d.M, d.K, d.N], "matmulNN", tile);
}

/**
 * Weight gradient of a linear layer: `c[N,K] = a[M,N]^T · b[M,K] (+ c)`, with
 * `a` the output gradient dY and `b` the layer input X. Each element sums its
 * M products in row order 0..M-1.
 */
export function createMatmulTN(
  gpu: Gpu,
  buffers: MatmulBuffers,
  tile: MatmulTile = defaultTile(gpu, "TN"),
): GpuStep<MatmulDims> {
  if (buffers.blockRows === undefined) {
    return createProduct(gpu, buffers, "rp", (d) => [d.N, d.K, d.M], "matmulTN", tile);
  }
  return createBlockedTN(gpu, buffers, buffers.blockRows, tile);
}

/** {@link createMatmulTN} with {@link MatmulBuffers.blockRows}. */
function createBlockedTN(
  gpu: Gpu,
  buffers: MatmulBuffers,
  blockRows: number,
  tile: MatmulTile,
): GpuStep<MatmulDims> {
  const label = "matmulTN";
  if (!(Number.isInteger(blockRows) && blockRows > 0 && blockRows % 64 === 0)) {
    throw new Error(`${label}: blockRows ${blockRows} is not a positive multiple of 64`);
  }
  if (buffers.accumulate || buffers.packedRowOffset) {
    throw new Error(`${label}: blockRows does not combine with accumulate or packedRowOffset`);
  }
  refuseAliasing(buffers.c, [buffers.a, buffers.b], label);
  const texture = tile.texture
    ? createPackedProduct(gpu, buffers, "rp", false, label, tile)
    : undefined;
  const parallel = tile.blockParallel && !tile.texture
    ? createParallelBlocks(gpu, buffers, blockRows, label, tile)
    : undefined;
  // The storage form: one product per block over slices of the rows, made
  // when first needed (the batch decides how many blocks run).
  const chain: GpuStep<PQR>[] = [];
  const rowsFrom = (src: GPUBuffer | BufferSlice, row: number, cols: number): BufferSlice => {
    const slice = "buffer" in src ? src : { buffer: src };
    return { buffer: slice.buffer, offset: (slice.offset ?? 0) + row * cols * 4 };
  };
  // The slices' offsets follow the rows' lengths: one (N, K) per step.
  let shape: string | undefined;
  const block = (index: number, N: number, K: number) => {
    shape ??= `${N}x${K}`;
    if (shape !== `${N}x${K}`) {
      throw new RangeError(`${label}: blockRows with N x K = ${N}x${K} after ${shape}`);
    }
    return chain[index] ??= createStorageProduct(
      gpu,
      {
        a: rowsFrom(buffers.a, index * blockRows, N),
        b: rowsFrom(buffers.b, index * blockRows, K),
        c: buffers.c,
        accumulate: index > 0,
      },
      "rp",
      label,
      tile,
    );
  };
  return {
    encode(pass, { M, N, K }) {
      if (texture?.fits([N, K, M])) {
        texture.encode(pass, [N, K, M]);
        return;
      }
      if (parallel?.fits([N, K, M])) {
        parallel.encode(pass, [N, K, M]);
        return;
      }
      for (let b = 0; b * blockRows < M; b++) {
        block(b, N, K).encode(pass, [N, K, Math.min(blockRows, M - b * blockRows)]);
      }
    },
    destroy() {
      texture?.destroy();
      parallel?.destroy();
      for (const step of chain) step?.destroy();
    },
  };
}
