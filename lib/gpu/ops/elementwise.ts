/**
 * Element-wise kernels of the training graph (residual add, copy, fill,
 * accumulate) and the pieces every one-thread-per-element kernel of the SamOut
 * ops shares: the flat-index WGSL snippet, the dispatch that covers any element
 * count within the per-dimension workgroup limit, and the size check.
 *
 * Binding convention of the SamOut op kernels (this file, embedding.ts,
 * position.ts, running_max.ts, max_state.ts, gated.ts, layer_norm.ts,
 * alpha_mix.ts): binding 0 is the uniform block of sizes, then the storage
 * buffers. Every storage buffer is declared `read_write`, also those a kernel
 * only reads (marked "read" in the comments): wgpu rejects a dispatch that binds
 * one buffer both read-only and read-write, so this lets the graph keep its
 * activations (or parameters and gradients) as slices of one arena buffer.
 *
 * @module
 */
import {
  bindBuffers,
  type BufferSlice,
  cachedPipeline,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
} from "../device.ts";

/** A buffer a kernel binds: a whole buffer or a 256-byte-aligned slice of one. */
export type Binding = GPUBuffer | BufferSlice;

/** Sizes of one batch: `B` sequences of `S` positions (rows = B*S). */
export interface BatchDims {
  B: number;
  S: number;
}

/** Sizes of an element-wise op: the number of f32 elements touched. */
export interface CountDims {
  count: number;
}

/** Invocations per workgroup of the one-thread-per-element kernels. */
export const ELEMENT_WORKGROUP_SIZE = 256;

/** WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`. */
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * WGSL: `elementIndex(wid, nwg, lid)`, the flat invocation index of a dispatch
 * laid out by {@link dispatchElements} (workgroups fill x first, then y).
 * Kernels take `@builtin(workgroup_id) wid`, `@builtin(num_workgroups) nwg`,
 * `@builtin(local_invocation_index) lid` and return when the index is past
 * their element count.
 */
export const ELEMENT_INDEX_WGSL = /* wgsl */ `
fn elementIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * ${ELEMENT_WORKGROUP_SIZE}u + lid;
}
`;

/** The entry-point header of a one-thread-per-element kernel (see {@link ELEMENT_INDEX_WGSL}). */
export const ELEMENT_ENTRY_WGSL = /* wgsl */ `@compute @workgroup_size(${ELEMENT_WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32)`;

/**
 * Records a dispatch of at least `count` invocations in workgroups of
 * {@link ELEMENT_WORKGROUP_SIZE}, as a 2-D grid when one dimension would exceed
 * the workgroup limit (16.7 M invocations); records nothing for `count` 0.
 */
export function dispatchElements(pass: GPUComputePassEncoder, count: number): void {
  if (count <= 0) return;
  const groups = Math.ceil(count / ELEMENT_WORKGROUP_SIZE);
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x));
}

/**
 * Throws a `RangeError` unless `value` is an integer in `[0, max]`: a graph
 * asking a step for more than it was built for is a programming error.
 */
export function checkSize(label: string, name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${label}: ${name} = ${value}, expected an integer in [0, ${max}]`);
  }
}

/** Rows `B*S` of `dims`, checked against `maxRows`. */
export function checkedRows(label: string, dims: BatchDims, maxRows: number): number {
  checkSize(label, "B", dims.B, maxRows);
  checkSize(label, "S", dims.S, maxRows);
  const rows = dims.B * dims.S;
  checkSize(label, "B*S", rows, maxRows);
  return rows;
}

/**
 * A step running one pipeline over `count(dims)` elements with a 16-byte
 * uniform block of u32 sizes (`sizes(dims)`, up to 4 values). The building
 * block of the element-wise ops here and in the other op modules.
 */
export function createElementStep<Dims>(
  gpu: Gpu,
  options: {
    label: string;
    cacheKey: string;
    code: string;
    buffers: Binding[];
    count: (dims: Dims) => number;
    sizes: (dims: Dims) => number[];
  },
): GpuStep<Dims> {
  const pipeline = cachedPipeline(gpu, options.cacheKey, options.code, "main");
  const uniform = createUniformBuffer(gpu, 16, `${options.label}:sizes`);
  const bindGroup = bindBuffers(gpu, pipeline, [uniform, ...options.buffers], options.label);
  const sizes = new Uint32Array(4);
  return {
    encode(pass, dims) {
      const count = options.count(dims);
      if (count === 0) return;
      sizes.fill(0);
      sizes.set(options.sizes(dims));
      gpu.device.queue.writeBuffer(uniform, 0, sizes);
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      dispatchElements(pass, count);
    },
    destroy() {
      uniform.destroy();
    },
  };
}

// ---------------------------------------------------------------------------
// Kernels. sizes.x = n (elements); every array is [n] f32.
// ---------------------------------------------------------------------------

/** `out = a + b` (the residual `h = r + u`). */
const ADD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;    // read, [n]
@group(0) @binding(2) var<storage, read_write> b: array<f32>;    // read, [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = a[i] + b[i];
}
`;

/** `out = src`. */
const COPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;  // read, [n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = src[i];
}
`;

/** `dst += src`. */
const ACCUMULATE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;     // read, [n]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  dst[i] = dst[i] + src[i];
}
`;

/** `out = value`; sizes.y holds the f32 bits of the value. */
const FILL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = bitcast<f32>(sizes.y);
}
`;

function countOf(label: string, maxCount: number): (dims: CountDims) => number {
  return (dims) => {
    checkSize(label, "count", dims.count, maxCount);
    return dims.count;
  };
}

/**
 * `out[i] = a[i] + b[i]` for `i < count` (the residual `h = r + u`). `out` must
 * not overlap `a` or `b`.
 */
export function createAdd(
  gpu: Gpu,
  buffers: { a: Binding; b: Binding; out: Binding; maxCount: number },
): GpuStep<CountDims> {
  const label = "elementwise.add";
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: ADD_WGSL,
    buffers: [buffers.a, buffers.b, buffers.out],
    count: countOf(label, buffers.maxCount),
    sizes: (d) => [d.count],
  });
}

/** `out[i] = src[i]` for `i < count`. */
export function createCopy(
  gpu: Gpu,
  buffers: { src: Binding; out: Binding; maxCount: number },
): GpuStep<CountDims> {
  const label = "elementwise.copy";
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: COPY_WGSL,
    buffers: [buffers.src, buffers.out],
    count: countOf(label, buffers.maxCount),
    sizes: (d) => [d.count],
  });
}

/** `target[i] += src[i]` for `i < count` (summing gradient contributions). */
export function createAccumulate(
  gpu: Gpu,
  buffers: { src: Binding; target: Binding; maxCount: number },
): GpuStep<CountDims> {
  const label = "elementwise.accumulate";
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: ACCUMULATE_WGSL,
    buffers: [buffers.src, buffers.target],
    count: countOf(label, buffers.maxCount),
    sizes: (d) => [d.count],
  });
}

/**
 * `out[i] = value` for `i < count` (default value 0: zeroing gradients before
 * a step). The value is rounded to f32.
 */
export function createFill(
  gpu: Gpu,
  buffers: { out: Binding; maxCount: number; value?: number },
): GpuStep<CountDims> {
  const label = "elementwise.fill";
  const valueBits = new Uint32Array(new Float32Array([buffers.value ?? 0]).buffer)[0];
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: FILL_WGSL,
    buffers: [buffers.out],
    count: countOf(label, buffers.maxCount),
    sizes: (d) => [d.count, valueBits],
  });
}
