/**
 * Global L2 norm of the flat gradient buffer and the clipping factor that Adam
 * applies (PyTorch's `clip_grad_norm_`).
 *
 * Two passes, both in a fixed order: (1) every chunk of {@link NORM_CHUNK}
 * floats is summed (Σ g²) by one workgroup into `partials[chunk]`; (2) one
 * workgroup sums the partials, takes the square root and writes the result
 * buffer `[norm, clipScale, 0, 0]` (f32), with
 * `clipScale = min(1, clipNorm / (norm + 1e-6))` (1 when clipping is off), and
 * adds the norm into the stats accumulator's `gradNorm` field of the step's
 * slot (see cross_entropy.ts).
 *
 * Gradients of large models exceed `maxStorageBufferBindingSize` (30M floats =
 * 120 MB for the 512/8/8 configuration), so the buffer is bound as several
 * segments, one dispatch each; {@link bindingSegments} splits it.
 *
 * @module
 */
import {
  bindBuffers,
  type BufferSlice,
  cachedPipeline,
  createStorageBuffer,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import { STATS, STATS_FIELDS } from "./cross_entropy.ts";
import { virtualWorkgroupSumWgsl } from "./elementwise.ts";
import {
  createTextureInputs,
  type InputMode,
  inputWgsl,
  textureInputMode,
} from "./texture_inputs.ts";

/** Floats per partial sum of pass 1 (16 KiB, so segment offsets stay 256-byte aligned). */
export const NORM_CHUNK = 4096;

/** Offsets (in f32) inside the grad-norm result buffer. */
export const NORM_RESULT = { norm: 0, clipScale: 1 } as const;

/** A run of a flat buffer that fits one binding. */
export interface Segment {
  /** First float of the segment. */
  start: number;
  /** Floats in the segment. */
  count: number;
}

/**
 * Splits `count` floats into segments of whole `granule`-float blocks that each
 * fit `maxBindingBytes` (and at most `maxGranules` blocks, so one dispatch
 * stays under the 65535-workgroup limit).
 */
export function bindingSegments(
  count: number,
  maxBindingBytes: number,
  granule: number,
  maxGranules = 32768,
): Segment[] {
  const perSegment = Math.min(Math.floor(maxBindingBytes / (granule * 4)), maxGranules) * granule;
  if (perSegment <= 0) {
    throw new Error(`maxBindingBytes ${maxBindingBytes} is below one block of ${granule} floats`);
  }
  const segments: Segment[] = [];
  for (let start = 0; start < count; start += perSegment) {
    segments.push({ start, count: Math.min(perSegment, count - start) });
  }
  return segments;
}

/** The part of `base` (a buffer or slice) holding floats `[start, start + count)` of it. */
export function subSlice(base: GPUBuffer | BufferSlice, segment: Segment): BufferSlice {
  const buffer = "buffer" in base ? base.buffer : base;
  const offset = "buffer" in base ? base.offset ?? 0 : 0;
  return { buffer, offset: offset + segment.start * 4, size: segment.count * 4 };
}

const WG = 256;

/**
 * Pass 1: partials[partialBase + chunk] = Σ g² over the chunk, in a fixed
 * order, one workgroup per chunk (software adapters record {@link chunksWgsl}
 * instead, the same sums).
 */
const PARTIALS_WGSL = /* wgsl */ `
struct Uniforms { count: u32, partialBase: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> grad: array<f32>;  // [count] one segment
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;  // [chunks of all segments]

var<workgroup> red: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  let start = wid.x * ${NORM_CHUNK}u;
  let end = min(start + ${NORM_CHUNK}u, u.count);
  var acc = 0.0;
  for (var i = start + t; i < end; i += ${WG}u) {
    let g = grad[i];
    acc = fma(g, g, acc);
  }
  red[t] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { partials[u.partialBase + wid.x] = red[0]; }
}
`;

/** Invocations per workgroup of {@link chunksWgsl}. */
const CHUNKS_WG = 8;

/**
 * Pass 1 on software adapters, from a texture copy of the gradient (whole
 * texels): one invocation per chunk does the work of {@link PARTIALS_WGSL}'s
 * workgroup, four of its invocations at a time (virtual invocation 4k + m is
 * component m of `a{k}`; elements past the end add `fma(0, 0, acc) = acc`),
 * then the same tree ({@link virtualWorkgroupSumWgsl}): the same bits, with no
 * barriers (llvmpipe switches all of a workgroup's SIMD groups at each) and
 * four floats a texel gather instead of one.
 */
const chunksWgsl = (mode: InputMode) => {
  const ks = Array.from({ length: WG / 4 }, (_, k) => k);
  return /* wgsl */ `
struct Uniforms { count: u32, partialBase: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
${inputWgsl(1, "grad", "vec4<f32>", mode)} // [count / 4] one segment
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;  // [chunks of all segments]
${virtualWorkgroupSumWgsl(WG, "tree")}

@compute @workgroup_size(${CHUNKS_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let chunk = gid.x;
  if (chunk >= (u.count + ${NORM_CHUNK - 1}u) / ${NORM_CHUNK}u) { return; }
  let start = chunk * ${NORM_CHUNK}u;
  let end = vec4<u32>(min(start + ${NORM_CHUNK}u, u.count));
  ${ks.map((k) => `var a${k} = vec4<f32>(0.0);`).join(" ")}
  for (var i = start; i < start + ${NORM_CHUNK}u; i += ${WG}u) {
${
    ks.map((k) =>
      `    let g${k} = select(vec4<f32>(0.0), gradAt(i / 4u + ${k}u), ` +
      `vec4<u32>(i + ${
        4 * k
      }u) + vec4<u32>(0u, 1u, 2u, 3u) < end); a${k} = fma(g${k}, g${k}, a${k});`
    ).join("\n")
  }
  }
  partials[u.partialBase + chunk] = tree(${ks.map((k) => `a${k}`).join(", ")});
}
`;
};

/** Pass 2: one workgroup sums the partials and writes [norm, clipScale]. */
const FINISH_WGSL = /* wgsl */ `
struct Uniforms {
  partials: u32,  // number of partial sums
  slot: u32,      // stats slot
  clip: u32,      // 1: clip to clipNorm
  clipNorm: f32,
}
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;  // [4]: norm, clipScale
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;   // [slots, ${STATS_FIELDS}]

var<workgroup> red: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var acc = 0.0;
  for (var i = t; i < u.partials; i += ${WG}u) { acc += partials[i]; }
  red[t] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let norm = sqrt(red[0]);
    result[${NORM_RESULT.norm}u] = norm;
    result[${NORM_RESULT.clipScale}u] = select(1.0, min(1.0, u.clipNorm / (norm + 1e-6)), u.clip == 1u);
    stats[u.slot * ${STATS_FIELDS}u + ${STATS.gradNorm}u] += norm;
  }
}
`;

/** Options of the gradient-norm step. */
export interface GradNormOptions {
  /** Flat gradient buffer (or slice), `count` f32. */
  grad: GPUBuffer | BufferSlice;
  /** Floats in `grad`. */
  count: number;
  /** Stats accumulator whose `gradNorm` field of the encoded slot receives the norm. */
  stats: GPUBuffer | BufferSlice;
  /** Clip the global norm to this value; null: no clipping (clipScale = 1). */
  clipNorm: number | null;
  /** Largest binding in bytes; default the device's `maxStorageBufferBindingSize`. */
  maxBindingBytes?: number;
  /**
   * Read the gradient through a texture copy when recorded with the command
   * encoder (texture_inputs.ts); default: on software adapters.
   */
  textureReads?: boolean;
}

/** The gradient-norm step and its result buffer. */
export interface GradNormStep extends GpuStep<{ slot: number }> {
  /** `[norm, clipScale, 0, 0]` f32, read by Adam ({@link NORM_RESULT}). */
  result: GPUBuffer;
}

/**
 * Computes the global L2 norm of `grad` into `result` and the stats slot, and
 * the clipping factor for Adam. Encode once per step, after the backward pass.
 */
export function createGradNorm(gpu: Gpu, options: GradNormOptions): GradNormStep {
  const segments = bindingSegments(
    options.count,
    options.maxBindingBytes ?? gpu.limits.maxStorageBufferBindingSize,
    NORM_CHUNK,
  );
  const chunks = Math.ceil(options.count / NORM_CHUNK);
  const partials = createStorageBuffer(gpu, chunks * 4, "gradNorm:partials");
  const result = createStorageBuffer(gpu, 16, "gradNorm:result");
  const partialsPipeline = cachedPipeline(
    gpu,
    "gradNorm:partials",
    PARTIALS_WGSL,
    "main",
  );
  const finishPipeline = cachedPipeline(gpu, "gradNorm:finish", FINISH_WGSL, "main");
  const owned: GPUBuffer[] = [partials, result];
  const passes = segments.map((segment) => {
    const uniform = createUniformBuffer(gpu, 16, "gradNorm:segment");
    owned.push(uniform);
    gpu.device.queue.writeBuffer(
      uniform,
      0,
      new Uint32Array([segment.count, segment.start / NORM_CHUNK, 0, 0]),
    );
    const group = bindBuffers(
      gpu,
      partialsPipeline,
      [uniform, subSlice(options.grad, segment), partials],
      "gradNorm:partials",
    );
    return { group, workgroups: Math.ceil(segment.count / NORM_CHUNK) };
  });
  const finishUniform = createUniformBuffer(gpu, 16, "gradNorm:finish");
  owned.push(finishUniform);
  const finishGroup = bindBuffers(
    gpu,
    finishPipeline,
    [finishUniform, partials, result, options.stats],
    "gradNorm:finish",
  );
  const data = new ArrayBuffer(16);
  const words = new Uint32Array(data);
  const floats = new Float32Array(data);
  words[0] = chunks;
  words[2] = options.clipNorm === null ? 0 : 1;
  floats[3] = options.clipNorm ?? 0;
  const finish = (pass: GPUComputePassEncoder) => {
    pass.setPipeline(finishPipeline);
    pass.setBindGroup(0, finishGroup);
    pass.dispatchWorkgroups(1);
  };
  const step: GradNormStep = {
    result,
    encode(pass, { slot }) {
      words[1] = slot;
      gpu.device.queue.writeBuffer(finishUniform, 0, data);
      pass.setPipeline(partialsPipeline);
      for (const p of passes) {
        pass.setBindGroup(0, p.group);
        pass.dispatchWorkgroups(p.workgroups);
      }
      finish(pass);
    },
    destroy() {
      for (const b of owned) b.destroy();
    },
  };
  // Texture form: one segment of whole texels, read from a texture copy.
  const texels = options.count / 4;
  if (
    !(options.textureReads ?? isSoftwareAdapter(gpu)) || segments.length !== 1 ||
    options.count % 4 !== 0
  ) {
    return step;
  }
  const texturePipeline = cachedPipeline(
    gpu,
    "gradNorm:chunks:texture",
    chunksWgsl(textureInputMode(gpu)),
    "main",
  );
  const segmentUniform = createUniformBuffer(gpu, 16, "gradNorm:segment:texture");
  owned.push(segmentUniform);
  gpu.device.queue.writeBuffer(segmentUniform, 0, new Uint32Array([options.count, 0, 0, 0]));
  const textures = createTextureInputs(
    gpu,
    texturePipeline,
    "gradNorm:partials",
    [{ source: options.grad, binding: 1, type: "vec4<f32>", maxTexels: texels }],
    [
      { binding: 0, resource: { buffer: segmentUniform } },
      { binding: 2, resource: { buffer: partials } },
    ],
  );
  if (!textures) return step;
  step.encodeCommands = (enc, { slot }) => {
    words[1] = slot;
    gpu.device.queue.writeBuffer(finishUniform, 0, data);
    textures.copy(enc, [texels]);
    const pass = enc.beginComputePass({ label: "gradNorm" });
    pass.setPipeline(texturePipeline);
    pass.setBindGroup(0, textures.bindGroup());
    pass.dispatchWorkgroups(Math.ceil(passes[0].workgroups / CHUNKS_WG));
    finish(pass);
    pass.end();
  };
  return step;
}
