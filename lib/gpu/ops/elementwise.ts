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
 * Texture forms: on software adapters a kernel may read some inputs through
 * texture copies instead (texture_inputs.ts; {@link SequenceKernel.textureInputs}),
 * its `textureCode` declaring those bindings as textures. A step with such a
 * form also has `encodeCommands`, which records the copies and then the
 * kernels in a pass of their own; `encode` (a pass only) keeps the storage form.
 *
 * @module
 */
import {
  bindBuffers,
  bufferBinding,
  type BufferSlice,
  cachedPipeline,
  createUniformBuffer,
  encodeOutsidePass,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import {
  createTextureInputs,
  type InputMode,
  inputWgsl,
  type TextureInput,
  textureInputMode,
} from "./texture_inputs.ts";

/** A buffer a kernel binds: a whole buffer or a 256-byte-aligned slice of one. */
export type Binding = GPUBuffer | BufferSlice;

/** Sizes of one batch: `B` sequences of `S` positions (rows = B*S). */
export interface BatchDims {
  /** Sequences in the batch. */
  B: number;
  /** Positions per sequence (the padded length of this batch). */
  S: number;
}

/** Sizes of an element-wise op: the number of f32 elements touched. */
export interface CountDims {
  /** Elements to process, from the start of each buffer. */
  count: number;
}

/** Invocations per workgroup of the one-thread-per-element kernels. */
export const ELEMENT_WORKGROUP_SIZE = 256;

/** WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`. */
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * WGSL: `flatWorkgroup(wid, nwg)`, the flat workgroup index of a dispatch laid
 * out by {@link dispatchFlat} (x first, then y), and `elementIndex(wid, nwg,
 * lid)`, the flat invocation index of one laid out by {@link dispatchElements}.
 * Kernels take `@builtin(workgroup_id) wid`, `@builtin(num_workgroups) nwg`,
 * `@builtin(local_invocation_index) lid` and return when the index is past
 * their element count.
 */
export const ELEMENT_INDEX_WGSL = /* wgsl */ `
fn flatWorkgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}
fn elementIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return flatWorkgroup(wid, nwg) * ${ELEMENT_WORKGROUP_SIZE}u + lid;
}
`;

/** The entry-point header of a one-thread-per-element kernel (see {@link ELEMENT_INDEX_WGSL}). */
export const ELEMENT_ENTRY_WGSL: string = entryWgsl(ELEMENT_WORKGROUP_SIZE);

/** The entry-point header `fn main(wid, nwg, lid)` of a kernel with `size` invocations per workgroup. */
export function entryWgsl(size: number): string {
  return /* wgsl */ `@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32)`;
}

/**
 * WGSL: `workgroupSum(lid, value) -> T`, the sum of `value` over the `size`
 * invocations of a workgroup (a power of two) as a fixed binary tree in
 * workgroup memory, so the order of additions never changes. Must be called
 * in uniform control flow; may be called repeatedly.
 */
export function workgroupSumWgsl(type: "f32" | "vec2<f32>", size: number): string {
  if (!(size > 0 && (size & (size - 1)) === 0)) {
    throw new RangeError(`workgroupSumWgsl: size ${size} is not a power of two`);
  }
  return /* wgsl */ `
var<workgroup> sumScratch: array<${type}, ${size}>;
fn workgroupSum(lid: u32, value: ${type}) -> ${type} {
  sumScratch[lid] = value;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) { sumScratch[lid] = sumScratch[lid] + sumScratch[lid + stride]; }
    workgroupBarrier();
  }
  let total = sumScratch[0];
  workgroupBarrier();
  return total;
}
`;
}

/**
 * WGSL: `fn <name>(a0, …, a{size/4 - 1}: vec4<f32>) -> f32`, the sum that
 * {@link workgroupSumWgsl}`(size)` forms, for a kernel where one invocation
 * does the work of a whole workgroup of `size` (a power of two, at least 4)
 * four channels at a time: "virtual invocation" 4k + m's value is component m
 * of `a{k}`. The tree is the same (strides size/2, …, 1; float addition
 * commutes, so only the pairing matters), hence the same bits.
 */
export function virtualWorkgroupSumWgsl(size: number, name: string): string {
  if (!(size >= 4 && (size & (size - 1)) === 0)) {
    throw new RangeError(`virtualWorkgroupSumWgsl: size ${size} is not a power of two >= 4`);
  }
  let names = Array.from({ length: size / 4 }, (_, k) => `a${k}`);
  const params = names.map((a) => `${a}: vec4<f32>`).join(", ");
  const lines: string[] = [];
  // Strides size/2 … 4 pair whole accumulators (virtual v with v + stride).
  for (let stride = size / 2; stride >= 4; stride /= 2) {
    const half = stride / 4;
    const next = names.slice(0, half).map((_, k) => `s${stride}_${k}`);
    for (let k = 0; k < half; k++) {
      lines.push(`  let ${next[k]} = ${names[k]} + ${names[k + half]};`);
    }
    names = next;
  }
  // Strides 2 and 1 inside the vec4 of virtual invocations 0..3.
  const v = names[0];
  return `fn ${name}(${params}) -> f32 {
${lines.join("\n")}
  return (${v}.x + ${v}.z) + (${v}.y + ${v}.w);
}`;
}

/**
 * Records a dispatch of `groups` workgroups, as a 2-D grid when one dimension
 * would exceed the per-dimension limit (kernels recover the flat index with
 * `flatWorkgroup` and ignore the surplus); records nothing for 0.
 */
export function dispatchFlat(pass: GPUComputePassEncoder, groups: number): void {
  if (groups <= 0) return;
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x));
}

/**
 * Records a dispatch of at least `count` invocations in workgroups of
 * {@link ELEMENT_WORKGROUP_SIZE} (see {@link dispatchFlat}); nothing for 0.
 */
export function dispatchElements(pass: GPUComputePassEncoder, count: number): void {
  dispatchFlat(pass, Math.ceil(count / ELEMENT_WORKGROUP_SIZE));
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

/** One kernel of a {@link createKernelSequence} step. */
export interface SequenceKernel<Dims> {
  /** Pipeline cache key (one per distinct WGSL source). */
  cacheKey: string;
  /** WGSL with entry point `main`, the uniform block at binding 0. */
  code: string;
  /** Storage buffers at bindings 1, 2, … */
  buffers: Binding[];
  /** Workgroups to dispatch for `dims` (laid out by {@link dispatchFlat}). */
  workgroups: (dims: Dims) => number;
  /**
   * Inputs read through texture copies (texture_inputs.ts) by `textureCode`,
   * the same kernel reading those bindings as textures; used by recorders
   * that hold the command encoder, on adapters where it pays (software).
   */
  textureInputs?: TextureInput<Dims>[];
  textureCode?: string;
  /** Workgroups of `textureCode`, when they differ from {@link workgroups}'. */
  textureWorkgroups?: (dims: Dims) => number;
}

/**
 * A step that records `kernels` in order, all reading one 16-byte uniform
 * block of u32 sizes (`sizes(dims)`, up to 4 values, written at encode time).
 * `check(dims)` runs first and may throw. Dispatches inside one compute pass
 * see the writes of the earlier ones.
 *
 * Kernels with {@link SequenceKernel.textureInputs} also get the step's
 * `encodeCommands`: each input is copied into a texture, then the kernel's
 * texture form runs in a pass of its own (on software adapters by default,
 * `textureReads`; never when an input is too large for a texture).
 */
export function createKernelSequence<Dims>(
  gpu: Gpu,
  options: {
    label: string;
    kernels: SequenceKernel<Dims>[];
    sizes: (dims: Dims) => number[];
    check?: (dims: Dims) => void;
    textureReads?: boolean;
  },
): GpuStep<Dims> {
  const uniform = createUniformBuffer(gpu, 16, `${options.label}:sizes`);
  const prepared = options.kernels.map((k) => {
    const pipeline = cachedPipeline(gpu, k.cacheKey, k.code, "main");
    const bindGroup = bindBuffers(gpu, pipeline, [uniform, ...k.buffers], options.label);
    return { pipeline, bindGroup, workgroups: k.workgroups };
  });
  const sizes = new Uint32Array(4);
  const writeSizes = (dims: Dims): number[] | undefined => {
    options.check?.(dims);
    const groups = prepared.map((k) => k.workgroups(dims));
    if (groups.every((g) => g === 0)) return undefined;
    sizes.fill(0);
    sizes.set(options.sizes(dims));
    gpu.device.queue.writeBuffer(uniform, 0, sizes);
    return groups;
  };
  const step: GpuStep<Dims> = {
    encode(pass, dims) {
      const groups = writeSizes(dims);
      if (!groups) return;
      prepared.forEach((k, i) => {
        if (groups[i] === 0) return;
        pass.setPipeline(k.pipeline);
        pass.setBindGroup(0, k.bindGroup);
        dispatchFlat(pass, groups[i]);
      });
    },
    destroy() {
      uniform.destroy();
    },
  };
  if (!(options.textureReads ?? isSoftwareAdapter(gpu))) return step;
  const forms = options.kernels.map((k) => {
    if (!k.textureInputs?.length || !k.textureCode) return undefined;
    const pipeline = cachedPipeline(gpu, `${k.cacheKey}:textures`, k.textureCode, "main");
    const inputs = k.textureInputs;
    const textures = createTextureInputs(
      gpu,
      pipeline,
      `${options.label}:textures`,
      inputs.map((t) => ({
        source: k.buffers[t.index],
        binding: t.index + 1,
        type: t.type,
        maxTexels: t.maxCount,
      })),
      [
        { binding: 0, resource: { buffer: uniform } },
        ...k.buffers.flatMap((b, index) =>
          inputs.some((t) => t.index === index) ? [] : [{
            binding: index + 1,
            resource: bufferBinding(b),
          }]
        ),
      ],
    );
    return textures && { pipeline, inputs, textures, workgroups: k.textureWorkgroups };
  });
  // Every kernel that has a texture form must be able to use it.
  if (forms.every((f) => f === undefined)) return step;
  if (options.kernels.some((k, i) => k.textureInputs?.length && k.textureCode && !forms[i])) {
    return step;
  }
  step.encodeCommands = (enc, dims) => {
    const groups = writeSizes(dims);
    if (!groups) return;
    prepared.forEach((k, i) => {
      if (groups[i] === 0) return;
      const form = forms[i];
      form?.textures.copy(enc, form.inputs.map((t) => t.count(dims)));
      const pass = enc.beginComputePass({ label: options.label });
      pass.setPipeline(form ? form.pipeline : k.pipeline);
      pass.setBindGroup(0, form ? form.textures.bindGroup() : k.bindGroup);
      dispatchFlat(pass, form?.workgroups?.(dims) ?? groups[i]);
      pass.end();
    });
  };
  return step;
}

/**
 * A step running one one-thread-per-element kernel over `count(dims)`
 * invocations (`count` may throw for bad dims) with the sizes block of
 * {@link createKernelSequence}.
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
    /** As in {@link SequenceKernel}. */
    textureInputs?: TextureInput<Dims>[];
    textureCode?: string;
    textureReads?: boolean;
  },
): GpuStep<Dims> {
  return createKernelSequence(gpu, {
    label: options.label,
    kernels: [{
      cacheKey: options.cacheKey,
      code: options.code,
      buffers: options.buffers,
      workgroups: (dims) => Math.ceil(options.count(dims) / ELEMENT_WORKGROUP_SIZE),
      textureInputs: options.textureInputs,
      textureCode: options.textureCode,
    }],
    sizes: options.sizes,
    textureReads: options.textureReads,
  });
}

/** The element type of a {@link createVectorizedStep} kernel. */
export type ElementType = "f32" | "vec4<f32>";

/**
 * The element type for rows of `d` channels, and the elements per row:
 * vec4s (four channels per invocation) when d % 4 == 0, else single floats.
 */
export function channelGroups(d: number): [ElementType, number] {
  return d % 4 === 0 ? ["vec4<f32>", d / 4] : ["f32", d];
}

/**
 * A one-thread-per-element step over f32 arrays whose WGSL is written for an
 * element type `T` (`code(T)`): when the element count is a multiple of 4
 * the `vec4<f32>` kernel runs over count / 4 elements (the same operations
 * on each component, so the same bits; on llvmpipe a vec4 load or store costs
 * little more than a scalar one: an add of two arrays ran 2.6x faster),
 * otherwise the `f32` one. `sizes.x` is the count in elements of `T`; `extra`
 * gives sizes.y, .z, .w. Bindings must start 16-byte aligned (slices are
 * 256-byte aligned).
 */
export function createVectorizedStep<Dims>(
  gpu: Gpu,
  options: {
    label: string;
    code: (t: ElementType, mode: InputMode) => string;
    buffers: Binding[];
    count: (dims: Dims) => number;
    extra?: (dims: Dims) => number[];
    /**
     * Indices into `buffers` of the inputs `code` reads through
     * `inputWgsl` (texture_inputs.ts): the vec4 kernel then has a texture
     * form; `maxCount` bounds `count` (sizes the textures).
     */
    textureInputs?: number[];
    maxCount?: number;
    textureReads?: boolean;
  },
): GpuStep<Dims> {
  const step = (t: ElementType, per: number) => {
    const textured = t === "vec4<f32>" && options.textureInputs !== undefined &&
      options.maxCount !== undefined;
    return createElementStep<Dims>(gpu, {
      label: options.label,
      cacheKey: `${options.label}:${t}`,
      code: options.code(t, "storage"),
      buffers: options.buffers,
      count: (dims) => options.count(dims) / per,
      sizes: (dims) => [options.count(dims) / per, ...(options.extra?.(dims) ?? [])],
      ...(textured && {
        textureCode: options.code(t, textureInputMode(gpu)),
        textureInputs: options.textureInputs!.map((index) => ({
          index,
          type: "vec4<f32>" as const,
          count: (dims: Dims) => options.count(dims) / 4,
          maxCount: Math.ceil(options.maxCount! / 4),
        })),
        textureReads: options.textureReads,
      }),
    });
  };
  const scalar = step("f32", 1);
  const vec4 = step("vec4<f32>", 4);
  const pick = (dims: Dims) => options.count(dims) % 4 === 0 ? vec4 : scalar;
  const result: GpuStep<Dims> = {
    encode(pass, dims) {
      pick(dims).encode(pass, dims);
    },
    destroy() {
      scalar.destroy();
      vec4.destroy();
    },
  };
  if (vec4.encodeCommands) {
    result.encodeCommands = (enc, dims) => encodeOutsidePass(pick(dims), enc, dims, options.label);
  }
  return result;
}

// ---------------------------------------------------------------------------
// Kernels. sizes.x = n (elements); every array is [n] f32.
// ---------------------------------------------------------------------------

/** `out = a + b` (the residual `h = r + u`). */
const addWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "a", t, mode)} // [n]
${inputWgsl(2, "b", t, mode)} // [n]
@group(0) @binding(3) var<storage, read_write> out: array<${t}>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = aAt(i) + bAt(i);
}
`;

/** `out = src`. */
const copyWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> src: array<${t}>;  // read, [n]
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = src[i];
}
`;

/** `dst += src`. */
const accumulateWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "src", t, mode)} // [n]
@group(0) @binding(2) var<storage, read_write> dst: array<${t}>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  dst[i] = dst[i] + srcAt(i);
}
`;

/** `out = value`; sizes.y holds the f32 bits of the value. */
const fillWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<${t}>;  // [n]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  out[i] = ${t}(bitcast<f32>(sizes.y));
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
  return createVectorizedStep(gpu, {
    label,
    code: addWgsl,
    buffers: [buffers.a, buffers.b, buffers.out],
    count: countOf(label, buffers.maxCount),
    textureInputs: [0, 1],
    maxCount: buffers.maxCount,
  });
}

/** `out[i] = src[i]` for `i < count`. */
export function createCopy(
  gpu: Gpu,
  buffers: { src: Binding; out: Binding; maxCount: number },
): GpuStep<CountDims> {
  const label = "elementwise.copy";
  return createVectorizedStep(gpu, {
    label,
    code: copyWgsl,
    buffers: [buffers.src, buffers.out],
    count: countOf(label, buffers.maxCount),
  });
}

/** `target[i] += src[i]` for `i < count` (summing gradient contributions). */
export function createAccumulate(
  gpu: Gpu,
  buffers: { src: Binding; target: Binding; maxCount: number },
): GpuStep<CountDims> {
  const label = "elementwise.accumulate";
  return createVectorizedStep(gpu, {
    label,
    code: accumulateWgsl,
    buffers: [buffers.src, buffers.target],
    count: countOf(label, buffers.maxCount),
    textureInputs: [0],
    maxCount: buffers.maxCount,
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
  return createVectorizedStep(gpu, {
    label,
    code: fillWgsl,
    buffers: [buffers.out],
    count: countOf(label, buffers.maxCount),
    extra: () => [valueBits],
  });
}
