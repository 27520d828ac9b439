/**
 * Adam and AdamW over the flat parameter, gradient and moment buffers, with
 * PyTorch's semantics (`torch.optim.Adam` / `AdamW`, non-amsgrad), after
 * scaling the gradient by the clipping factor of grad_norm.ts:
 *
 * ```
 * g = grad * clipScale
 * adam:  g += weightDecay * p          adamw:  p *= 1 - lr * weightDecay
 * m = beta1 * m + (1 - beta1) * g
 * v = beta2 * v + (1 - beta2) * g * g
 * p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * ```
 *
 * The bias corrections, `lr / (1 - beta1^t)` and `1 - beta` are computed on
 * the host in f64 and passed as f32 (`1 - 0.999f` in f32 would be off by 5e-5
 * relative). One invocation per element, so no ordering issue.
 *
 * @module
 */
import {
  bindBuffers,
  bufferBinding,
  type BufferSlice,
  cachedPipeline,
  createStorageBufferFrom,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import { bindingSegments, NORM_RESULT, subSlice } from "./grad_norm.ts";
import {
  createTextureInputs,
  type InputMode,
  inputWgsl,
  textureInputMode,
} from "./texture_inputs.ts";

/** Per-step values of an Adam update. */
export interface AdamDims {
  /** 1-based step number t (bias corrections use beta^t). */
  step: number;
  /** Learning rate of this step (after any schedule). */
  lr: number;
}

/** Buffers and fixed hyper-parameters of the optimizer. */
export interface AdamOptions {
  /** Flat parameters `[count]` f32, updated in place. */
  params: GPUBuffer | BufferSlice;
  /** Flat gradients `[count]` f32, same layout. */
  grads: GPUBuffer | BufferSlice;
  /** First moments `[count]` f32 (zero at step 1). */
  m: GPUBuffer | BufferSlice;
  /** Second moments `[count]` f32 (zero at step 1). */
  v: GPUBuffer | BufferSlice;
  /** Floats in each buffer. */
  count: number;
  /**
   * The grad-norm result buffer (`[norm, clipScale, …]`): the gradient is
   * multiplied by its clipScale. Omitted: no scaling.
   */
  clip?: GPUBuffer;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true: AdamW (decoupled decay); false: Adam (L2 term added to the gradient). */
  decoupled: boolean;
  /** Largest binding in bytes; default the device's `maxStorageBufferBindingSize`. */
  maxBindingBytes?: number;
  /**
   * Read the inputs through texture copies when recorded with the command
   * encoder (texture_inputs.ts); default: on software adapters.
   */
  textureReads?: boolean;
}

const WG = 256;
/** Workgroups along x per dispatch row; dispatch (min(n, ROW), ceil(n / ROW)). */
const ROW = 32768;

/**
 * The update of one element (`f32`) or four neighbouring ones (`vec4<f32>`:
 * the same operations on each component, so the same bits; on llvmpipe a
 * vec4 load or store costs little more than a scalar one). The vec4 kernel
 * covers the first `count / 4 * 4` elements of a segment, the scalar one the
 * rest from `first`.
 */
const adamWgsl = (t: "f32" | "vec4<f32>", mode: InputMode = "storage") => /* wgsl */ `
struct Uniforms {
  count: u32,        // elements (vec4: groups of 4) in this segment
  decoupled: u32,    // 1: AdamW
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,  // L2 coefficient (adam); unused by adamw, which uses decayFactor
  decayFactor: f32,  // 1 - lr * weightDecay (adamw)
  stepSize: f32,     // lr / (1 - beta1^t)
  bc2Sqrt: f32,      // sqrt(1 - beta2^t)
  oneMinusBeta1: f32,
  oneMinusBeta2: f32,
  first: u32,        // first element (scalar tail)
}
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read_write> param: array<${t}>;  // [count]
@group(0) @binding(3) var<storage, read_write> m: array<${t}>;      // [count]
@group(0) @binding(4) var<storage, read_write> v: array<${t}>;      // [count]
@group(0) @binding(5) var<storage, read> clip: array<f32>;          // [norm, clipScale, ...]
${
  mode !== "storage" && t === "vec4<f32>"
    // Texture form: param, m and v are read from copies and written to their buffers.
    ? [
      inputWgsl(6, "paramIn", t, mode),
      inputWgsl(2, "grad", t, mode),
      inputWgsl(7, "mIn", t, mode),
      inputWgsl(8, "vIn", t, mode),
    ].join("\n")
    : `@group(0) @binding(2) var<storage, read> grad: array<${t}>;         // [count]
fn gradAt(i: u32) -> ${t} { return grad[i]; }
fn paramInAt(i: u32) -> ${t} { return param[i]; }
fn mInAt(i: u32) -> ${t} { return m[i]; }
fn vInAt(i: u32) -> ${t} { return v[i]; }`
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = u.first + gid.x + gid.y * ${ROW * WG}u;
  if (i >= u.count) { return; }
  var g = gradAt(i) * clip[${NORM_RESULT.clipScale}u];
  var p = paramInAt(i);
  if (u.decoupled == 1u) {
    p *= u.decayFactor;
  } else {
    g += u.weightDecay * p;
  }
  let mi = u.beta1 * mInAt(i) + u.oneMinusBeta1 * g;
  let vi = u.beta2 * vInAt(i) + u.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = p - u.stepSize * mi / (sqrt(vi) / u.bc2Sqrt + u.eps);
}
`;

/**
 * One Adam/AdamW update of every element, in as many dispatches as the
 * buffers need bindings. Encode after the grad-norm step of the same step.
 */
export function createAdam(gpu: Gpu, options: AdamOptions): GpuStep<AdamDims> {
  const vec4Pipeline = cachedPipeline(gpu, "adam:v4", adamWgsl("vec4<f32>"), "main");
  const scalarPipeline = cachedPipeline(gpu, "adam:s", adamWgsl("f32"), "main");
  const segments = bindingSegments(
    options.count,
    options.maxBindingBytes ?? gpu.limits.maxStorageBufferBindingSize,
    // 64 floats: segment offsets stay 256-byte aligned.
    64,
    Number.MAX_SAFE_INTEGER,
  );
  const owned: GPUBuffer[] = [];
  let clip = options.clip;
  if (!clip) {
    clip = createStorageBufferFrom(gpu, new Float32Array([0, 1, 0, 0]), "adam:noClip");
    owned.push(clip);
  }
  // Per segment: the vec4 dispatch over its first count / 4 * 4 elements, and
  // a scalar one for the last count % 4.
  const passes = segments.flatMap((segment) => {
    const groups = Math.floor(segment.count / 4);
    const parts: { vec4: boolean; count: number; first: number }[] = [];
    if (groups > 0) parts.push({ vec4: true, count: groups, first: 0 });
    if (segment.count % 4 !== 0) {
      parts.push({ vec4: false, count: segment.count, first: groups * 4 });
    }
    return parts.map((part) => {
      const uniform = createUniformBuffer(gpu, 48, "adam:uniforms");
      owned.push(uniform);
      const pipeline = part.vec4 ? vec4Pipeline : scalarPipeline;
      // A vec4 binding covers whole groups of 4.
      const bound = part.vec4 ? { ...segment, count: groups * 4 } : segment;
      const group = bindBuffers(gpu, pipeline, [
        uniform,
        subSlice(options.params, bound),
        subSlice(options.grads, bound),
        subSlice(options.m, bound),
        subSlice(options.v, bound),
        clip,
      ], "adam");
      const workgroups = Math.ceil((part.count - part.first) / WG);
      return {
        uniform,
        group,
        pipeline,
        part,
        x: Math.min(workgroups, ROW),
        y: Math.ceil(workgroups / ROW),
      };
    });
  });
  const data = new ArrayBuffer(48);
  const words = new Uint32Array(data);
  const floats = new Float32Array(data);
  const writeUniforms = (step: number, lr: number) => {
    if (!(step >= 1)) throw new Error(`adam: step must be >= 1, got ${step}`);
    words[1] = options.decoupled ? 1 : 0;
    floats[2] = options.beta1;
    floats[3] = options.beta2;
    floats[4] = options.eps;
    floats[5] = options.weightDecay;
    floats[6] = 1 - lr * options.weightDecay;
    floats[7] = lr / (1 - Math.pow(options.beta1, step));
    floats[8] = Math.sqrt(1 - Math.pow(options.beta2, step));
    floats[9] = 1 - options.beta1;
    floats[10] = 1 - options.beta2;
    for (const p of passes) {
      words[0] = p.part.count;
      words[11] = p.part.first;
      gpu.device.queue.writeBuffer(p.uniform, 0, data);
    }
  };
  const step: GpuStep<AdamDims> = {
    encode(pass, { step, lr }) {
      writeUniforms(step, lr);
      for (const p of passes) {
        pass.setPipeline(p.pipeline);
        pass.setBindGroup(0, p.group);
        pass.dispatchWorkgroups(p.x, p.y);
      }
    },
    destroy() {
      for (const b of owned) b.destroy();
    },
  };
  // Texture form (texture_inputs.ts): the vec4 part of a single segment reads
  // copies of param, grad, m and v; the same values, so the same bits.
  const vec4Part = passes.find((p) => p.part.vec4);
  if (!(options.textureReads ?? isSoftwareAdapter(gpu)) || segments.length !== 1 || !vec4Part) {
    return step;
  }
  const groups = vec4Part.part.count;
  const segment = { ...segments[0], count: groups * 4 };
  const [params, grads, m, v] = [options.params, options.grads, options.m, options.v].map((b) =>
    subSlice(b, segment)
  );
  const texturePipeline = cachedPipeline(
    gpu,
    "adam:v4:texture",
    adamWgsl("vec4<f32>", textureInputMode(gpu)),
    "main",
  );
  const input = (source: BufferSlice, binding: number) => ({
    source,
    binding,
    type: "vec4<f32>" as const,
    maxTexels: groups,
  });
  const textures = createTextureInputs(
    gpu,
    texturePipeline,
    "adam:texture",
    [input(params, 6), input(grads, 2), input(m, 7), input(v, 8)],
    [
      { binding: 0, resource: { buffer: vec4Part.uniform } },
      { binding: 1, resource: bufferBinding(params) },
      { binding: 3, resource: bufferBinding(m) },
      { binding: 4, resource: bufferBinding(v) },
      { binding: 5, resource: { buffer: clip! } },
    ],
  );
  if (!textures) return step;
  step.encodeCommands = (enc, { step: t, lr }) => {
    writeUniforms(t, lr);
    textures.copy(enc, [groups, groups, groups, groups]);
    const pass = enc.beginComputePass({ label: "adam" });
    for (const p of passes) {
      pass.setPipeline(p === vec4Part ? texturePipeline : p.pipeline);
      pass.setBindGroup(0, p === vec4Part ? textures.bindGroup() : p.group);
      pass.dispatchWorkgroups(p.x, p.y);
    }
    pass.end();
  };
  return step;
}
