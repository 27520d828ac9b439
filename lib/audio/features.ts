/**
 * The tokenizers' front end over many files: decode → mono → resample →
 * log-mel, on the main thread and a pool of Web Workers (`feature_worker.ts`)
 * at once. The caller reads (and checks) each file's bytes on the main thread;
 * whoever is free next turns them into features. Results come back in file
 * order, and every step is a pure function of the bytes, so the output does
 * not depend on which thread did which file.
 *
 * @module
 */
import { AudioDecodeError, type AudioDecodeFailure, decodeAudioBytes } from "./decode.ts";
import { logMelSpectrogram, type MelSettings } from "./mel.ts";
import { resample, toMono } from "./resample.ts";
import { UserError } from "../errors/mod.ts";

/** What to make of each file. */
export interface FeatureSpec {
  /** Hz; audio is resampled to this rate. */
  rate: number;
  /** Log-mel settings (`sample_rate` must equal `rate`); none: samples only. */
  mel?: MelSettings;
}

/** One file's features. */
export interface FileFeatures {
  /** Seconds of audio (at `rate`). */
  seconds: number;
  /** `[frames, n_mels]` f32 log-mel, when the spec has mel settings. */
  logMel?: Float32Array;
  /** `[n]` f32 mono at `rate`, when asked for (or when the spec has no mel settings). */
  samples?: Float32Array;
}

/** Decode → mono → resample → log-mel of one file's bytes (`path` names it in errors). */
export async function fileFeatures(
  bytes: Uint8Array,
  path: string,
  spec: FeatureSpec,
  keepSamples: boolean,
): Promise<FileFeatures> {
  const decoded = await decodeAudioBytes(bytes, path);
  const samples = await resample(toMono(decoded.channels), decoded.sampleRate, spec.rate);
  const out: FileFeatures = { seconds: samples.length / spec.rate };
  if (spec.mel) out.logMel = logMelSpectrogram(samples, spec.mel).data;
  if (keepSamples || !spec.mel) out.samples = samples;
  return out;
}

/** A file for {@link extractFeatures}: its bytes and the path that names it in errors. */
export interface LoadedFile {
  bytes: Uint8Array;
  path: string;
}

/** Options of {@link extractFeatures}. */
export interface ExtractOptions {
  /** Workers to start (default: one fewer than the cores); 0 runs everything on this thread. */
  workers?: number;
  /** Let this thread featurise files too while it waits (default true). */
  mainThread?: boolean;
  /** Called after each file with the number done. */
  onProgress?: (done: number) => void;
  signal?: AbortSignal;
}

/** An error as it crosses from a worker: enough to rebuild the `UserError`. */
export interface WireError {
  name: string;
  message: string;
  file?: string;
  step?: string;
  field?: string;
  expected?: string;
  found?: string;
  hint?: string;
  failure?: AudioDecodeFailure;
}

/** A message from the feature worker. */
export type WorkerReply =
  | { ready: true }
  | { index: number; features: FileFeatures }
  | { index: number; error: WireError };

/** A message to the feature worker. */
export interface WorkerTask {
  index: number;
  bytes: Uint8Array;
  path: string;
  spec: FeatureSpec;
  keepSamples: boolean;
}

/** An error as a structured-clone-safe object. */
export function toWire(e: unknown): WireError {
  if (e instanceof UserError) {
    return {
      name: e.name,
      message: e.message,
      ...e.location,
      expected: e.expected,
      found: e.found,
      hint: e.hint,
      failure: e instanceof AudioDecodeError ? e.failure : undefined,
    };
  }
  return { name: "Error", message: e instanceof Error ? e.stack ?? e.message : String(e) };
}

function fromWire(w: WireError): Error {
  const { name: _, message, failure, ...options } = w;
  if (failure) return new AudioDecodeError(failure, message, options);
  if (w.name === "UserError") return new UserError(message, options);
  return new Error(`feature worker: ${message}`);
}

/** Buffers of `f` to transfer instead of copy. */
export function transferables(f: FileFeatures): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const a of [f.logMel, f.samples]) {
    if (a && a.buffer instanceof ArrayBuffer && !out.includes(a.buffer)) out.push(a.buffer);
  }
  return out;
}

/** Resolves after the tasks already queued (worker messages among them) have run. */
function nextMacrotask(): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

/**
 * Features of `count` files, in file order. `load(i)` reads file `i` on this
 * thread (and may throw, e.g. a `UserError` for a changed file); the bytes go
 * to a free worker, or are featurised here when this thread is free first.
 * Workers are started at once and join when they are ready (~50 ms), so short
 * jobs finish on this thread alone. Errors from workers come back as the same
 * `UserError`s.
 */
export async function extractFeatures(
  count: number,
  load: (index: number) => Promise<LoadedFile>,
  spec: FeatureSpec,
  keepSamples: (index: number) => boolean,
  options: ExtractOptions = {},
): Promise<FileFeatures[]> {
  const results: (FileFeatures | undefined)[] = new Array(count);
  const cores = navigator.hardwareConcurrency ?? 1;
  const wanted = Math.min(options.workers ?? Math.max(0, cores - 1), count);
  const mainThread = options.mainThread ?? true;
  if (!mainThread && wanted === 0) {
    throw new RangeError("extractFeatures: mainThread false needs at least one worker");
  }
  let next = 0;
  let done = 0;
  let failed: Error | undefined;
  const workers: Worker[] = [];
  const finished = Promise.withResolvers<void>();
  const settle = () => {
    options.onProgress?.(done);
    if (done === count) finished.resolve();
  };
  const fail = (e: unknown) => {
    failed ??= e instanceof Error ? e : new Error(String(e));
    finished.reject(failed);
  };
  /** Hands the next file to worker `w` (or leaves it idle when none are left). */
  const feed = async (w: Worker) => {
    if (failed || next >= count) return;
    const index = next++;
    try {
      options.signal?.throwIfAborted();
      const { bytes, path } = await load(index);
      const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes
        : bytes.slice();
      const task: WorkerTask = { index, bytes: own, path, spec, keepSamples: keepSamples(index) };
      w.postMessage(task, [own.buffer as ArrayBuffer]);
    } catch (e) {
      fail(e);
    }
  };
  try {
    if (count === 0) return [];
    for (let k = 0; k < wanted; k++) {
      const w = new Worker(new URL("./feature_worker.ts", import.meta.url), { type: "module" });
      workers.push(w);
      w.onmessage = (ev: MessageEvent<WorkerReply>) => {
        const m = ev.data;
        if ("ready" in m) return void feed(w);
        if ("error" in m) return fail(fromWire(m.error));
        results[m.index] = m.features;
        done++;
        settle();
        void feed(w);
      };
      w.onerror = (ev) => {
        ev.preventDefault();
        fail(new Error(`feature worker failed: ${ev.message}`));
      };
    }
    finished.promise.catch(() => {}); // awaited below
    if (mainThread) {
      while (!failed && next < count) {
        const index = next++;
        options.signal?.throwIfAborted();
        const { bytes, path } = await load(index);
        results[index] = await fileFeatures(bytes, path, spec, keepSamples(index));
        done++;
        settle();
        // Let the workers' messages in: with synchronous loads and WAV input
        // every await above settles as a microtask, and idle workers would wait
        // for this loop to end.
        if (workers.length > 0) await nextMacrotask();
      }
    }
    await finished.promise;
    return results as FileFeatures[];
  } catch (e) {
    throw failed ?? e;
  } finally {
    for (const w of workers) w.terminate();
  }
}
