/**
 * The workgroup-memory form of the matrix products in {@link ./matmul.ts},
 * for hardware GPUs: a workgroup of `wgX x wgY` invocations owns a block of
 * `rows·wgY x cols·wgX` outputs and walks the reduction axis in slices of
 * `workgroupK` steps. For each slice the whole workgroup copies X's and Y's
 * slices into workgroup memory (each element read from the storage buffer
 * once per workgroup instead of once per invocation, neighbouring
 * invocations reading neighbouring addresses), waits at a barrier, and every
 * invocation adds its `rows x cols` products from there.
 *
 * The sums are those of the storage kernel: every output adds its products
 * in reduction order 0, 1, 2, … with `fma`, starting from 0, no split, no
 * atomics; a slice past R is cut short (the loop bound is the same for the
 * whole workgroup), never padded with zeros, so the results are bit-identical
 * (matmul_test.ts checks every candidate against the others). Sizes need not
 * be multiples of the block: loads clamp to the last valid row or column and
 * stores are guarded.
 *
 * Y is read as `[R, Q]`, or with `yTransposed` as `[Q, R]` (a weight stored
 * `[out, in]` read as `[in, out]`): the forward product then needs no
 * transposed copy of its weight. An invocation's rows are spaced `wgY`
 * apart and its columns `wgX` apart, so neighbouring invocations read
 * neighbouring words of workgroup memory and store neighbouring outputs.
 * Slices stored across the copy's read order (X "pr", transposed Y) have
 * rows one word longer than the block, so that the copy's neighbouring
 * invocations write to different memory banks.
 *
 * On llvmpipe this form is slow (a barrier suspends every SIMD group of the
 * workgroup), so the tuner offers it to hardware adapters only; the tests run
 * it on the software adapter all the same.
 *
 * @module
 */
import type { Layout, MatmulTile } from "./matmul.ts";

/**
 * WGSL lines that start a blocked kernel's `main` (this one's and the
 * register-tiled storage kernel's, matmul_storage.ts) (X "rp", Y `[R, Q]`): the
 * block `z`'s reduction length `R` and the offsets of its first row in X
 * (`xo`) and Y (`yo`) and of its output in C (`co`), in elements of `unit`
 * floats.
 */
export function blockPrologue(unit: 1 | 4): string {
  const u = unit === 4 ? " / 4u" : "";
  return `  let z = wid.z;
  let rb = z * dims.w;
  let R = min(dims.w, dims.z - rb);
  let xo = rb * (P${u});
  let yo = rb * (Q${u});
  let co = z * P * (Q${u});`;
}

/** What a workgroup-memory product computes. */
export interface WorkgroupKernelSpec {
  x: Layout;
  /** Y stored `[Q, R]` instead of `[R, Q]`. */
  yTransposed: boolean;
  bias: boolean;
  accumulate: boolean;
  tile: MatmulTile & { workgroupK: number };
  /**
   * X "rp", Y `[R, Q]` only: workgroup z sums reduction rows
   * `[z·w, min((z+1)·w, R))`, w = dims.w, into C's z-th `[P, Q]`
   * (matmul.ts's `blockParallel`).
   */
  blocked?: boolean;
}

/** The pipeline-cache key of a spec. */
export function workgroupKernelKey(s: WorkgroupKernelSpec): string {
  const t = s.tile;
  return `matmulWg:${s.x}:${s.yTransposed ? "yT" : "y"}:b${+s.bias}:acc${+s.accumulate}:` +
    `${t.rows}x${t.cols}:${t.wgX}x${t.wgY}:k${t.workgroupK}` + (s.blocked ? ":blocks" : "");
}

/** Bytes of workgroup memory the kernel of `s` declares. */
function workgroupBytes(s: Pick<WorkgroupKernelSpec, "x" | "yTransposed" | "tile">): number {
  const { xStride, yStride } = strides(s);
  return 4 * s.tile.workgroupK * (xStride + yStride);
}

/** Words per slice row in workgroup memory: the block, plus one where the copy writes across it. */
function strides(s: Pick<WorkgroupKernelSpec, "x" | "yTransposed" | "tile">) {
  const BM = s.tile.rows * s.tile.wgY;
  const BN = s.tile.cols * s.tile.wgX;
  return { BM, BN, xStride: s.x === "pr" ? BM + 1 : BM, yStride: s.yTransposed ? BN + 1 : BN };
}

/**
 * Throws unless `s` makes a kernel: the copy's element count a multiple of
 * the workgroup (each invocation copies the same number), the workgroup and
 * its memory within `limits`.
 */
export function checkWorkgroupSpec(
  s: WorkgroupKernelSpec,
  limits: Pick<
    GPUSupportedLimits,
    "maxComputeInvocationsPerWorkgroup" | "maxComputeWorkgroupStorageSize"
  >,
): void {
  const { rows, cols, wgX, wgY, workgroupK: TK } = s.tile;
  const WG = wgX * wgY;
  const { BM, BN } = strides(s);
  const where = `workgroup matmul ${rows}x${cols} wg${wgX}x${wgY} k${TK}`;
  if (!(TK > 0 && Number.isInteger(TK)) || (TK * BM) % WG !== 0 || (TK * BN) % WG !== 0) {
    throw new Error(`${where}: k·rows·wgY and k·cols·wgX must be multiples of the workgroup`);
  }
  if (WG > limits.maxComputeInvocationsPerWorkgroup) {
    throw new Error(
      `${where}: ${WG} invocations, the device allows ${limits.maxComputeInvocationsPerWorkgroup}`,
    );
  }
  const bytes = workgroupBytes(s);
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    throw new Error(
      `${where}: ${bytes} bytes of workgroup memory, the device allows ${limits.maxComputeWorkgroupStorageSize}`,
    );
  }
}

/**
 * WGSL for `C[P,Q] = Σ_r X[p,r] · Y[r,q] (+ bias[Q]) (+ C)`; dims = (P, Q,
 * R). X "pr" holds (p, r) at `p * R + r`, "rp" at `r * P + p`; Y holds (r,
 * q) at `r * Q + q`, or transposed at `q * R + r`. All scalar f32.
 */
export function workgroupMatmulWgsl(s: WorkgroupKernelSpec): string {
  const { rows: TR, cols: TC, wgX, wgY, workgroupK: TK } = s.tile;
  const WG = wgX * wgY;
  const { BM, BN, xStride, yStride } = strides(s);
  if (s.blocked && (s.x !== "rp" || s.yTransposed)) {
    throw new Error('workgroup matmul: blocks need X laid out "rp" and Y [R, Q]');
  }
  // A blocked kernel's offsets (blockPrologue), empty otherwise.
  const [xo, yo, co] = s.blocked ? ["xo + ", "yo + ", "co + "] : ["", "", ""];
  const lines: string[] = [];
  for (let i = 0; i < TR; i++) {
    for (let j = 0; j < TC; j++) lines.push(`  var acc_${i}_${j} = 0.0;`);
  }
  lines.push(`  for (var r0 = 0u; r0 < R; r0 += ${TK}u) {`);
  // The copy: element e of a slice, e = li + n·WG, walking the operand's
  // contiguous axis fastest so that neighbouring invocations read
  // neighbouring words. `kContiguous`: the operand holds (i, r) at
  // `i * R + r` (X "pr", Y transposed), else at `r * limit + i`.
  const copy = (
    dst: string,
    src: string,
    block: number,
    stride: number,
    base: string,
    limit: string,
    kContiguous: boolean,
    offset: string,
  ) => {
    const row = `min(${base} + i, ${limit} - 1u)`; // clamped, as the storage kernel's
    const step = "min(r0 + kk, R - 1u)";
    for (let n = 0; n < (TK * block) / WG; n++) {
      const at = kContiguous
        ? `let kk = e % ${TK}u; let i = e / ${TK}u;`
        : `let i = e % ${block}u; let kk = e / ${block}u;`;
      lines.push(`    { let e = li + ${n * WG}u; ${at}`);
      lines.push(
        `      ${dst}[kk * ${stride}u + i] = ${src}[${
          kContiguous ? `${row} * R + ${step}` : `${offset}${step} * ${limit} + ${row}`
        }]; }`,
      );
    }
  };
  copy("xs", "x", BM, xStride, "pB", "P", s.x === "pr", xo);
  copy("ys", "y", BN, yStride, "qB", "Q", s.yTransposed, yo);
  lines.push(`    workgroupBarrier();`);
  // The slice's steps in order; the last slice stops at R (no zero padding:
  // fma(0, 0, -0) is +0).
  lines.push(`    let kEnd = min(${TK}u, R - r0);`);
  lines.push(`    for (var kk = 0u; kk < kEnd; kk++) {`);
  for (let i = 0; i < TR; i++) {
    lines.push(`      let x${i} = xs[kk * ${xStride}u + lid.y + ${i * wgY}u];`);
  }
  for (let j = 0; j < TC; j++) {
    lines.push(`      let y${j} = ys[kk * ${yStride}u + lid.x + ${j * wgX}u];`);
  }
  for (let i = 0; i < TR; i++) {
    for (let j = 0; j < TC; j++) {
      lines.push(`      acc_${i}_${j} = fma(x${i}, y${j}, acc_${i}_${j});`);
    }
  }
  lines.push(`    }`);
  lines.push(`    workgroupBarrier();`);
  lines.push(`  }`);
  // Epilogue, after the last barrier: guarded stores of this invocation's block.
  for (let j = 0; j < TC; j++) {
    lines.push(`  let q${j} = qB + lid.x + ${j * wgX}u;`);
    if (s.bias) lines.push(`  let bias${j} = bias[min(q${j}, Q - 1u)];`);
  }
  for (let i = 0; i < TR; i++) {
    lines.push(`  let p${i} = pB + lid.y + ${i * wgY}u;`);
    for (let j = 0; j < TC; j++) {
      let value = `acc_${i}_${j}`;
      if (s.bias) value += ` + bias${j}`;
      const at = `${co}p${i} * Q + q${j}`;
      if (s.accumulate) value = `c[${at}] + (${value})`;
      lines.push(`  if (p${i} < P && q${j} < Q) { c[${at}] = ${value}; }`);
    }
  }
  return /* wgsl */ `
// dims.x = P (output rows), dims.y = Q (output columns), dims.z = R (reduction length)${
    s.blocked ? ", dims.w = rows per block" : ""
  }
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // X, layout "${s.x}"
@group(0) @binding(2) var<storage, read> y: array<f32>;        // Y ${
    s.yTransposed ? "[Q, R]" : "[R, Q]"
  }
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // C [P, Q]
${s.bias ? `@group(0) @binding(4) var<storage, read> bias: array<f32>;  // [Q]` : ""}

// One slice of the reduction: xs[kk * ${xStride} + row] = X[pB + row, r0 + kk],
// ys[kk * ${yStride} + col] = Y[r0 + kk, qB + col].
var<workgroup> xs: array<f32, ${TK * xStride}>;
var<workgroup> ys: array<f32, ${TK * yStride}>;

@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let P = dims.x;
  let Q = dims.y;
${s.blocked ? blockPrologue(1) : "  let R = dims.z;"}
  let pB = wid.y * ${BM}u;
  let qB = wid.x * ${BN}u;
${lines.join("\n")}
}
`;
}
