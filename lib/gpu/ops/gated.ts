/**
 * The gate of the feed-forward block, `y = f1 * relu(g)` with
 * `f1 = Ffn1(s)` and `g = Gate(s)` (both `[B, S, 2d]`), forward and backward.
 * relu'(0) is taken as 0 (PyTorch). The backward writes df1 and dg side by
 * side, each row `[df1 | dg]` of a `[B, S, 2 width]` gradient, so that the
 * backward pass runs Ffn1's and Gate's input gradient as one product of
 * reduction 2 width and their weight and bias gradients as one each
 * (lib/model/backward.ts). On software adapters the inputs are read through
 * texture copies (texture_inputs.ts), the same values.
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  channelGroups,
  checkedRows,
  createElementStep,
  createVectorizedStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  type ElementType,
} from "./elementwise.ts";
import { type InputMode, inputWgsl, textureInputMode } from "./texture_inputs.ts";

/** Forward: `y = f1 * relu(g)`; sizes.x = n = B*S*width (in elements of T). */
const gatedForwardWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "f1", t, mode)} // [B, S, width]
${inputWgsl(2, "g", t, mode)} // [B, S, width]
@group(0) @binding(3) var<storage, read_write> y: array<${t}>;   // [B, S, width]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let gate = gAt(i);
  y[i] = select(${t}(0.0), f1At(i) * gate, gate > ${t}(0.0));
}
`;

/**
 * Backward: `df1 = dy relu(g)`, `dg = dy f1 [g > 0]`; sizes.x = n (elements of
 * T), `w` the row's width in elements of T (a constant: the row of element i
 * is a multiply and a shift away, not a division).
 */
const gatedBackwardWgsl = (t: ElementType, mode: InputMode, w: number) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", t, mode)} // [B, S, width]
${inputWgsl(2, "f1", t, mode)} // [B, S, width]
${inputWgsl(3, "g", t, mode)} // [B, S, width]
@group(0) @binding(4) var<storage, read_write> grad: array<${t}>;  // [B, S, 2 width]: [df1 | dg]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let gate = gAt(i);
  let open = gate > ${t}(0.0);
  let dyValue = dyAt(i);
  let o = i + (i / ${w}u) * ${w}u;
  grad[o] = select(${t}(0.0), dyValue * gate, open);
  grad[o + ${w}u] = select(${t}(0.0), dyValue * f1At(i), open);
}
`;

/** Buffers and sizes of {@link createGatedForward}. */
export interface GatedForwardBuffers {
  /** `Ffn1(s)` `[B, S, width]` f32. */
  f1: Binding;
  /** `Gate(s)` `[B, S, width]` f32. */
  g: Binding;
  /** `f1 * relu(g)` `[B, S, width]` f32. */
  y: Binding;
  /** Channels per row (2d in SamOut). */
  width: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `y = f1 * relu(g)`. */
export function createGatedForward(gpu: Gpu, buffers: GatedForwardBuffers): GpuStep<BatchDims> {
  const label = "gated.forward";
  const { width, maxRows } = buffers;
  return createVectorizedStep(gpu, {
    label,
    code: gatedForwardWgsl,
    buffers: [buffers.f1, buffers.g, buffers.y],
    count: (dims) => checkedRows(label, dims, maxRows) * width,
    textureInputs: [0, 1],
    maxCount: maxRows * width,
  });
}

/** Buffers and sizes of {@link createGatedBackward}. */
export interface GatedBackwardBuffers {
  /** Gradient of y `[B, S, width]` f32. */
  dy: Binding;
  /** The forward's f1 `[B, S, width]` f32. */
  f1: Binding;
  /** The forward's g `[B, S, width]` f32. */
  g: Binding;
  /** The gradients of f1 and g side by side, `[B, S, 2 width]` (row `[df1 | dg]`), overwritten. */
  grad: Binding;
  /** Channels per row (2d in SamOut). */
  width: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `df1 = dy relu(g)`, `dg = dy f1 [g > 0]`, written as `[df1 | dg]` rows. */
export function createGatedBackward(gpu: Gpu, buffers: GatedBackwardBuffers): GpuStep<BatchDims> {
  const label = "gated.backward";
  const { width, maxRows } = buffers;
  // Four channels an invocation when a row is whole vec4s (then a vec4 never straddles two rows).
  const [t, w] = channelGroups(width);
  const vec4 = t === "vec4<f32>";
  const count = (dims: BatchDims) => checkedRows(label, dims, maxRows) * w;
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}:w${w}`,
    code: gatedBackwardWgsl(t, "storage", w),
    buffers: [buffers.dy, buffers.f1, buffers.g, buffers.grad],
    count,
    sizes: (dims) => [count(dims)],
    ...(vec4 && {
      textureCode: gatedBackwardWgsl(t, textureInputMode(gpu), w),
      textureInputs: [0, 1, 2].map((index) => ({
        index,
        type: t,
        count,
        maxCount: maxRows * w,
      })),
    }),
  });
}
