/**
 * What every SamOut graph on the GPU (inference, training, step form) is made
 * of: buffers it owns and named stages (prepared kernel uses) it records into
 * one compute pass. {@link GraphResources} owns both and destroys them
 * together.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import {
  type BufferSlice,
  createStorageBuffer,
  type Gpu,
  type GpuStep,
  readBuffer,
} from "../gpu/device.ts";
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
  /**
   * Optional: the stage as commands outside a compute pass (a copy), used
   * instead of {@link encode} by {@link recordStages}.
   */
  commands?(enc: GPUCommandEncoder, dims: StepDims): void;
}

/**
 * Records `stages` in order into `enc`: runs of dispatches share one compute
 * pass; a stage with {@link Stage.commands} ends the pass, records its
 * commands, and the next dispatch starts a new pass.
 */
export function recordStages(
  enc: GPUCommandEncoder,
  label: string,
  stages: Stage[],
  dims: StepDims,
): void {
  let pass: GPUComputePassEncoder | undefined;
  for (const s of stages) {
    if (s.commands) {
      pass?.end();
      pass = undefined;
      s.commands(enc, dims);
    } else {
      pass ??= enc.beginComputePass({ label });
      s.encode(pass, dims);
    }
  }
  pass?.end();
}

/** Buffers and steps owned by one graph, destroyed together. */
export class GraphResources {
  readonly gpu: Gpu;
  readonly #buffers: GPUBuffer[] = [];
  readonly #steps: GpuStep<never>[] = [];
  #destroyed = false;
  /** Set when the device is lost (after {@link watchDevice}). */
  #lost: string | undefined;
  /** The first WebGPU validation error of a submit (a bug), reported by the next call. */
  #gpuError: string | undefined;

  /**
   * @param gpu the device
   * @param what the graph's name in messages ("the training graph")
   * @param lostHint what to tell the user when the device is lost
   */
  constructor(
    gpu: Gpu,
    readonly what = "the graph",
    readonly lostHint = "the GPU driver reset or the device was removed; run the command again",
  ) {
    this.gpu = gpu;
  }

  /** Starts noting a device loss (call once the graph is built). */
  watchDevice(): void {
    this.gpu.device.lost.then((info) => {
      this.#lost = `${info.reason}: ${info.message}`;
    });
  }

  /** Throws when the graph was destroyed, a submit failed validation, or the device was lost. */
  checkUsable(): void {
    if (this.#destroyed) throw new Error(`${this.what} was destroyed`);
    if (this.#gpuError !== undefined) {
      throw new Error(`a submit of ${this.what} failed WebGPU validation: ${this.#gpuError}`);
    }
    if (this.#lost !== undefined) {
      throw new UserError(`the GPU device was lost (${this.#lost})`, { hint: this.lostHint });
    }
  }

  /**
   * Records commands with `record` into one encoder and submits it, inside a
   * validation error scope whose error the next {@link checkUsable} reports.
   */
  submit(label: string, record: (enc: GPUCommandEncoder) => void): void {
    const device = this.gpu.device;
    device.pushErrorScope("validation");
    try {
      const enc = device.createCommandEncoder({ label });
      record(enc);
      device.queue.submit([enc.finish()]);
    } finally {
      device.popErrorScope().then((error) => {
        this.#gpuError ??= error?.message;
      });
    }
  }

  /** Reads `count` f32 of `buffer` back (one ~10 ms round trip). */
  async readFloats(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    this.checkUsable();
    // No Promise.race with `device.lost` here: a race against a promise that
    // never settles keeps every result alive (each weight download leaked its size).
    // A lost device rejects the pending mapAsync, and checkUsable says why.
    try {
      return new Float32Array(await readBuffer(this.gpu, buffer, count * F32));
    } catch (e) {
      this.checkUsable();
      throw e;
    }
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
    const stage: Stage = { name, encode: (pass, d) => step.encode(pass, dims(d)) };
    if (step.encodeCommands) {
      const commands = step.encodeCommands.bind(step);
      stage.commands = (enc, d) => commands(enc, dims(d));
    }
    return stage;
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
