/**
 * The storage-buffer form of the matrix products in {@link ./matmul.ts}: the
 * register-tiled kernel reading both operands straight from their buffers
 * (or, with {@link MatmulTile.workgroupK}, the workgroup-memory kernel of
 * matmul_workgroup.ts), the weight transpose the forward product runs it on,
 * and the weight gradient's row blocks run in parallel and added in block
 * order ({@link MatmulTile.blockParallel}). Hardware GPUs run this form; on
 * software adapters it runs where an operand does not fit in a texture.
 *
 * Every output adds its products in reduction order 0, 1, 2, … with `fma`,
 * no split, no atomics: the texture form (matmul_texture.ts) and the
 * workgroup-memory form compute the same sums, bit for bit.
 *
 * @module
 */
import {
  bindBuffers,
  type BufferSlice,
  cachedPipeline,
  createStorageBuffer,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
} from "../device.ts";
import type { Layout, MatmulBuffers, MatmulTile } from "./matmul.ts";
import {
  blockPrologue,
  checkWorkgroupSpec,
  workgroupKernelKey,
  type WorkgroupKernelSpec,
  workgroupMatmulWgsl,
} from "./matmul_workgroup.ts";

/** A product's generic sizes (P, Q, R): `C[P,Q] = Σ_r X[p,r] · Y[r,q]`. */
export type PQR = [number, number, number];

interface KernelSpec {
  x: Layout;
  bias: boolean;
  accumulate: boolean;
  tile: MatmulTile;
  /**
   * X "rp" only: workgroup z sums reduction rows `[z·w, min((z+1)·w, R))`,
   * w = dims.w, into C's z-th `[P, Q]` (see {@link MatmulTile.blockParallel}).
   */
  blocked?: boolean;
}

function kernelKey(s: KernelSpec, vec4: boolean): string {
  const t = s.tile;
  return `matmul:${s.x}:b${+s.bias}:acc${+s.accumulate}:` +
    `${t.rows}x${t.cols}:${t.wgX}x${t.wgY}:${t.interleave ? "i" : "c"}:${vec4 ? "v4" : "s"}` +
    (s.blocked ? ":blocks" : "");
}

/**
 * WGSL for `C[P,Q] = Σ_r X[p,r] · Y[r,q] (+ bias[Q]) (+ C)`; dims = (P, Q, R).
 * The per-invocation block is unrolled into scalar accumulators (`acc_i_j`) so
 * that the compiler keeps them in registers.
 *
 * With `vec4`, every load and store moves a `vec4<f32>` (llvmpipe runs a
 * storage access as a loop over the SIMD lanes, one iteration per lane
 * whatever the width, so 4 floats cost what 1 did): X "pr" 4 reduction steps
 * at a time (the loop advances r by 4), X "rp" 4 neighbouring rows, Y and C 4
 * neighbouring columns, so an invocation's columns come in adjacent groups of
 * 4. Each accumulator still adds its products in order r = 0, 1, 2, …, so the
 * results are bit-identical to the scalar kernel's. Needs Q % 4 == 0,
 * R % 4 == 0 (X "pr") or P % 4 == 0 (X "rp"), and `rows`, `cols` multiples
 * of 4 (see {@link vec4Fits}).
 */
function matmulWgsl(s: KernelSpec, vec4: boolean): string {
  const { rows: TR, cols: TC, wgX, wgY, interleave } = s.tile;
  if (s.blocked && s.x !== "rp") throw new Error('matmul: blocks need X laid out "rp"');
  // A blocked kernel's offsets (blockPrologue), empty otherwise.
  const [xo, yo, co] = s.blocked ? ["xo + ", "yo + ", "co + "] : ["", "", ""];
  const lines: string[] = [];
  // Column j of this invocation, relative to q0.
  const colOffset = (j: number) => !interleave ? j : vec4 ? (j >> 2) * wgX * 4 + (j & 3) : j * wgX;
  for (let i = 0; i < TR; i++) {
    for (let j = 0; j < TC; j++) lines.push(`  var acc_${i}_${j} = 0.0;`);
  }
  if (!vec4) {
    // Base offsets of this invocation's rows and columns (clamped to the last one).
    for (let i = 0; i < TR; i++) {
      const p = `min(p0 + ${i}u, P - 1u)`;
      lines.push(`  let xb${i} = ${s.x === "pr" ? `${p} * R` : p};`);
    }
    for (let j = 0; j < TC; j++) lines.push(`  let yb${j} = min(q0 + ${colOffset(j)}u, Q - 1u);`);
    lines.push(`  for (var r = 0u; r < R; r++) {`);
    for (let j = 0; j < TC; j++) lines.push(`    let y${j} = y[${yo}r * Q + yb${j}];`);
    for (let i = 0; i < TR; i++) {
      lines.push(`    let x${i} = x[${s.x === "pr" ? `xb${i} + r` : `${xo}r * P + xb${i}`}];`);
      for (let j = 0; j < TC; j++) {
        lines.push(`    acc_${i}_${j} = fma(x${i}, y${j}, acc_${i}_${j});`);
      }
    }
    lines.push(`  }`);
  } else {
    // Offsets in vec4 units: X "pr" row p starts at p * R / 4; X "rp" rows
    // p..p+3 of step r sit at r * P / 4 + p / 4; Y likewise for columns.
    const step = s.x === "pr" ? 4 : 1;
    if (s.x === "pr") {
      lines.push(`  let R4 = R / 4u;`);
      for (let i = 0; i < TR; i++) lines.push(`  let xb${i} = min(p0 + ${i}u, P - 1u) * R4;`);
    } else {
      lines.push(`  let P4 = P / 4u;`);
      for (let g = 0; g < TR / 4; g++) lines.push(`  let xb${g} = min(p0 / 4u + ${g}u, P4 - 1u);`);
    }
    for (let g = 0; g < TC / 4; g++) {
      lines.push(`  let yb${g} = min((q0 + ${colOffset(4 * g)}u) / 4u, Q4 - 1u);`);
    }
    lines.push(`  for (var r = 0u; r < R; r += ${step}u) {`);
    if (s.x === "pr") {
      // Y's 4 steps first, then one X row at a time: few X values live at once.
      lines.push(`    let r4 = r / 4u;`);
      for (let k = 0; k < 4; k++) {
        for (let g = 0; g < TC / 4; g++) {
          lines.push(`    let yg${g}_${k} = y[(r + ${k}u) * Q4 + yb${g}];`);
        }
      }
      for (let i = 0; i < TR; i++) {
        lines.push(`    let xv${i} = x[xb${i} + r4];`);
        for (let k = 0; k < 4; k++) {
          for (let j = 0; j < TC; j++) {
            lines.push(
              `    acc_${i}_${j} = fma(xv${i}[${k}], yg${j >> 2}_${k}[${j & 3}], acc_${i}_${j});`,
            );
          }
        }
      }
    } else {
      for (let g = 0; g < TR / 4; g++) lines.push(`    let xg${g} = x[${xo}r * P4 + xb${g}];`);
      for (let g = 0; g < TC / 4; g++) lines.push(`    let yg${g} = y[${yo}r * Q4 + yb${g}];`);
      for (let i = 0; i < TR; i++) {
        for (let j = 0; j < TC; j++) {
          lines.push(
            `    acc_${i}_${j} = fma(xg${i >> 2}[${i & 3}], yg${j >> 2}[${j & 3}], acc_${i}_${j});`,
          );
        }
      }
    }
    lines.push(`  }`);
  }
  // Epilogue. Loads sit outside the guards, at clamped indices: llvmpipe
  // compiles a load inside a branch into a per-lane loop inside a branch, and
  // a few hundred of those took tens of seconds to compile.
  const width = vec4 ? 4 : 1;
  for (let j = 0; j < TC; j += width) {
    lines.push(`  let col${j} = q0 + ${colOffset(j)}u;`);
    if (s.bias) {
      lines.push(
        vec4
          ? `  let bias${j} = bias[min(col${j}, Q - 1u) / 4u];`
          : `  let bias${j} = bias[min(col${j}, Q - 1u)];`,
      );
    }
  }
  for (let i = 0; i < TR; i++) {
    lines.push(`  let row${i} = min(p0 + ${i}u, P - 1u) * Q;`);
    for (let j = 0; j < TC; j += width) {
      let value = vec4
        ? `vec4<f32>(${[0, 1, 2, 3].map((k) => `acc_${i}_${j + k}`).join(", ")})`
        : `acc_${i}_${j}`;
      if (s.bias) value += ` + bias${j}`;
      const at = (col: string) => vec4 ? `${co}(row${i} + ${col}) / 4u` : `${co}row${i} + ${col}`;
      if (s.accumulate) {
        lines.push(`  let old_${i}_${j} = c[${at(`min(col${j}, Q - 1u)`)}];`);
        value = `old_${i}_${j} + (${value})`;
      }
      lines.push(`  if (p0 + ${i}u < P && col${j} < Q) { c[${at(`col${j}`)}] = ${value}; }`);
    }
  }
  const colStart = !interleave
    ? `(wid.x * ${wgX}u + lid.x) * ${TC}u`
    : `wid.x * ${wgX * TC}u + lid.x${vec4 ? " * 4u" : ""}`;
  const elem = vec4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
// dims.x = P (output rows), dims.y = Q (output columns), dims.z = R (reduction length)${
    s.blocked ? ", dims.w = rows per block" : ""
  }
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var<storage, read> x: array<${elem}>;        // X, layout "${s.x}"
@group(0) @binding(2) var<storage, read> y: array<${elem}>;        // Y [R, Q]
@group(0) @binding(3) var<storage, read_write> c: array<${elem}>;  // C [P, Q]
${s.bias ? `@group(0) @binding(4) var<storage, read> bias: array<${elem}>;  // [Q]` : ""}

@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = dims.x;
  let Q = dims.y;
${s.blocked ? blockPrologue(vec4 ? 4 : 1) : "  let R = dims.z;"}
  let Q4 = Q / 4u;
  let p0 = (wid.y * ${wgY}u + lid.y) * ${TR}u;
  let q0 = ${colStart};
  if (p0 >= P || q0 >= Q) { return; }
${lines.join("\n")}
}
`;
}

/** A compiled kernel of a product, bound to its buffers. */
interface Variant {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  tile: MatmulTile;
}

/** Whether the vec4 kernel can run (P, Q, R) (see {@link matmulWgsl}). */
function vec4Fits(x: Layout, t: MatmulTile, P: number, Q: number, R: number): boolean {
  return t.rows % 4 === 0 && t.cols % 4 === 0 && Q % 4 === 0 &&
    (x === "pr" ? R % 4 === 0 : P % 4 === 0);
}

function rowsPerWorkgroup(t: MatmulTile): number {
  return t.rows * t.wgY;
}

function colsPerWorkgroup(t: MatmulTile): number {
  return t.cols * t.wgX;
}

/**
 * The storage-buffer form of a product: operands read straight from their
 * buffers, by the register-tiled kernel, or with {@link MatmulTile.workgroupK}
 * the workgroup-memory one (which alone reads Y transposed, `yTransposed`).
 */
export function createStorageProduct(
  gpu: Gpu,
  buffers: MatmulBuffers & { bias?: GPUBuffer | BufferSlice },
  x: Layout,
  label: string,
  tile: MatmulTile,
  yTransposed = false,
  /** Blocks of this many reduction rows, one per workgroup z ({@link KernelSpec.blocked}). */
  blockRows?: number,
): GpuStep<PQR> {
  const blocked = blockRows !== undefined;
  if (yTransposed && !tile.workgroupK) {
    throw new Error(`${label}: only the workgroup-memory kernel reads Y transposed`);
  }
  const uniform = createUniformBuffer(gpu, 16, `${label}:dims`);
  const bound = [uniform, buffers.a, buffers.b, buffers.c];
  if (buffers.bias) bound.push(buffers.bias);
  const bias = buffers.bias !== undefined;
  const accumulate = buffers.accumulate ?? false;
  const workgroupK = tile.workgroupK;
  let workgroupSpec: WorkgroupKernelSpec | undefined;
  if (workgroupK !== undefined) {
    if (tile.texture) {
      throw new Error(`${label}: a workgroup-memory tile reads storage buffers only`);
    }
    workgroupSpec = { x, yTransposed, bias, accumulate, tile: { ...tile, workgroupK }, blocked };
    checkWorkgroupSpec(workgroupSpec, gpu.limits);
  }
  // The vec4 and scalar kernels, each compiled on first use. The scalar one
  // (sizes not multiples of 4) runs at most 16 x 8 blocks: its compile time
  // grows steeply with the block (16 x 16 with accumulate: seconds, cold).
  const scalarTile = { ...tile, rows: Math.min(tile.rows, 16), cols: Math.min(tile.cols, 8) };
  const variants = new Map<boolean, Variant>();
  const variant = (vec4: boolean) => {
    let v = variants.get(vec4);
    if (!v) {
      let pipeline: GPUComputePipeline;
      let spec: KernelSpec | WorkgroupKernelSpec;
      if (workgroupSpec) {
        spec = workgroupSpec;
        const key = workgroupKernelKey(workgroupSpec);
        pipeline = cachedPipeline(gpu, key, workgroupMatmulWgsl(workgroupSpec), "main");
      } else {
        spec = { x, bias, accumulate, tile: vec4 ? tile : scalarTile, blocked };
        pipeline = cachedPipeline(gpu, kernelKey(spec, vec4), matmulWgsl(spec, vec4), "main");
      }
      v = { pipeline, bindGroup: bindBuffers(gpu, pipeline, bound, label), tile: spec.tile };
      variants.set(vec4, v);
    }
    return v;
  };
  const dimsData = new Uint32Array(4);
  return {
    encode(pass, [P, Q, R]) {
      if (P === 0 || Q === 0) return;
      dimsData.set([P, Q, R, blockRows ?? 0]);
      gpu.device.queue.writeBuffer(uniform, 0, dimsData);
      const v = variant(!workgroupSpec && tile.vec4 && vec4Fits(x, tile, P, Q, R));
      pass.setPipeline(v.pipeline);
      pass.setBindGroup(0, v.bindGroup);
      pass.dispatchWorkgroups(
        Math.ceil(Q / colsPerWorkgroup(v.tile)),
        Math.ceil(P / rowsPerWorkgroup(v.tile)),
        blocked ? Math.ceil(R / blockRows) : 1,
      );
    },
    destroy() {
      uniform.destroy();
    },
  };
}

const TRANSPOSE_WG = 8;

const TRANSPOSE_WGSL = /* wgsl */ `
// dims.x = rows, dims.y = cols of the source
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // [rows, cols]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // [cols, rows]

@compute @workgroup_size(${TRANSPOSE_WG}, ${TRANSPOSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let rows = dims.x;
  let cols = dims.y;
  if (gid.x >= rows || gid.y >= cols) { return; }
  dst[gid.y * rows + gid.x] = src[gid.x * cols + gid.y];
}
`;

/** `dst[cols, rows] = src[rows, cols]^T`, sizes given per encode. */
export function createTranspose(
  gpu: Gpu,
  buffers: { src: GPUBuffer | BufferSlice; dst: GPUBuffer },
): GpuStep<{ rows: number; cols: number }> {
  const pipeline = cachedPipeline(gpu, "transpose", TRANSPOSE_WGSL, "main");
  const uniform = createUniformBuffer(gpu, 16, "transpose:dims");
  const bindGroup = bindBuffers(gpu, pipeline, [uniform, buffers.src, buffers.dst], "transpose");
  const dimsData = new Uint32Array(4);
  return {
    encode(pass, { rows, cols }) {
      if (rows === 0 || cols === 0) return;
      dimsData.set([rows, cols, 0, 0]);
      gpu.device.queue.writeBuffer(uniform, 0, dimsData);
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil(rows / TRANSPOSE_WG), Math.ceil(cols / TRANSPOSE_WG));
    },
    destroy() {
      uniform.destroy();
    },
  };
}

/**
 * {@link MatmulTile.blockParallel}: `C[P,Q] = Σ_r X[r,p] · Y[r,q]` (X "rp")
 * as one dispatch whose workgroup z sums the rows of block z into the z-th
 * `[P, Q]` of a partial buffer this step owns, then {@link blockSumWgsl}
 * adds the partials into C in block order. Fits while the partials fit one
 * storage binding (else the caller runs the chain).
 */
export function createParallelBlocks(
  gpu: Gpu,
  buffers: MatmulBuffers,
  blockRows: number,
  label: string,
  tile: MatmulTile,
): GpuStep<PQR> & { fits(pqr: PQR): boolean } {
  const partialBytes = (P: number, Q: number, blocks: number) => blocks * P * Q * 4;
  // Grown to the most blocks any encode needs (a power of two); a grown-out
  // buffer may still be read by commands recorded earlier, so it is kept
  // until destroy.
  let current: { bytes: number; product: GpuStep<PQR>; sum: GpuStep<BlockSumDims> } | undefined;
  const owned: { destroy(): void }[] = [];
  const grow = (P: number, Q: number, blocks: number) => {
    let size = 1;
    while (size < blocks) size *= 2;
    if (partialBytes(P, Q, size) > gpu.limits.maxStorageBufferBindingSize) size = blocks;
    const bytes = partialBytes(P, Q, size);
    const partials = createStorageBuffer(gpu, bytes, `${label}:partials`);
    const product = createStorageProduct(
      gpu,
      { a: buffers.a, b: buffers.b, c: partials },
      "rp",
      `${label}:blocks`,
      tile,
      false,
      blockRows,
    );
    const sum = createBlockSum(gpu, partials, buffers.c, `${label}:blockSum`);
    owned.push(product, sum, partials);
    current = { bytes, product, sum };
    return current;
  };
  return {
    fits([P, Q, R]) {
      return R > 0 &&
        partialBytes(P, Q, Math.ceil(R / blockRows)) <= gpu.limits.maxStorageBufferBindingSize;
    },
    encode(pass, [P, Q, R]) {
      if (P === 0 || Q === 0) return;
      const blocks = Math.ceil(R / blockRows);
      // The partials hold [blocks, P, Q].
      const step = current && partialBytes(P, Q, blocks) <= current.bytes
        ? current
        : grow(P, Q, blocks);
      step.product.encode(pass, [P, Q, R]);
      step.sum.encode(pass, { n: P * Q, blocks });
    },
    destroy() {
      for (const o of owned) o.destroy();
      owned.length = 0;
      current = undefined;
    },
  };
}

/** Sizes of a {@link createBlockSum} encode: `n` floats per block, `blocks` blocks. */
interface BlockSumDims {
  n: number;
  blocks: number;
}

const BLOCK_SUM_WG = 64;

/**
 * WGSL for `c[i] = ((p[i] + p[n + i]) + p[2n + i]) + …` over `blocks`
 * partials of `n` elements: the running total of a chain of block products
 * whose first overwrites C and the others add to it, the same additions in
 * the same order. With `vec4`, four neighbouring elements per invocation
 * (the same scalar additions).
 */
function blockSumWgsl(vec4: boolean): string {
  const t = vec4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
// dims.x = n (elements of one block, in ${t}s), dims.y = blocks
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var<storage, read> p: array<${t}>;        // [blocks, n]
@group(0) @binding(2) var<storage, read_write> c: array<${t}>;  // [n]

@compute @workgroup_size(${BLOCK_SUM_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let n = dims.x;
  let i = gid.y * groups.x * ${BLOCK_SUM_WG}u + gid.x;
  if (i >= n) { return; }
  var t = p[i];
  for (var b = 1u; b < dims.y; b++) { t = t + p[b * n + i]; }
  c[i] = t;
}
`;
}

/** The block sum of `partials` into `c` (see {@link blockSumWgsl}). */
function createBlockSum(
  gpu: Gpu,
  partials: GPUBuffer,
  c: GPUBuffer | BufferSlice,
  label: string,
): GpuStep<BlockSumDims> {
  const uniform = createUniformBuffer(gpu, 16, `${label}:dims`);
  const pipelines = new Map<boolean, { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup }>();
  const variant = (vec4: boolean) => {
    let v = pipelines.get(vec4);
    if (!v) {
      const pipeline = cachedPipeline(
        gpu,
        `blockSum:${vec4 ? "v4" : "s"}`,
        blockSumWgsl(vec4),
        "main",
      );
      v = { pipeline, bindGroup: bindBuffers(gpu, pipeline, [uniform, partials, c], label) };
      pipelines.set(vec4, v);
    }
    return v;
  };
  const dimsData = new Uint32Array(4);
  return {
    encode(pass, { n, blocks }) {
      if (n === 0 || blocks === 0) return;
      const vec4 = n % 4 === 0;
      const elements = vec4 ? n / 4 : n;
      dimsData.set([elements, blocks, 0, 0]);
      gpu.device.queue.writeBuffer(uniform, 0, dimsData);
      const v = variant(vec4);
      pass.setPipeline(v.pipeline);
      pass.setBindGroup(0, v.bindGroup);
      const groups = Math.ceil(elements / BLOCK_SUM_WG);
      const x = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
      pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    },
    destroy() {
      uniform.destroy();
    },
  };
}
