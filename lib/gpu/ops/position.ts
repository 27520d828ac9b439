/**
 * The position half of each layer's Down projection. SAMOUT.md writes
 * `u = concat(p, h) Down^T` with `p[b, t] = Pos[t]`; with `Down = [Down_p |
 * Down_h]` (its first d input columns read the position, the last d the
 * hidden vector) that is
 *
 *     u[b, t] = h[b, t] Down_h^T + pp[t],   pp = Pos[0:S] Down_p^T  [S, d]
 *
 * The position term is the same for every batch row, so the graph computes
 * it once per position and broadcasts it ({@link createPositionBroadcast}),
 * and the backward pass sums the batch's gradient per position
 * ({@link createBatchSum}) before the position's two products:
 * `dPos[0:S] += (Σ_b du[b]) Down_p`, `dDown_p = (Σ_b du[b])^T Pos[0:S]`. The
 * Down products then reduce over d instead of 2d (half their multiply-adds)
 * and no `[B·S, 2d]` concat is written or read. The same function, summed
 * in a different (fixed) order than the concat's product: the parity tests
 * compare with the CPU reference, which concatenates.
 *
 * `Down` is stored `[d, 2d]` (PyTorch's Linear, checkpoints unchanged): the
 * graph copies its halves into two `[d, d]` matrices before the products
 * ({@link createDownHalves}) and writes the halves' gradients back into the
 * `[d, 2d]` gradient ({@link createDownMerge}).
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  channelGroups,
  checkedRows,
  checkSize,
  createElementStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  type ElementType,
} from "./elementwise.ts";
import { type InputMode, inputWgsl, textureInputMode } from "./texture_inputs.ts";

/**
 * One invocation per element (of type T) of a `[d, d]` half: `split` copies
 * `whole [d, 2d]` into `left` (columns 0..d-1) and `right` (d..2d-1);
 * otherwise the reverse. sizes = (d rows, w elements of T per half row).
 */
const halvesWgsl = (t: ElementType, split: boolean) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> whole: array<${t}>;  // [d, 2d]${
  split ? ", read" : ", overwritten"
}
@group(0) @binding(2) var<storage, read_write> left: array<${t}>;   // [d, d]${
  split ? ", overwritten" : ", read"
}
@group(0) @binding(3) var<storage, read_write> right: array<${t}>;  // [d, d]${
  split ? ", overwritten" : ", read"
}
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let w = sizes.y;
  if (i >= sizes.x * w) { return; }
  let at = (i / w) * 2u * w + i % w;
  ${
  split
    ? "left[i] = whole[at];\n  right[i] = whole[at + w];"
    : "whole[at] = left[i];\n  whole[at + w] = right[i];"
}
}
`;

function createHalves(
  gpu: Gpu,
  label: string,
  split: boolean,
  buffers: { whole: Binding; left: Binding; right: Binding; d: number },
): GpuStep<unknown> {
  const [t, w] = channelGroups(buffers.d);
  return createElementStep<unknown>(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: halvesWgsl(t, split),
    buffers: [buffers.whole, buffers.left, buffers.right],
    count: () => buffers.d * w,
    sizes: () => [buffers.d, w],
  });
}

/** Buffers of {@link createDownHalves}. */
export interface DownHalvesBuffers {
  /** `down.l.weight` `[d, 2d]` f32 (a slice of the parameter buffer). */
  weight: Binding;
  /** `Down_p` `[d, d]`: the columns that read the position, overwritten. */
  position: Binding;
  /** `Down_h` `[d, d]`: the columns that read the hidden vector, overwritten. */
  hidden: Binding;
  /** Hidden size d. */
  d: number;
}

/** Copies `Down [d, 2d]` into its halves `Down_p` and `Down_h` (`[d, d]` each). */
export function createDownHalves(gpu: Gpu, buffers: DownHalvesBuffers): GpuStep<unknown> {
  return createHalves(gpu, "position.down_halves", true, {
    whole: buffers.weight,
    left: buffers.position,
    right: buffers.hidden,
    d: buffers.d,
  });
}

/** Buffers of {@link createDownMerge}. */
export interface DownMergeBuffers {
  /** `dDown_p` `[d, d]`. */
  position: Binding;
  /** `dDown_h` `[d, d]`. */
  hidden: Binding;
  /** `d down.l.weight` `[d, 2d]` (a slice of the gradient buffer), overwritten. */
  grad: Binding;
  /** Hidden size d. */
  d: number;
}

/** Writes the halves' gradients into `dDown [d, 2d] = [dDown_p | dDown_h]`. */
export function createDownMerge(gpu: Gpu, buffers: DownMergeBuffers): GpuStep<unknown> {
  return createHalves(gpu, "position.down_merge", false, {
    whole: buffers.grad,
    left: buffers.position,
    right: buffers.hidden,
    d: buffers.d,
  });
}

/**
 * `out[b, t, :] = pp[t, :]`, one invocation per element of `out` (of type T).
 * sizes = (B, S, w elements of T per row).
 */
const broadcastWgsl = (t: ElementType, mode: InputMode = "storage") => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "pp", t, mode)} // [S, d]
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;  // [B, S, d], overwritten
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let S = sizes.y;
  let w = sizes.z;
  if (i >= sizes.x * S * w) { return; }
  out[i] = ppAt(((i / w) % S) * w + i % w);
}
`;

/** Buffers and sizes of {@link createPositionBroadcast}. */
export interface PositionBroadcastBuffers {
  /** `pp = Pos[0:S] Down_p^T` `[S, d]` f32. */
  pp: Binding;
  /** `[B, S, d]` f32, overwritten: row (b, t) gets `pp[t]`. */
  out: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Maximum positions: S must not exceed it. */
  P: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `out[b, t, :] = pp[t, :]` for every batch row b. */
export function createPositionBroadcast(
  gpu: Gpu,
  buffers: PositionBroadcastBuffers,
): GpuStep<BatchDims> {
  const label = "position.broadcast";
  const { d, P, maxRows } = buffers;
  const [t, w] = channelGroups(d);
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: broadcastWgsl(t),
    buffers: [buffers.pp, buffers.out],
    count: (dims) => {
      checkSize(label, "S", dims.S, P);
      return checkedRows(label, dims, maxRows) * w;
    },
    sizes: (dims) => [dims.B, dims.S, w],
    ...(t === "vec4<f32>" && {
      textureCode: broadcastWgsl(t, textureInputMode(gpu)),
      textureInputs: [{
        index: 0,
        type: t,
        count: (dims: BatchDims) => dims.S * w,
        maxCount: Math.min(P, maxRows) * w,
      }],
    }),
  });
}

/**
 * `sum[t, :] = Σ_{b = 0..B-1, in order} g[b, t, :]`, one invocation per
 * element of `sum` (of type T). sizes = (B, S, w elements of T per row).
 */
const batchSumWgsl = (t: ElementType, mode: InputMode = "storage") => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "g", t, mode)} // [B, S, d]
@group(0) @binding(2) var<storage, read_write> sum: array<${t}>;  // [S, d], overwritten
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let j = elementIndex(wid, nwg, lid);
  let B = sizes.x;
  let S = sizes.y;
  let w = sizes.z;
  if (j >= S * w) { return; }
  var total = ${t}(0.0);
  for (var b = 0u; b < B; b++) { total += gAt(b * S * w + j); }
  sum[j] = total;
}
`;

/** Buffers and sizes of {@link createBatchSum}. */
export interface BatchSumBuffers {
  /** `[B, S, d]` f32. */
  g: Binding;
  /** `[S, d]` f32, overwritten. */
  sum: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Maximum positions: S must not exceed it. */
  P: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `sum[t, :] = Σ_b g[b, t, :]`, each element summed over b = 0, 1, … in order. */
export function createBatchSum(gpu: Gpu, buffers: BatchSumBuffers): GpuStep<BatchDims> {
  const label = "position.batch_sum";
  const { d, P, maxRows } = buffers;
  const [t, w] = channelGroups(d);
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: batchSumWgsl(t),
    buffers: [buffers.g, buffers.sum],
    count: (dims) => {
      checkSize(label, "S", dims.S, P);
      return checkedRows(label, dims, maxRows) === 0 ? 0 : dims.S * w;
    },
    sizes: (dims) => [dims.B, dims.S, w],
    ...(t === "vec4<f32>" && {
      textureCode: batchSumWgsl(t, textureInputMode(gpu)),
      textureInputs: [{
        index: 0,
        type: t,
        count: (dims: BatchDims) => dims.B * dims.S * w,
        maxCount: maxRows * w,
      }],
    }),
  });
}
