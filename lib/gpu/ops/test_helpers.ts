/**
 * Helpers shared by the tests of the matmul, cross-entropy, gradient-norm and
 * Adam kernels: running steps and packing tensors into one flat buffer at
 * 256-byte-aligned offsets. Comparisons use `assertClose` from tests/assert.ts.
 *
 * @module
 */
import type { Random } from "../../random/mod.ts";
import {
  type BufferSlice,
  createStorageBuffer,
  encodeOutsidePass,
  type Gpu,
  type GpuStep,
  readBuffer,
} from "../device.ts";

/** Uniform draws in [lo, hi) as f32. */
export function randomUniform(rng: Random, n: number, lo = -1, hi = 1): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.range(lo, hi);
  return out;
}

/**
 * Encodes `steps` in order into one compute pass, submits it and waits for the
 * queue. Throws on a WebGPU validation error (which otherwise only drops the
 * dispatch silently, e.g. a WGSL compile error).
 */
export async function runSteps<D>(gpu: Gpu, steps: [GpuStep<D>, D][]): Promise<void> {
  gpu.device.pushErrorScope("validation");
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const [step, dims] of steps) step.encode(pass, dims);
  pass.end();
  gpu.device.queue.submit([encoder.finish()]);
  const error = await gpu.device.popErrorScope();
  if (error) throw new Error(`WebGPU validation error: ${error.message}`);
  await gpu.device.queue.onSubmittedWorkDone();
}

/** Several tensors in one flat buffer, each at a 256-byte-aligned offset after `lead` bytes. */
export interface PackedTensors {
  buffer: GPUBuffer;
  slices: BufferSlice[];
}

/**
 * Packs `tensors` into one buffer, the first at byte offset `lead` (a multiple
 * of 256, so that slices start at non-zero offsets) and each next one at the
 * next 256-byte boundary; the gaps hold a sentinel so stray writes show.
 */
export function packTensors(
  gpu: Gpu,
  tensors: (Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer>)[],
  lead = 256,
): PackedTensors {
  const offsets: number[] = [];
  let at = lead;
  for (const t of tensors) {
    offsets.push(at);
    at = Math.ceil((at + t.byteLength) / 256) * 256;
  }
  const buffer = createStorageBuffer(gpu, at, "packed");
  const fill = new Float32Array(at / 4).fill(-12345.5);
  tensors.forEach((t, i) => new Uint8Array(fill.buffer).set(new Uint8Array(t.buffer), offsets[i]));
  gpu.device.queue.writeBuffer(buffer, 0, fill);
  const slices = tensors.map((t, i) => ({ buffer, offset: offsets[i], size: t.byteLength }));
  return { buffer, slices };
}

/** Reads a slice of a packed buffer as f32. */
export async function readSlice(gpu: Gpu, slice: BufferSlice): Promise<Float32Array> {
  const all = await readBuffer(gpu, slice.buffer);
  const offset = slice.offset ?? 0;
  const size = slice.size ?? slice.buffer.size - offset;
  return new Float32Array(all, offset, size / 4);
}

/**
 * Records `steps` as the graphs do (lib/model/resources.ts's recordStages): a
 * step with `encodeCommands` (texture copies, then its own pass) records
 * through it, the others in a pass each; submits, throws on a validation
 * error and waits for the queue.
 */
export async function recordSteps<D>(gpu: Gpu, steps: [GpuStep<D>, D][]): Promise<void> {
  gpu.device.pushErrorScope("validation");
  const encoder = gpu.device.createCommandEncoder();
  for (const [step, dims] of steps) encodeOutsidePass(step, encoder, dims);
  gpu.device.queue.submit([encoder.finish()]);
  const error = await gpu.device.popErrorScope();
  if (error) throw new Error(`WebGPU validation error: ${error.message}`);
  await gpu.device.queue.onSubmittedWorkDone();
}
