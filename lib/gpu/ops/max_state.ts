/**
 * The MaxState token mixer after its three projections, fused into one
 * per-column scan each way (one invocation per (b, j), walking t):
 *
 * - forward: `a, b, c [B, S, d]` →
 *   `z = (a + b) / sqrt(hs)` (never stored),
 *   `m = running max of z along t` with its `argmax` (running_max.ts's scan),
 *   `s = (m + c) * m + b`; writes m, argmax and s.
 * - backward: `ds, m, c, argmax` →
 *   `dm = ds (2m + c)`, `dc = ds m`,
 *   `dz` = running-max gradient of dm (running_max.ts's backward scan),
 *   `da = dz / sqrt(hs)`, `db = ds + dz / sqrt(hs)`; writes da, db, dc side
 *   by side, each row `[da | db | dc]` of a `[B, S, 3d]` gradient, so that
 *   the backward pass runs the three projections' input gradient as one
 *   product of reduction 3d and their weight gradients as one `[3d, d]`
 *   product (lib/model/backward.ts).
 *
 * `a, b, c` are the outputs of the projections `u @ W0^T`, `u @ W1^T`,
 * `u @ W2^T`; `da, db, dc` are the gradients that flow back into them. `hs` is
 * the head size `d / H`. All gradients are overwritten, not accumulated.
 * On software adapters the inputs are read through texture copies
 * (texture_inputs.ts) when the graph records the step with its command
 * encoder; the values, hence the bits, are the same.
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import { type BatchDims, type Binding, checkedRows, createElementStep } from "./elementwise.ts";
import {
  type InputMode,
  type InputType,
  inputWgsl,
  type TextureInput,
  textureInputMode,
} from "./texture_inputs.ts";
import {
  columnScanEntryWgsl,
  runningMaxGradientScanWgsl,
  runningMaxScanWgsl,
} from "./running_max.ts";

/**
 * sizes = (B, S, d, f32 bits of sqrt(hs)); with `vec4` each invocation scans
 * four neighbouring channels (sizes.z = d / 4): the same operations per
 * channel, so the same bits.
 */
const maxStateForwardWgsl = (vec4: boolean, mode: InputMode = "storage") => {
  const f = vec4 ? "vec4<f32>" : "f32";
  const u = vec4 ? "vec4<u32>" : "u32";
  return /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "aIn", f, mode)} // u W0^T [B, S, d]
${inputWgsl(2, "bIn", f, mode)} // u W1^T [B, S, d]
${inputWgsl(3, "cIn", f, mode)} // u W2^T [B, S, d]
@group(0) @binding(4) var<storage, read_write> mOut: array<${f}>;    // running max [B, S, d]
@group(0) @binding(5) var<storage, read_write> argmax: array<${u}>;  // its position [B, S, d]
@group(0) @binding(6) var<storage, read_write> sOut: array<${f}>;    // s [B, S, d]
${
    columnScanEntryWgsl(`
  let sqrtHs = bitcast<f32>(sizes.w);
${
      runningMaxScanWgsl(
        "let bValue = bInAt(i); let z = (aInAt(i) + bValue) / sqrtHs;",
        "mOut[i] = m; argmax[i] = arg; sOut[i] = (m + cInAt(i)) * m + bValue;",
        vec4,
      )
    }`)
  }
`;
};

/** sizes = (B, S, d, f32 bits of sqrt(hs)); `vec4` as in the forward. */
const maxStateBackwardWgsl = (vec4: boolean, mode: InputMode = "storage") => {
  const f = vec4 ? "vec4<f32>" : "f32";
  const u = vec4 ? "vec4<u32>" : "u32";
  return /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dsIn", f, mode)} // [B, S, d]
${inputWgsl(2, "mIn", f, mode)} // forward's m [B, S, d]
${inputWgsl(3, "cIn", f, mode)} // forward's c [B, S, d]
${inputWgsl(4, "argmaxIn", u, mode)} // forward's [B, S, d]
@group(0) @binding(5) var<storage, read_write> gradOut: array<${f}>; // [B, S, 3d]: da | db | dc
${
    columnScanEntryWgsl(`
  let sqrtHs = bitcast<f32>(sizes.w);
${
      runningMaxGradientScanWgsl(
        "let ds = dsInAt(i); let mValue = mInAt(i); let dm = ds * (2.0 * mValue + cInAt(i));",
        "let dzScaled = dz / sqrtHs; let o = (b * S + t) * 3u * d + j; gradOut[o] = dzScaled; " +
          "gradOut[o + d] = ds + dzScaled; gradOut[o + 2u * d] = ds * mValue;",
        vec4,
        "argmaxInAt(i)",
      )
    }`)
  }
`;
};

function sqrtHsBits(d: number, heads: number): number {
  if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0) {
    throw new RangeError(`max_state: d = ${d} is not divisible by heads = ${heads}`);
  }
  return new Uint32Array(new Float32Array([Math.sqrt(d / heads)]).buffer)[0];
}

/** Buffers and sizes of {@link createMaxStateForward}. */
export interface MaxStateForwardBuffers {
  /** `u @ W0^T` `[B, S, d]` f32. */
  a: Binding;
  /** `u @ W1^T` `[B, S, d]` f32. */
  b: Binding;
  /** `u @ W2^T` `[B, S, d]` f32. */
  c: Binding;
  /** Running max of z `[B, S, d]` f32, kept for the backward pass. */
  m: Binding;
  /** Its position `[B, S, d]` u32, kept for the backward pass. */
  argmax: Binding;
  /** The mixer output `s = (m + c) m + b` `[B, S, d]` f32. */
  s: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Heads H: the scale is `sqrt(d / H)`. */
  heads: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
  /** Read the inputs through texture copies (texture_inputs.ts); default: on software adapters. */
  textureReads?: boolean;
}

/** The fused MaxState forward (see the module doc). */
export function createMaxStateForward(
  gpu: Gpu,
  buffers: MaxStateForwardBuffers,
): GpuStep<BatchDims> {
  const label = "max_state.forward";
  const { d, maxRows } = buffers;
  const scaleBits = sqrtHsBits(d, buffers.heads);
  const vec4 = d % 4 === 0;
  const w = vec4 ? d / 4 : d;
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${vec4 ? "v4" : "s"}`,
    code: maxStateForwardWgsl(vec4),
    buffers: [buffers.a, buffers.b, buffers.c, buffers.m, buffers.argmax, buffers.s],
    count: (dims) => checkedRows(label, dims, maxRows) === 0 ? 0 : dims.B * w,
    sizes: (dims) => [dims.B, dims.S, w, scaleBits],
    ...(vec4 && {
      textureCode: maxStateForwardWgsl(vec4, textureInputMode(gpu)),
      textureInputs: [0, 1, 2].map((index) => activationInput(index, "vec4<f32>", w, maxRows)),
      textureReads: buffers.textureReads,
    }),
  });
}

/** Buffers and sizes of {@link createMaxStateBackward}. */
export interface MaxStateBackwardBuffers {
  /** Gradient of s `[B, S, d]` f32. */
  ds: Binding;
  /** The forward's m `[B, S, d]` f32. */
  m: Binding;
  /** The forward's c `[B, S, d]` f32. */
  c: Binding;
  /** The forward's argmax `[B, S, d]` u32. */
  argmax: Binding;
  /**
   * The gradients of a, b (through s and through z) and c side by side,
   * `[B, S, 3d]` f32 (row `[da | db | dc]`), overwritten.
   */
  grad: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Heads H: the scale is `sqrt(d / H)`. */
  heads: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
  /** Read the inputs through texture copies (texture_inputs.ts); default: on software adapters. */
  textureReads?: boolean;
}

/** The fused MaxState backward (see the module doc). */
export function createMaxStateBackward(
  gpu: Gpu,
  buffers: MaxStateBackwardBuffers,
): GpuStep<BatchDims> {
  const label = "max_state.backward";
  const { d, maxRows } = buffers;
  const scaleBits = sqrtHsBits(d, buffers.heads);
  const vec4 = d % 4 === 0;
  const w = vec4 ? d / 4 : d;
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${vec4 ? "v4" : "s"}`,
    code: maxStateBackwardWgsl(vec4),
    buffers: [
      buffers.ds,
      buffers.m,
      buffers.c,
      buffers.argmax,
      buffers.grad,
    ],
    count: (dims) => checkedRows(label, dims, maxRows) === 0 ? 0 : dims.B * w,
    sizes: (dims) => [dims.B, dims.S, w, scaleBits],
    ...(vec4 && {
      textureCode: maxStateBackwardWgsl(vec4, textureInputMode(gpu)),
      textureInputs: [
        ...[0, 1, 2].map((index) => activationInput(index, "vec4<f32>", w, maxRows)),
        activationInput(3, "vec4<u32>", w, maxRows),
      ],
      textureReads: buffers.textureReads,
    }),
  });
}

/** A `[B, S, d]` input read through a texture: B*S rows of `w` vec4s. */
function activationInput(
  index: number,
  type: InputType,
  w: number,
  maxRows: number,
): TextureInput<BatchDims> {
  return { index, type, count: (dims) => dims.B * dims.S * w, maxCount: maxRows * w };
}
