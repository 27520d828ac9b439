/**
 * The running maximum along time, `m[b, t, j] = max over tau <= t of
 * z[b, tau, j]`, with its argmax (ties go to the LATEST tau, as
 * `torch.cummax`), and its gradient `dz[b, tau, j] = sum of dm[b, t, j] over
 * the t whose argmax is tau`.
 *
 * One invocation per column (b, j) walks t in order, so no reduction needs
 * atomics and every sum has a fixed order. The scans are WGSL templates
 * ({@link runningMaxScanWgsl}, {@link runningMaxGradientScanWgsl}) that
 * max_state.ts reuses inside its fused MaxState kernels; the steps here run
 * them on their own (z in, m out).
 *
 * @module
 */
import type { Gpu, GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  createElementStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
} from "./elementwise.ts";

/**
 * WGSL entry point of a per-column scan: one invocation per (b, j) of the
 * `[B, S, d]` activations; sizes = (B, S, d, ...). Declares `B`, `S`, `d`, `b`,
 * `j` and runs `body`.
 */
export function columnScanEntryWgsl(body: string): string {
  return /* wgsl */ `${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let column = elementIndex(wid, nwg, lid);
  let B = sizes.x;
  let S = sizes.y;
  let d = sizes.z;
  if (column >= B * d) { return; }
  let b = column / d;
  let j = column % d;
${body}
}`;
}

/**
 * WGSL statements of the forward scan of column (b, j), t = 0 .. S-1: `load`
 * (statements with `i`, the flat index of (b, t, j), in scope) must define
 * `let z`; after the update, `emit` runs with `i`, `t`, `m` (the running max)
 * and `arg` (its u32 argmax) in scope. `z >= m` makes ties move the argmax to
 * the later position.
 */
export function runningMaxScanWgsl(load: string, emit: string, vec4 = false): string {
  if (vec4) {
    // Four neighbouring columns: the same comparisons per component.
    return /* wgsl */ `
  var m = vec4<f32>(0.0);
  var arg = vec4<u32>(0u);
  for (var t = 0u; t < S; t++) {
    let i = (b * S + t) * d + j;
    ${load}
    let take = vec4<bool>(t == 0u) | (z >= m);
    m = select(m, z, take);
    arg = select(arg, vec4<u32>(t), take);
    ${emit}
  }`;
  }
  return /* wgsl */ `
  var m = 0.0;
  var arg = 0u;
  for (var t = 0u; t < S; t++) {
    let i = (b * S + t) * d + j;
    ${load}
    if (t == 0u || z >= m) {
      m = z;
      arg = t;
    }
    ${emit}
  }`;
}

/**
 * WGSL statements of the gradient scan of column (b, j), t = S-1 .. 0: `load`
 * (with `i` in scope) must define `let dm`; the position of t's running max
 * is read as `argmaxAt` (an expression of `i`); `emit` runs with `i`, `t` and
 * `dz` (the summed gradient of the z at t) in scope.
 */
export function runningMaxGradientScanWgsl(
  load: string,
  emit: string,
  vec4 = false,
  argmaxAt = "argmax[i]",
): string {
  if (vec4) {
    // Four neighbouring columns: the same run bookkeeping per component.
    return /* wgsl */ `
  var run = vec4<u32>(0xffffffffu);
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < S; k++) {
    let t = S - 1u - k;
    let i = (b * S + t) * d + j;
    ${load}
    let tau = ${argmaxAt};
    let reset = tau != run;
    run = select(run, tau, reset);
    acc = select(acc, vec4<f32>(0.0), reset);
    acc += dm;
    let dz = select(vec4<f32>(0.0), acc, tau == vec4<u32>(t));
    ${emit}
  }`;
  }
  return /* wgsl */ `
  var run = 0xffffffffu;
  var acc = 0.0;
  for (var k = 0u; k < S; k++) {
    let t = S - 1u - k;
    let i = (b * S + t) * d + j;
    ${load}
    let tau = ${argmaxAt};
    if (tau != run) {
      run = tau;
      acc = 0.0;
    }
    acc += dm;
    var dz = 0.0;
    if (tau == t) { dz = acc; }
    ${emit}
  }`;
}

/** Forward: `z [B, S, d]` → `m [B, S, d]`, `argmax [B, S, d]` u32. */
const RUNNING_MAX_FORWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> zIn: array<f32>;     // read, [B, S, d]
@group(0) @binding(2) var<storage, read_write> mOut: array<f32>;    // [B, S, d]
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;  // [B, S, d]
${
  columnScanEntryWgsl(
    runningMaxScanWgsl(
      "let z = zIn[i];",
      "mOut[i] = m; argmax[i] = arg;",
    ),
  )
}
`;

/** Backward: `dm [B, S, d]`, `argmax` → `dz [B, S, d]` (overwritten). */
const RUNNING_MAX_BACKWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> dmIn: array<f32>;    // read, [B, S, d]
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;  // read, [B, S, d]
@group(0) @binding(3) var<storage, read_write> dzOut: array<f32>;   // [B, S, d]
${
  columnScanEntryWgsl(
    runningMaxGradientScanWgsl(
      "let dm = dmIn[i];",
      "dzOut[i] = dz;",
    ),
  )
}
`;

/** Buffers and sizes of {@link createRunningMaxForward}. */
export interface RunningMaxForwardBuffers {
  /** `[B, S, d]` f32. */
  z: Binding;
  /** Running maximum `[B, S, d]` f32. */
  m: Binding;
  /** Position of the maximum `[B, S, d]` u32 (latest on ties). */
  argmax: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `m[b, t, j] = max_{tau <= t} z[b, tau, j]` and its argmax. */
export function createRunningMaxForward(
  gpu: Gpu,
  buffers: RunningMaxForwardBuffers,
): GpuStep<BatchDims> {
  const label = "running_max.forward";
  const { d, maxRows } = buffers;
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: RUNNING_MAX_FORWARD_WGSL,
    buffers: [buffers.z, buffers.m, buffers.argmax],
    count: (dims) => checkedRows(label, dims, maxRows) === 0 ? 0 : dims.B * d,
    sizes: (dims) => [dims.B, dims.S, d],
  });
}

/** Buffers and sizes of {@link createRunningMaxBackward}. */
export interface RunningMaxBackwardBuffers {
  /** Gradient of m `[B, S, d]` f32. */
  dm: Binding;
  /** The forward's argmax `[B, S, d]` u32. */
  argmax: Binding;
  /** Gradient of z `[B, S, d]` f32, overwritten. */
  dz: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `dz[b, tau, j] = sum of dm[b, t, j] over t with argmax[b, t, j] = tau`. */
export function createRunningMaxBackward(
  gpu: Gpu,
  buffers: RunningMaxBackwardBuffers,
): GpuStep<BatchDims> {
  const label = "running_max.backward";
  const { d, maxRows } = buffers;
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: RUNNING_MAX_BACKWARD_WGSL,
    buffers: [buffers.dm, buffers.argmax, buffers.dz],
    count: (dims) => checkedRows(label, dims, maxRows) === 0 ? 0 : dims.B * d,
    sizes: (dims) => [dims.B, dims.S, d],
  });
}
