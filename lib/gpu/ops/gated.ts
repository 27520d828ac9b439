/**
 * The gate of the feed-forward block, `y = f1 * relu(g)` with
 * `f1 = Ffn1(s)` and `g = Gate(s)` (both `[B, S, 2d]`), forward and backward.
 * relu'(0) is taken as 0 (PyTorch).
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

/** Forward: `y = f1 * relu(g)`; sizes.x = n = B*S*width (in elements of T). */
const gatedForwardWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> f1: array<${t}>;  // read, [B, S, width]
@group(0) @binding(2) var<storage, read_write> g: array<${t}>;   // read, [B, S, width]
@group(0) @binding(3) var<storage, read_write> y: array<${t}>;   // [B, S, width]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let gate = g[i];
  y[i] = select(${t}(0.0), f1[i] * gate, gate > ${t}(0.0));
}
`;

/** Backward: `df1 = dy relu(g)`, `dg = dy f1 [g > 0]`; sizes.x = n. */
const gatedBackwardWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> dy: array<${t}>;   // read, [B, S, width]
@group(0) @binding(2) var<storage, read_write> f1: array<${t}>;   // read, [B, S, width]
@group(0) @binding(3) var<storage, read_write> g: array<${t}>;    // read, [B, S, width]
@group(0) @binding(4) var<storage, read_write> df1: array<${t}>;  // [B, S, width]
@group(0) @binding(5) var<storage, read_write> dg: array<${t}>;   // [B, S, width]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let gate = g[i];
  let open = gate > ${t}(0.0);
  let grad = dy[i];
  df1[i] = select(${t}(0.0), grad * gate, open);
  dg[i] = select(${t}(0.0), grad * f1[i], open);
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
  });
}
