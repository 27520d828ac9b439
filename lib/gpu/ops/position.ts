/**
 * The input of each layer's Down projection, `concat(p, h)`: the position
 * embedding `Pos[t]` first, then the hidden vector `h[b, t]`; forward and
 * backward.
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  checkSize,
  createElementStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  type ElementType,
} from "./elementwise.ts";
import { type InputMode, inputWgsl, textureInputMode } from "./texture_inputs.ts";

/**
 * Forward: `cat[b, t, c] = Pos[t, c]` for c < d, `h[b, t, c - d]` for
 * d <= c < 2d; one invocation per element of `cat` (of type T: with
 * `vec4<f32>`, 4 channels, and sizes.z = d / 4). sizes = (B, S, d).
 */
const concatForwardWgsl = (t: ElementType, mode: InputMode = "storage") => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "pos", t, mode)} // Pos [P, d]
${inputWgsl(2, "h", t, mode)} // [B, S, d]
@group(0) @binding(3) var<storage, read_write> cat: array<${t}>;  // [B, S, 2d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let S = sizes.y;
  let d = sizes.z;
  let width = 2u * d;
  if (i >= sizes.x * S * width) { return; }
  let row = i / width;
  let c = i % width;
  if (c < d) {
    cat[i] = posAt((row % S) * d + c);
  } else {
    cat[i] = hAt(row * d + c - d);
  }
}
`;

/**
 * Backward, one dispatch of B*S*d + S*d invocations: the first B*S*d write
 * `dh[b, t, c] = dcat[b, t, d + c]`; the next S*d add
 * `sum over b = 0..B-1 (in order) of dcat[b, t, c]` into `dPos[t, c]`.
 * sizes = (B, S, d).
 */
const concatBackwardWgsl = (t: ElementType, mode: InputMode = "storage") => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dcat", t, mode)} // [B, S, 2d]
@group(0) @binding(2) var<storage, read_write> dh: array<${t}>;    // [B, S, d]
@group(0) @binding(3) var<storage, read_write> dPos: array<${t}>;  // [P, d], rows < S accumulated
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let B = sizes.x;
  let S = sizes.y;
  let d = sizes.z;
  let width = 2u * d;
  let hCount = B * S * d;
  if (i < hCount) {
    dh[i] = dcatAt((i / d) * width + d + i % d);
    return;
  }
  let j = i - hCount;
  if (j >= S * d) { return; }
  let t = j / d;
  let c = j % d;
  var sum = ${t}(0.0);
  for (var b = 0u; b < B; b++) {
    sum += dcatAt((b * S + t) * width + c);
  }
  dPos[j] = dPos[j] + sum;
}
`;

/** The element type for rows of `d` channels, and the elements per row: vec4s when d % 4 == 0. */
function channelGroups(d: number): [ElementType, number] {
  return d % 4 === 0 ? ["vec4<f32>", d / 4] : ["f32", d];
}

/** Buffers and sizes of {@link createPositionConcat}. */
export interface PositionConcatBuffers {
  /** `pos.weight` `[P, d]` f32 (a slice of the parameter buffer). */
  pos: Binding;
  /** Hidden state `h` `[B, S, d]` f32. */
  h: Binding;
  /** `concat(p, h)` `[B, S, 2d]` f32. */
  out: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Maximum positions: S must not exceed it. */
  P: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `out[b, t, :] = [Pos[t, :], h[b, t, :]]`. */
export function createPositionConcat(
  gpu: Gpu,
  buffers: PositionConcatBuffers,
): GpuStep<BatchDims> {
  const label = "position.concat";
  const { d, P, maxRows } = buffers;
  // Four channels per invocation where d allows (the same copies).
  const [t, w] = channelGroups(d);
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: concatForwardWgsl(t),
    buffers: [buffers.pos, buffers.h, buffers.out],
    count: (dims) => {
      checkSize(label, "S", dims.S, P);
      return checkedRows(label, dims, maxRows) * 2 * w;
    },
    sizes: (dims) => [dims.B, dims.S, w],
    ...(t === "vec4<f32>" && {
      textureCode: concatForwardWgsl(t, textureInputMode(gpu)),
      textureInputs: [
        { index: 0, type: t, count: (dims: BatchDims) => dims.S * w, maxCount: P * w },
        {
          index: 1,
          type: t,
          count: (dims: BatchDims) => dims.B * dims.S * w,
          maxCount: maxRows * w,
        },
      ],
    }),
  });
}

/** Buffers and sizes of {@link createPositionConcatBackward}. */
export interface PositionConcatBackwardBuffers {
  /** Gradient of `concat(p, h)` `[B, S, 2d]` f32. */
  dcat: Binding;
  /** Gradient of `h` `[B, S, d]` f32, overwritten. */
  dh: Binding;
  /**
   * `d pos.weight` `[P, d]` f32 (a slice of the gradient buffer): rows t < S
   * are ADDED to (every layer contributes), rows t >= S are not touched.
   */
  dPos: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Maximum positions: S must not exceed it. */
  P: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `dh = dcat[..., d:]`, `dPos[t] += sum_b dcat[b, t, :d]`. */
export function createPositionConcatBackward(
  gpu: Gpu,
  buffers: PositionConcatBackwardBuffers,
): GpuStep<BatchDims> {
  const label = "position.concat.backward";
  const { d, P, maxRows } = buffers;
  // Four channels per invocation where d allows (the same sums per channel, in the same order).
  const [t, w] = channelGroups(d);
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: concatBackwardWgsl(t),
    buffers: [buffers.dcat, buffers.dh, buffers.dPos],
    count: (dims) => {
      checkSize(label, "S", dims.S, P);
      const rows = checkedRows(label, dims, maxRows);
      return rows === 0 ? 0 : (rows + dims.S) * w;
    },
    sizes: (dims) => [dims.B, dims.S, w],
    ...(t === "vec4<f32>" && {
      textureCode: concatBackwardWgsl(t, textureInputMode(gpu)),
      textureInputs: [{
        index: 0,
        type: t,
        count: (dims: BatchDims) => dims.B * dims.S * 2 * w,
        maxCount: maxRows * 2 * w,
      }],
    }),
  });
}
