/**
 * Autoregressive generation with SamOut's recurrent state: every new token
 * costs one step of the fixed-size state, whatever the prefix length.
 *
 * Backends (same sampling rule, same counter-based generator):
 * - `gpu`: the GPU step form and a sampling kernel in one compute pass per
 *   token; nothing is read back per token (the "done" flags every
 *   {@link GenerateRequest.checkEvery} tokens, the tokens once at the end);
 * - `cpu`: the float64 reference step form and the same sampling on the host.
 *
 * The same seed gives the same tokens, bit for bit, on the same backend and
 * adapter. The two backends agree where their logits' rounding does not tip
 * a choice.
 *
 * @module
 */
import type { Vocabulary } from "../data/types.ts";
import { type Gpu, readBuffer } from "../gpu/device.ts";
import { createSampleStep, type SamplingSettings, uniformOf } from "../gpu/ops/sample.ts";
import type { SamOutConfig } from "../model/config.ts";
import { SamOutInference } from "../model/inference.ts";
import { samoutInitialState, samoutStep } from "../model/reference.ts";

export type { SamplingSettings } from "../gpu/ops/sample.ts";

/** Where generation runs. */
export type GenerateBackend = "gpu" | "cpu";

/** One generation call: `prompts.length` rows, each prompt the same length. */
export interface GenerateRequest {
  config: SamOutConfig;
  weights: Map<string, Float32Array>;
  /** Per row the prompt token ids (e.g. `[<|im_start|>]`), all the same length (>= 1). */
  prompts: Int32Array[];
  /** Most tokens generated after the prompt (a row stops early at `<|im_end|>`). */
  maxNewTokens: number;
  settings: SamplingSettings;
  /** `<|im_end|>`'s id. */
  endId: number;
  /** GPU: read the done flags every N tokens to stop once every row ended. */
  checkEvery?: number;
}

/** Per row, the generated tokens after the prompt, up to and including `<|im_end|>`. */
export type Generated = Int32Array[];

/**
 * A model on the GPU ready for {@link generateOnGpu}, its weights uploaded (and packed on first
 * use) once, for callers that generate more than once: rounds of samples, a server's requests.
 * The caller destroys it.
 */
export async function loadForGeneration(
  gpu: Gpu,
  config: SamOutConfig,
  weights: Map<string, Float32Array>,
): Promise<SamOutInference> {
  const model = await SamOutInference.create(gpu, { config, maxBatch: 1, maxLength: 1 });
  try {
    model.uploadWeights(weights);
  } catch (e) {
    model.destroy();
    throw e;
  }
  return model;
}

/**
 * Generates on the GPU (see the module doc). With `loaded` (from {@link loadForGeneration}, with
 * `req.weights` already in it) the call uses that model and leaves it loaded; without, it loads
 * `req.weights` for this call only.
 */
export async function generateOnGpu(
  gpu: Gpu,
  req: GenerateRequest,
  loaded?: SamOutInference,
): Promise<Generated> {
  const R = req.prompts.length;
  const P = checkRequest(req);
  const maxLen = req.maxNewTokens;
  const model = loaded ?? await loadForGeneration(gpu, req.config, req.weights);
  const own = (m: SamOutInference) => {
    if (m !== loaded) m.destroy();
  };
  let stepper;
  try {
    stepper = await model.createStepper(R);
  } catch (e) {
    own(model);
    throw e;
  }
  const device = gpu.device;
  const make = (bytes: number, label: string) =>
    device.createBuffer({
      label,
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  const out = make(R * maxLen * 4, "generate.out");
  const done = make(R * 4, "generate.done");
  device.pushErrorScope("validation");
  const sample = createSampleStep(gpu, {
    logits: stepper.logitsBuffer,
    out,
    next: stepper.idsBuffer,
    done,
    V: req.config.vocabSize,
    maxLen,
    endId: req.endId,
    settings: req.settings,
    maxRows: R,
  });
  const invalid = await device.popErrorScope();
  if (invalid) {
    for (const x of [sample, out, done, stepper]) x.destroy();
    own(model);
    throw new Error(`the sampling kernel failed WebGPU validation: ${invalid.message}`);
  }
  try {
    // The prompt, fed from the host; its last step's logits give the first new token.
    for (let t = 0; t < P - 1; t++) stepper.step(Int32Array.from(req.prompts, (p) => p[t]));
    stepper.step(Int32Array.from(req.prompts, (p) => p[P - 1]));
    const checkEvery = Math.max(1, req.checkEvery ?? 32);
    let produced = 0;
    for (let pos = 0; pos < maxLen; pos++) {
      const enc = device.createCommandEncoder({ label: "generate" });
      // The row form where the step has one (software adapters: a copy, then its own pass).
      let pass: GPUComputePassEncoder | undefined;
      if (sample.encodeCommands) {
        sample.encodeCommands(enc, { R, pos, step: pos });
      } else {
        pass = enc.beginComputePass({ label: "generate" });
        sample.encode(pass, { R, pos, step: pos });
      }
      // The sampled token is the next step's input (no step after the last token).
      if (pos + 1 < maxLen && stepper.position < req.config.maxPositions) {
        pass ??= enc.beginComputePass({ label: "generate" });
        stepper.encodeStep(pass);
      }
      pass?.end();
      device.queue.submit([enc.finish()]);
      produced = pos + 1;
      if (stepper.position >= req.config.maxPositions) break;
      if ((pos + 1) % checkEvery === 0 && pos + 1 < maxLen) {
        const flags = new Uint32Array(await readBuffer(gpu, done, R * 4));
        if (flags.every((f) => f !== 0)) break;
      }
    }
    const tokens = new Uint32Array(await readBuffer(gpu, out, R * maxLen * 4));
    return Array.from(
      { length: R },
      (_, r) => trimAtEnd(tokens.subarray(r * maxLen, r * maxLen + produced), req.endId),
    );
  } finally {
    sample.destroy();
    out.destroy();
    done.destroy();
    stepper.destroy();
    own(model);
  }
}

/** Generates with the float64 CPU reference (see the module doc). */
export function generateOnCpu(req: GenerateRequest): Generated {
  const R = req.prompts.length;
  const P = checkRequest(req);
  const state = samoutInitialState(req.config, R);
  let logits: Float64Array = new Float64Array(0);
  for (let t = 0; t < P; t++) {
    logits = samoutStep(req.weights, req.config, state, Int32Array.from(req.prompts, (p) => p[t]));
  }
  const V = req.config.vocabSize;
  const out = Array.from({ length: R }, () => [] as number[]);
  const done = new Uint8Array(R);
  for (let pos = 0; pos < req.maxNewTokens; pos++) {
    const next = new Int32Array(R);
    for (let r = 0; r < R; r++) {
      const token = done[r]
        ? 0
        : sampleRow(logits.subarray(r * V, (r + 1) * V), req.settings, r, pos);
      if (!done[r]) out[r].push(token);
      if (token === req.endId) done[r] = 1;
      next[r] = token;
    }
    if (done.every((d) => d) || state.t >= req.config.maxPositions) break;
    if (pos + 1 < req.maxNewTokens) logits = samoutStep(req.weights, req.config, state, next);
  }
  return out.map((o) => Int32Array.from(o));
}

/**
 * The sampling rule of lib/gpu/ops/sample.ts on the host: ids 0 and 1 are
 * never sampled; greedy at temperature 0; else top-k then top-p by
 * thresholds, then the first id whose running kept mass passes `u * total`.
 */
export function sampleRow(
  logits: ArrayLike<number>,
  s: SamplingSettings,
  row: number,
  step: number,
): number {
  const V = logits.length;
  let argmax = 2;
  for (let v = 3; v < V; v++) if (logits[v] > logits[argmax]) argmax = v;
  if (!(s.temperature > 0)) return argmax;
  const x = Array.from({ length: V }, (_, v) => v < 2 ? -Infinity : logits[v] / s.temperature);
  const max = x[argmax];
  let kThreshold = -Infinity;
  if (s.topK > 0 && s.topK < V - 2) {
    kThreshold = x.slice(2).sort((a, b) => b - a)[s.topK - 1];
  }
  const e = x.map((xi) => xi >= kThreshold ? Math.exp(xi - max) : 0);
  let pThreshold = 0;
  if (s.topP < 1) {
    const total = e.reduce((a, b) => a + b, 0);
    const sorted = e.filter((v) => v > 0).sort((a, b) => b - a);
    let acc = 0;
    for (const v of sorted) {
      acc += v;
      pThreshold = v;
      if (acc >= s.topP * total) break;
    }
  }
  const kept = e.map((v) => v >= pThreshold && v > 0 ? v : 0);
  const total = kept.reduce((a, b) => a + b, 0);
  const target = uniformOf(s.seed, row, step) * total;
  let acc = 0, last = argmax;
  for (let v = 2; v < V; v++) {
    if (kept[v] <= 0) continue;
    last = v;
    acc += kept[v];
    if (acc > target) return v;
  }
  return last;
}

function checkRequest(req: GenerateRequest): number {
  const P = req.prompts[0]?.length ?? 0;
  if (req.prompts.length < 1 || P < 1 || req.prompts.some((p) => p.length !== P)) {
    throw new RangeError("generate: every row needs a prompt of the same length (>= 1)");
  }
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
    throw new RangeError(`generate: maxNewTokens ${req.maxNewTokens}`);
  }
  return P;
}

function trimAtEnd(tokens: Uint32Array, endId: number): Int32Array {
  const end = tokens.indexOf(endId);
  return Int32Array.from(end >= 0 ? tokens.subarray(0, end + 1) : tokens);
}

/** A generated sequence read back: its audio codes and the category it names (if any). */
export function readGenerated(
  vocab: Vocabulary,
  prompt: ArrayLike<number>,
  generated: ArrayLike<number>,
): { codes: number[]; category: string | undefined; ended: boolean } {
  const codes: number[] = [];
  let category: string | undefined;
  let ended = false;
  for (const id of [...Array.from(prompt), ...Array.from(generated)]) {
    if (id === vocab.im_end_id) {
      ended = true;
      break;
    }
    if (id >= vocab.code_offset) codes.push(id - vocab.code_offset);
    else if (id >= vocab.category_offset && id < vocab.category_offset + vocab.categories.length) {
      category ??= vocab.categories[id - vocab.category_offset];
    }
  }
  return { codes, category, ended };
}
