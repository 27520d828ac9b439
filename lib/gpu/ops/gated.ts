/**
 * The gate of the feed-forward block, `y = f1 * relu(g)` with
 * `f1 = Ffn1(s)` and `g = Gate(s)` (both `[B, S, 2d]`), forward and backward.
 * relu'(0) is taken as 0 (PyTorch). On software adapters the inputs are read
 * through texture copies (texture_inputs.ts), the same values.
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  createVectorizedStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  type ElementType,
} from "./elementwise.ts";
import { type InputMode, inputWgsl } from "./texture_inputs.ts";

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

/** Backward: `df1 = dy relu(g)`, `dg = dy f1 [g > 0]`; sizes.x = n. */
const gatedBackwardWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", t, mode)} // [B, S, width]
${inputWgsl(2, "f1", t, mode)} // [B, S, width]
${inputWgsl(3, "g", t, mode)} // [B, S, width]
@group(0) @binding(4) var<storage, read_write> df1: array<${t}>;  // [B, S, width]
@group(0) @binding(5) var<storage, read_write> dg: array<${t}>;   // [B, S, width]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let gate = gAt(i);
  let open = gate > ${t}(0.0);
  let grad = dyAt(i);
  df1[i] = select(${t}(0.0), grad * gate, open);
  dg[i] = select(${t}(0.0), grad * f1At(i), open);
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
  /** Gradient of f1 `[B, S, width]` f32, overwritten. */
  df1: Binding;
  /** Gradient of g `[B, S, width]` f32, overwritten. */
  dg: Binding;
  /** Channels per row (2d in SamOut). */
  width: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `df1 = dy relu(g)`, `dg = dy f1 [g > 0]`. */
export function createGatedBackward(gpu: Gpu, buffers: GatedBackwardBuffers): GpuStep<BatchDims> {
  const label = "gated.backward";
  const { width, maxRows } = buffers;
  return createVectorizedStep(gpu, {
    label,
    code: gatedBackwardWgsl,
    buffers: [buffers.dy, buffers.f1, buffers.g, buffers.df1, buffers.dg],
    count: (dims) => checkedRows(label, dims, maxRows) * width,
    textureInputs: [0, 1, 2],
    maxCount: maxRows * width,
  });
}
