/**
 * What every SamOut graph on the GPU (inference, training, step form) is made
 * of: buffers it owns and named stages (prepared kernel uses) it records into
 * one compute pass. {@link GraphResources} owns both and destroys them
 * together.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { type BufferSlice, createStorageBuffer, type Gpu, type GpuStep } from "../gpu/device.ts";
import type { ParameterLayout } from "./layout.ts";

/** Bytes per f32. */
export const F32 = 4;

/** Sizes of the batch being encoded: B rows of S input positions. */
export interface StepDims {
  B: number;
  S: number;
  /** B * S. */
  rows: number;
}

/** One dispatch (or a few) of a graph, named for profiles. */
export interface Stage {
  name: string;
  encode(pass: GPUComputePassEncoder, dims: StepDims): void;
}

/** Buffers and steps owned by one graph, destroyed together. */
export class GraphResources {
  readonly gpu: Gpu;
  readonly #buffers: GPUBuffer[] = [];
  readonly #steps: GpuStep<never>[] = [];
  #destroyed = false;

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** True once {@link destroy} ran. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Allocates a storage buffer of `floats` f32 (at least 4 bytes) owned by the graph. */
  buffer(floats: number, label: string): GPUBuffer {
    const b = createStorageBuffer(this.gpu, Math.max(1, floats) * F32, `samout.${label}`);
    this.#buffers.push(b);
    return b;
  }

  /** Registers `step` for destruction and wraps it as a named stage. */
  stage<D>(name: string, step: GpuStep<D>, dims: (d: StepDims) => D): Stage {
    this.#steps.push(step as GpuStep<never>);
    return { name, encode: (pass, d) => step.encode(pass, dims(d)) };
  }

  /** Registers a step the caller encodes itself (destroyed with the graph). */
  own<D>(step: GpuStep<D>): GpuStep<D> {
    this.#steps.push(step as GpuStep<never>);
    return step;
  }

  /** Destroys every buffer and step; idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const s of this.#steps) s.destroy();
    for (const b of this.#buffers) b.destroy();
    this.#steps.length = 0;
    this.#buffers.length = 0;
  }
}

/** The slice of a flat buffer (params, grads) holding tensor `name`. */
export function tensorSlice(
  layout: ParameterLayout,
  buffer: GPUBuffer,
  name: string,
): BufferSlice {
  const e = layout.byName.get(name);
  if (!e) throw new Error(`no parameter ${name}`);
  return { buffer, offset: e.offset * F32, size: e.size * F32 };
}

/**
 * Runs `build` inside out-of-memory and validation error scopes; on any
 * failure calls `destroy` and throws: a `UserError` for out of memory (the
 * user can shrink the batch), an `Error` for a validation failure (a bug).
 * `what` names the graph in messages ("the training graph").
 */
export async function buildInErrorScopes(
  gpu: Gpu,
  what: string,
  build: () => void,
  destroy: () => void,
): Promise<void> {
  gpu.device.pushErrorScope("out-of-memory");
  gpu.device.pushErrorScope("validation");
  let failure: unknown;
  try {
    build();
  } catch (e) {
    failure = e;
  }
  const validation = await gpu.device.popErrorScope();
  const oom = await gpu.device.popErrorScope();
  if (failure === undefined && !validation && !oom) return;
  destroy();
  if (failure !== undefined) throw failure;
  if (oom) {
    throw new UserError(`the GPU ran out of memory while allocating ${what}`, {
      expected: "a smaller batch size, sequence length or model",
      found: oom.message,
    });
  }
  throw new Error(`building ${what} failed WebGPU validation: ${validation!.message}`);
}
