/**
 * Kernels of SamOut's recurrent step form (SAMOUT.md, "Recurrent (step)
 * form"): one token per batch row at position `t`, the running maximum
 * carried as state. The other per-layer ops (matmuls, gated FFN, alpha mix,
 * LayerNorm, residual) are the full-sequence kernels run with S = 1.
 *
 * - position concat: `cat[b, :] = [Pos[t, :], h[b, :]]`;
 * - MaxState step: `z = (a + b) / sqrt(hs)`, `m = max(state, z)` (state
 *   updated in place), `s = (m + c) * m + b`;
 * - row gather: `out[i, :] = src[index[i], :]` (the head on chosen rows only).
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type Binding,
  checkSize,
  createElementStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
} from "./elementwise.ts";

/** sizes = (B, d, t). */
const CONCAT_STEP_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> pos: array<f32>;  // read, Pos [P, d]
@group(0) @binding(2) var<storage, read_write> h: array<f32>;    // read, [B, d]
@group(0) @binding(3) var<storage, read_write> cat: array<f32>;  // [B, 2d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;
  let width = 2u * d;
  if (i >= sizes.x * width) { return; }
  let row = i / width;
  let c = i % width;
  if (c < d) {
    cat[i] = pos[sizes.z * d + c];
  } else {
    cat[i] = h[row * d + c - d];
  }
}
`;

/** sizes = (B * d, f32 bits of sqrt(hs)). */
const MAX_STATE_STEP_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> aIn: array<f32>;    // read, u W0^T [B, d]
@group(0) @binding(2) var<storage, read_write> bIn: array<f32>;    // read, u W1^T [B, d]
@group(0) @binding(3) var<storage, read_write> cIn: array<f32>;    // read, u W2^T [B, d]
@group(0) @binding(4) var<storage, read_write> state: array<f32>;  // running max [B, d], updated
@group(0) @binding(5) var<storage, read_write> sOut: array<f32>;   // s [B, d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let bValue = bIn[i];
  let z = (aIn[i] + bValue) / bitcast<f32>(sizes.y);
  let m = max(state[i], z);
  state[i] = m;
  sOut[i] = (m + cIn[i]) * m + bValue;
}
`;

/** sizes = (n, width). */
const GATHER_ROWS_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;    // read, [rows, width]
@group(0) @binding(2) var<storage, read_write> index: array<u32>;  // read, [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [n, width]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let width = sizes.y;
  if (i >= sizes.x * width) { return; }
  out[i] = src[index[i / width] * width + i % width];
}
`;

/** Dims of a step-form kernel: B rows at position t. */
export interface StepFormDims {
  B: number;
  /** Position of this step, < P. */
  t: number;
}

/** `cat[b, :] = [Pos[t, :], h[b, :]]` for one position t. */
export function createPositionConcatStep(
  gpu: Gpu,
  buffers: { pos: Binding; h: Binding; out: Binding; d: number; P: number; maxRows: number },
): GpuStep<StepFormDims> {
  const label = "position.concat.step";
  const { d, P, maxRows } = buffers;
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: CONCAT_STEP_WGSL,
    buffers: [buffers.pos, buffers.h, buffers.out],
    count: (dims) => {
      checkSize(label, "B", dims.B, maxRows);
      checkSize(label, "t", dims.t, P - 1);
      return dims.B * 2 * d;
    },
    sizes: (dims) => [dims.B, d, dims.t],
  });
}

/** One MaxState step: updates the running-max `state [B, d]` and writes `s [B, d]`. */
export function createMaxStateStep(
  gpu: Gpu,
  buffers: {
    a: Binding;
    b: Binding;
    c: Binding;
    state: Binding;
    s: Binding;
    d: number;
    heads: number;
    maxRows: number;
  },
): GpuStep<StepFormDims> {
  const label = "max_state.step";
  const { d, heads, maxRows } = buffers;
  if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0) {
    throw new RangeError(`max_state.step: d = ${d} is not divisible by heads = ${heads}`);
  }
  const scaleBits = new Uint32Array(new Float32Array([Math.sqrt(d / heads)]).buffer)[0];
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: MAX_STATE_STEP_WGSL,
    buffers: [buffers.a, buffers.b, buffers.c, buffers.state, buffers.s],
    count: (dims) => {
      checkSize(label, "B", dims.B, maxRows);
      return dims.B * d;
    },
    sizes: (dims) => [dims.B * d, scaleBits],
  });
}

/** `out[i, :] = src[index[i], :]` for i < n (rows of `width` f32). */
export function createGatherRows(
  gpu: Gpu,
  buffers: { src: Binding; index: Binding; out: Binding; width: number; maxCount: number },
): GpuStep<{ n: number }> {
  const label = "gather.rows";
  const { width, maxCount } = buffers;
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: GATHER_ROWS_WGSL,
    buffers: [buffers.src, buffers.index, buffers.out],
    count: (dims) => {
      checkSize(label, "n", dims.n, maxCount);
      return dims.n * width;
    },
    sizes: (dims) => [dims.n, width],
  });
}
