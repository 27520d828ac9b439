/**
 * tokenize: audio files → token sequences (the seed's `wav_to_token`).
 *
 * mel-vq (default): decode → mono → resample to `mel.sample_rate` → log-mel
 * frames → a `codebook_size`-entry k-means codebook fitted on the GPU to the
 * TRAIN files' frames only (at most `kmeans_max_frames` of them, a seeded
 * subsample) → every frame's nearest codebook entry (GPU; the frames outside
 * the fit are assigned in the fit's last GPU submit) → sequences in the chosen
 * layout. onnx-codec: decode → mono → resample to the codec's rate → the
 * user's ONNX encoder gives the codes (no codebook to fit). Decoding and
 * log-mel run on this thread and, for long inputs, a worker pool
 * (`lib/audio/features.ts`); results are gathered in file order, so the
 * artifact does not depend on the threads.
 *
 * Timing metrics (seconds): `seconds_decode` reading and hashing the files,
 * `seconds_features` the rest of that phase (decode, resample, log-mel, on
 * every thread), `seconds_kmeans` the codebook fit including the assignment
 * of the other frames, `seconds_assign` splitting the codes per file.
 *
 * Reads: `scan` (`files.json`; each file's bytes must still hash to its
 * recorded sha256, and its `split`: the scan owns the train/validation/test
 * split) and the audio it lists: in the scan's own input (`ctx.upstream.scan`)
 * or its `root` folder (lib/data/scan_source.ts). The codebook is fitted on
 * train files only.
 *
 * Writes: `vocab.json`, `tokenizer.json` (kind, settings; mel settings at the
 * top level as `lib/tokenizers` reads them), `codebook.f32` (mel-vq, `[K,
 * n_mels]` f32 LE), `encoder.onnx`/`decoder.onnx` copies (onnx-codec),
 * `sequences.json` (`[{path, category, sha256, split, offset, length}]`) and
 * `tokens.u32` (all sequences concatenated, uint32 LE).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import type { SequenceRecord } from "../lib/data/tokenized.ts";
import type { Vocabulary } from "../lib/data/types.ts";
import { buildVocabulary, encodeSequence } from "../lib/data/vocab.ts";
import { scanAudioRoot, type ScanSource, scanSourceOf } from "../lib/data/scan_source.ts";
import { UserError } from "../lib/errors/mod.ts";
import { defineJob, type JobContext, type JobResult } from "../lib/pipeline/job.ts";
import { MEL_VQ_CONVENTIONS } from "../lib/audio/mel.ts";
import { Random } from "../lib/random/mod.ts";
import { OnnxCodecSettings } from "../lib/tokenizers/onnx_codec.ts";

/** Log-mel analysis settings (see `lib/audio/mel.ts`; defaults = its `DEFAULT_MEL`). */
export const MelParams = z.strictObject({
  /** Hz; audio is resampled to this rate first. */
  sample_rate: z.number().int().min(1000).max(192000).default(16000),
  /** FFT size in samples, a power of two. */
  n_fft: z.number().int().min(4).max(65536).refine((n) => (n & (n - 1)) === 0, {
    message: "n_fft must be a power of two",
  }).default(512),
  /** Hann window length in samples (<= n_fft). */
  win_length: z.number().int().min(1).default(400),
  /** Hop between frames in samples (frame rate = sample_rate / hop_length). */
  hop_length: z.number().int().min(1).default(160),
  n_mels: z.number().int().min(1).max(1024).default(40),
  /** Hz. */
  f_min: z.number().min(0).default(0),
  /** Hz, <= sample_rate / 2. */
  f_max: z.number().positive().default(8000),
}).superRefine((m, ctx) => {
  if (m.win_length > m.n_fft) {
    ctx.addIssue({
      code: "custom",
      path: ["win_length"],
      message: `win_length ${m.win_length} must be <= n_fft ${m.n_fft}`,
    });
  }
  if (m.f_max > m.sample_rate / 2) {
    ctx.addIssue({
      code: "custom",
      path: ["f_max"],
      message: `f_max ${m.f_max} Hz must be <= sample_rate / 2 = ${m.sample_rate / 2} Hz`,
    });
  }
  if (m.f_min >= m.f_max) {
    ctx.addIssue({
      code: "custom",
      path: ["f_min"],
      message: `f_min ${m.f_min} Hz must be below f_max ${m.f_max} Hz`,
    });
  }
});

/** The tokenize job's parameters. */
export const TokenizeParams = z.strictObject({
  kind: z.enum(["mel-vq", "onnx-codec"]).default("mel-vq"),
  mel: MelParams.prefault({}),
  /** mel-vq codebook entries K (the seed used 4096). */
  codebook_size: z.number().int().min(2).max(65536).default(256),
  /** Maximum Lloyd iterations of the codebook fit. */
  kmeans_iterations: z.number().int().min(1).max(1000).default(25),
  /**
   * Stop the fit when an iteration lowers the inertia by less than this
   * fraction. 1e-3 stops about 10 iterations in on the synth sound set, within
   * ~1% of the converged inertia at a third of the cost; 0 runs to convergence.
   */
  kmeans_tolerance: z.number().min(0).default(1e-3),
  /** At most this many train frames go into the fit (a seeded subsample beyond it). */
  kmeans_max_frames: z.number().int().min(2).default(200000),
  layout: z.enum(["seed", "label-first"]).default("seed"),
  /** The neural codec, for kind onnx-codec (paths relative to the working directory). */
  onnx: OnnxCodecSettings.optional(),
  /** Validation files whose round trip (tokens → audio) is scored in dB for metrics; 0 = none. */
  reconstruction_files: z.number().int().min(0).max(100).default(2),
}).superRefine((p, ctx) => {
  if (p.kind === "onnx-codec" && !p.onnx) {
    ctx.addIssue({
      code: "custom",
      path: ["onnx"],
      message: "kind onnx-codec needs an onnx object (encoder, sample_rate, hop_length, " +
        "codebook_size)",
    });
  }
  if (p.kind === "mel-vq" && p.onnx) {
    ctx.addIssue({
      code: "custom",
      path: ["onnx"],
      message: "onnx settings are only used with kind onnx-codec",
    });
  }
  if (p.kmeans_max_frames < p.codebook_size) {
    ctx.addIssue({
      code: "custom",
      path: ["kmeans_max_frames"],
      message:
        `kmeans_max_frames ${p.kmeans_max_frames} must be >= codebook_size ${p.codebook_size}`,
    });
  }
});

/** Parsed tokenize parameters. */
export type TokenizeParams = z.output<typeof TokenizeParams>;

/**
 * Audio (seconds, as the scan lists it) from which decoding and log-mel use a
 * worker pool. Measured on the 2 shared cores (synth WAVs, median of runs):
 * 300 s of audio 270 ms alone vs 290 ms with a worker (its start and its own
 * JIT warm-up eat the gain), 900 s 770 vs 515 ms.
 */
const POOL_MIN_SECONDS = 600;

/** Seconds of each validation file scored for the reconstruction metric. */
const RECONSTRUCTION_SECONDS = 3;

const ScanFile = z.object({
  path: z.string().min(1),
  category: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  split: z.enum(["train", "val", "test"]),
}).passthrough();

const ScanOutput = z.object({
  files: z.array(ScanFile),
  categories: z.record(z.string(), z.number()).optional(),
}).passthrough();

type ScanOutput = z.output<typeof ScanOutput>;

async function readScan(file: string): Promise<ScanOutput & { source: ScanSource }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new UserError(`cannot read the scan's file list: ${(e as Error).message}`, {
      file,
      expected: "the files.json written by the scan job",
    });
  }
  const parsed = ScanOutput.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`files.json is not a valid scan output: ${issue.message}`, {
      file,
      field: issue.path.join("."),
      expected: "{source, files: [{path, category, sha256, …}], categories}",
    });
  }
  if (parsed.data.files.length === 0) {
    throw new UserError("the scan found no audio files", {
      file,
      expected: "at least one file per category (two for the split)",
    });
  }
  return { ...parsed.data, source: scanSourceOf(raw, file) };
}

/** `[n]` uint32 or f32 values as little-endian bytes. */
function littleEndianBytes(values: Uint32Array | Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  if (values instanceof Float32Array) {
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  } else {
    for (let i = 0; i < values.length; i++) view.setUint32(i * 4, values[i], true);
  }
  return bytes;
}

/** A file's audio at the tokenizer's rate, and what the features step made of it. */
interface FileAudio {
  /** `[n]` f32 mono at the target rate; kept only for reconstruction files. */
  samples?: Float32Array;
  seconds: number;
  /** mel-vq: `[frames, n_mels]` log-mel. */
  logMel?: Float32Array;
  /** onnx-codec: codes straight from the encoder. */
  codes?: Uint32Array;
}

/**
 * The validation files scored for reconstruction: round robin over the
 * categories (sorted), each category's files in path order, so `count` files
 * cover `count` categories where there are that many.
 */
function reconstructionPicks(
  files: readonly { category: string }[],
  splits: readonly string[],
  count: number,
): Set<number> {
  const byCategory = new Map<string, number[]>();
  files.forEach((f, i) => {
    if (splits[i] !== "val") return;
    const list = byCategory.get(f.category);
    if (list) list.push(i);
    else byCategory.set(f.category, [i]);
  });
  const lists = [...byCategory].sort(([a], [b]) => a < b ? -1 : 1).map(([, l]) => l);
  const picks: number[] = [];
  for (let round = 0; picks.length < count && lists.some((l) => l.length > round); round++) {
    for (const l of lists) if (l.length > round && picks.length < count) picks.push(l[round]);
  }
  return new Set(picks.sort((a, b) => a - b));
}

/** Code usage over all files: share of the K codes used, and the perplexity of their distribution. */
function codeUsage(codes: Uint32Array[], k: number): { usage: number; perplexity: number } {
  const counts = new Float64Array(k);
  let total = 0;
  for (const c of codes) {
    for (let i = 0; i < c.length; i++) counts[c[i]]++;
    total += c.length;
  }
  let used = 0, entropy = 0;
  for (const n of counts) {
    if (n === 0) continue;
    used++;
    const p = n / total;
    entropy -= p * Math.log(p);
  }
  return { usage: used / k, perplexity: total === 0 ? 0 : Math.exp(entropy) };
}

async function tokenize(ctx: JobContext<TokenizeParams>): Promise<JobResult> {
  const p = ctx.params;
  const started = performance.now();
  const filesJson = join(ctx.inputs.scan.dir, "files.json");
  const where = { file: filesJson, step: ctx.step };
  const scan = await readScan(filesJson);
  const root = scanAudioRoot(scan.source, ctx.upstream?.scan, where);
  const splits = scan.files.map((f) => f.split);
  const categories = [
    ...new Set([...Object.keys(scan.categories ?? {}), ...scan.files.map((f) => f.category)]),
  ];
  const codebookSize = p.kind === "onnx-codec" ? p.onnx!.codebook_size : p.codebook_size;
  const vocab = buildVocabulary(categories, codebookSize, p.layout, where);

  const [features, { createHash }] = await Promise.all([
    import("../lib/audio/features.ts"),
    // node:crypto hashes small files ~20x faster than crypto.subtle (synchronous, no thread hop).
    import("node:crypto"),
  ]);
  const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
  type Codec = import("../lib/tokenizers/onnx_codec.ts").OnnxCodecTokenizer;
  let codec: Codec | undefined;
  if (p.kind === "onnx-codec") {
    const { OnnxCodecTokenizer } = await import("../lib/tokenizers/onnx_codec.ts");
    codec = await OnnxCodecTokenizer.load(p.onnx, {
      file: ctx.pipelineFile,
      fieldPrefix: `steps.${ctx.step}.params.onnx.`,
    });
  }
  try {
    const rate = codec ? codec.settings.sample_rate : p.mel.sample_rate;
    const reconstructIdx = reconstructionPicks(scan.files, splits, p.reconstruction_files);

    // Decode and featurise every file: this thread reads and checks the bytes,
    // and this thread and a worker pool turn them into features.
    const timing = { decode: 0, features: 0, kmeans: 0, assign: 0 };
    ctx.progress.start(scan.files.length, "files", "decode + features");
    const t0 = performance.now();
    // Synchronous reads: audio files are small, and an async read's thread hop
    // costs a third more (~0.13 vs ~0.1 ms per 18 kB file here).
    const read = (i: number) => {
      const f = scan.files[i];
      const path = join(root, f.path);
      const tr = performance.now();
      let bytes: Uint8Array;
      try {
        bytes = Deno.readFileSync(path);
      } catch (e) {
        throw new UserError(`cannot read an audio file the scan listed: ${(e as Error).message}`, {
          file: path,
          step: ctx.step,
          hint: "the audio folder changed since the scan; re-run the scan step",
        });
      }
      const sha = sha256Hex(bytes);
      if (sha !== f.sha256) {
        throw new UserError("the audio file changed since the scan (its sha256 differs)", {
          file: path,
          step: ctx.step,
          expected: `sha256 ${f.sha256} (from ${filesJson})`,
          found: `sha256 ${sha}`,
          hint: "re-run the scan step so the file list matches the audio folder",
        });
      }
      timing.decode += performance.now() - tr;
      return Promise.resolve({ bytes, path });
    };
    const perFile: FileAudio[] = [];
    let secondsAudio = 0;
    if (codec) {
      // One file at a time: its samples are dropped once the codec has encoded them.
      for (let i = 0; i < scan.files.length; i++) {
        ctx.signal.throwIfAborted();
        const { bytes, path } = await read(i);
        const f = await features.fileFeatures(bytes, path, { rate }, true);
        const entry: FileAudio = { seconds: f.seconds, codes: await codec.encode(f.samples!) };
        if (reconstructIdx.has(i)) entry.samples = f.samples;
        secondsAudio += entry.seconds;
        perFile.push(entry);
        ctx.progress.update(i + 1);
      }
    } else {
      // Below POOL_MIN_SECONDS (by the scan's durations) this thread works alone.
      const listedSeconds = scan.files.reduce(
        (t, f) => t + (typeof f.duration_s === "number" ? f.duration_s : 1),
        0,
      );
      const featured = await features.extractFeatures(
        scan.files.length,
        read,
        { rate, mel: p.mel },
        (i) => reconstructIdx.has(i),
        {
          signal: ctx.signal,
          onProgress: (n) => ctx.progress.update(n),
          workers: listedSeconds >= POOL_MIN_SECONDS ? undefined : 0,
        },
      );
      for (const f of featured) {
        perFile.push({ seconds: f.seconds, logMel: f.logMel, samples: f.samples });
        secondsAudio += f.seconds;
      }
    }
    timing.features = performance.now() - t0 - timing.decode;
    ctx.progress.finish(`${scan.files.length} files, ${secondsAudio.toFixed(1)} s of audio`);

    let codes: Uint32Array[];
    let codebook: Float32Array | undefined;
    let kmeansInfo: Record<string, number> = {};
    const environment: Record<string, string> = {};
    if (codec) {
      codes = perFile.map((e) => e.codes!);
      environment.onnx_backend = "onnxruntime-web wasm";
    } else {
      const fit = await fitCodebook(ctx, perFile, splits);
      ({ codes, codebook, kmeansInfo } = fit);
      timing.kmeans = fit.kmeansMs;
      timing.assign = fit.assignMs;
      environment.webgpu_adapter = fit.adapter;
    }
    const secondsToTokens = (performance.now() - started) / 1000;

    // Sequences in the chosen layout.
    const sequences: SequenceRecord[] = [];
    const parts: number[][] = [];
    let offset = 0;
    scan.files.forEach((f, i) => {
      const ids = encodeSequence(vocab, f.category, codes[i]);
      sequences.push({
        path: f.path,
        category: f.category,
        sha256: f.sha256,
        split: splits[i],
        offset,
        length: ids.length,
      });
      parts.push(ids);
      offset += ids.length;
    });
    const tokens = new Uint32Array(offset);
    parts.forEach((ids, i) => tokens.set(ids, sequences[i].offset));

    await writeArtifact(ctx, vocab, sequences, tokens, codebook);

    const lsd = await reconstructionErrors(ctx, {
      files: reconstructIdx,
      perFile,
      paths: scan.files.map((f) => f.path),
      rate,
      codec,
      codebook,
    });

    const usage = codeUsage(codes, codebookSize);
    const frames = codes.reduce((n, c) => n + c.length, 0);
    const metrics: Record<string, unknown> = {
      kind: p.kind,
      files: scan.files.length,
      files_train: splits.filter((s) => s === "train").length,
      files_val: splits.filter((s) => s === "val").length,
      files_test: splits.filter((s) => s === "test").length,
      categories: vocab.categories.length,
      vocab_size: vocab.tokens.length,
      frames,
      tokens: tokens.length,
      seconds_audio: secondsAudio,
      ...kmeansInfo,
      codebook_usage: usage.usage,
      code_perplexity: usage.perplexity,
      reconstruction_lsd_db: lsd.length ? lsd.reduce((a, b) => a + b.lsd_db, 0) / lsd.length : null,
      reconstruction_files: lsd,
      seconds_decode: timing.decode / 1000,
      seconds_features: timing.features / 1000,
      seconds_kmeans: timing.kmeans / 1000,
      seconds_assign: timing.assign / 1000,
      seconds_to_tokens: secondsToTokens,
      realtime_factor: secondsAudio / secondsToTokens,
    };
    return { metrics, environment };
  } finally {
    await codec?.close();
  }
}

/**
 * Round-trip quality on the chosen validation files: each file's first
 * {@link RECONSTRUCTION_SECONDS} encoded and rebuilt (by the codec's decoder,
 * or from the codebook's log-mel frames), and the log-spectral distance in dB.
 */
async function reconstructionErrors(
  ctx: JobContext<TokenizeParams>,
  o: {
    files: Set<number>;
    perFile: FileAudio[];
    paths: string[];
    rate: number;
    codec?: import("../lib/tokenizers/onnx_codec.ts").OnnxCodecTokenizer;
    codebook?: Float32Array;
  },
): Promise<{ path: string; lsd_db: number }[]> {
  const p = ctx.params;
  const { rate, codec } = o;
  const lsd: { path: string; lsd_db: number }[] = [];
  if (o.files.size === 0) return lsd;
  const t4 = performance.now();
  const inverse = await import("../lib/audio/inverse.ts");
  for (const i of o.files) {
    const x = o.perFile[i].samples!.subarray(0, RECONSTRUCTION_SECONDS * rate);
    if (x.length === 0) continue;
    let db: number;
    if (codec) {
      if (!codec.canDecode) break;
      const rebuilt = await codec.decode(await codec.encode(x));
      const s = { ...p.mel, sample_rate: rate, f_max: Math.min(p.mel.f_max, rate / 2) };
      db = inverse.logSpectralDistanceDb(x, rebuilt, s);
    } else {
      db = inverse.reconstructionErrorDb(x, o.codebook!, p.mel, { seed: ctx.seed });
    }
    lsd.push({ path: o.paths[i], lsd_db: db });
  }
  ctx.log(
    `reconstruction: ${lsd.length} validation files in ` +
      `${((performance.now() - t4) / 1000).toFixed(1)} s`,
  );
  return lsd;
}

/**
 * The mel-vq codebook: k-means on the GPU over (a seeded subsample of) the
 * train files' log-mel frames, and every file's frames assigned to it.
 */
async function fitCodebook(
  ctx: JobContext<TokenizeParams>,
  perFile: FileAudio[],
  splits: string[],
): Promise<{
  codes: Uint32Array[];
  codebook: Float32Array;
  kmeansInfo: Record<string, number>;
  adapter: string;
  kmeansMs: number;
  assignMs: number;
}> {
  const p = ctx.params;
  const { requestGpu } = await import("../lib/gpu/device.ts");
  const { fitKMeans, seededSubsample } = await import("../lib/gpu/kmeans.ts");
  const gpu = await requestGpu();
  const d = p.mel.n_mels;
  const frameCount = (i: number) => perFile[i].logMel!.length / d;
  /** `[Σ frames, d]`: the log-mel frames of files `idx`, in that order. */
  const concat = (idx: number[]) => {
    const out = new Float32Array(idx.reduce((n, i) => n + perFile[i].logMel!.length, 0));
    let o = 0;
    for (const i of idx) {
      out.set(perFile[i].logMel!, o);
      o += perFile[i].logMel!.length;
    }
    return out;
  };
  const trainIdx = perFile.map((_, i) => i).filter((i) => splits[i] === "train");
  const valIdx = perFile.map((_, i) => i).filter((i) => splits[i] !== "train");
  // The fit sees train frames only, at most kmeans_max_frames of them.
  const trainFrames = trainIdx.reduce((n, i) => n + frameCount(i), 0);
  const pick = seededSubsample(
    trainFrames,
    p.kmeans_max_frames,
    new Random(ctx.seed, "tokenize/kmeans-frames"),
  );
  const allTrain = pick.length === trainFrames;
  let fitFrames = concat(trainIdx);
  if (!allTrain) {
    const all = fitFrames;
    fitFrames = new Float32Array(pick.length * d);
    for (let j = 0; j < pick.length; j++) {
      fitFrames.set(all.subarray(pick[j] * d, (pick[j] + 1) * d), j * d);
    }
  }
  // Every frame the fit does not assign is assigned in the fit's last GPU submit.
  const otherIdx = allTrain ? valIdx : perFile.map((_, i) => i);
  ctx.log(
    `k-means: K=${p.codebook_size} on ${pick.length} of ${trainFrames} train frames ` +
      `(${d} mels), up to ${p.kmeans_iterations} iterations on ${gpu.adapterDescription}`,
  );
  const t2 = performance.now();
  let fit;
  try {
    fit = await fitKMeans(gpu, fitFrames, d, p.codebook_size, {
      seed: ctx.seed,
      iterations: p.kmeans_iterations,
      tolerance: p.kmeans_tolerance,
      assignAlso: concat(otherIdx),
    });
  } catch (e) {
    throw e instanceof UserError
      ? e.withLocation({
        file: ctx.pipelineFile,
        step: ctx.step,
        field: `steps.${ctx.step}.params.codebook_size`,
      })
      : e;
  }
  const t3 = performance.now();
  ctx.log(`k-means: ${fit.iterations} iterations, inertia ${fit.inertia.toExponential(4)}`);
  const codes: Uint32Array[] = new Array(perFile.length);
  const take = (idx: number[], assigned: Uint32Array) => {
    let o = 0;
    for (const i of idx) {
      codes[i] = assigned.subarray(o, o + frameCount(i));
      o += frameCount(i);
    }
  };
  if (allTrain) take(trainIdx, fit.assignment);
  take(otherIdx, fit.extraAssignment);
  const kmeansInfo = {
    kmeans_inertia: fit.inertia,
    kmeans_inertia_per_frame: fit.inertia / Math.max(1, pick.length),
    kmeans_iterations: fit.iterations,
    kmeans_frames: pick.length,
    train_frames: trainFrames,
  };
  return {
    codes,
    codebook: fit.codebook,
    kmeansInfo,
    adapter: gpu.adapterDescription,
    kmeansMs: t3 - t2,
    assignMs: performance.now() - t3,
  };
}

async function writeArtifact(
  ctx: JobContext<TokenizeParams>,
  vocab: Vocabulary,
  sequences: SequenceRecord[],
  tokens: Uint32Array,
  codebook: Float32Array | undefined,
): Promise<void> {
  const p = ctx.params;
  const out = ctx.outDir;
  const common = {
    codebook_size: vocab.codebook_size,
    layout: p.layout,
    seed: ctx.seed,
  };
  let settings: Record<string, unknown>;
  if (p.kind === "onnx-codec") {
    const onnx = { ...p.onnx! };
    await Deno.copyFile(resolve(onnx.encoder), join(out, "encoder.onnx"));
    onnx.encoder = "encoder.onnx";
    if (onnx.decoder) {
      await Deno.copyFile(resolve(onnx.decoder), join(out, "decoder.onnx"));
      onnx.decoder = "decoder.onnx";
    }
    settings = { kind: p.kind, onnx, frame_rate_hz: onnx.sample_rate / onnx.hop_length, ...common };
  } else {
    settings = {
      kind: p.kind,
      ...p.mel,
      frame_rate_hz: p.mel.sample_rate / p.mel.hop_length,
      ...common,
      kmeans: {
        iterations: p.kmeans_iterations,
        tolerance: p.kmeans_tolerance,
        max_frames: p.kmeans_max_frames,
        fitted_on: "train split",
      },
      codebook: "codebook.f32",
      conventions: MEL_VQ_CONVENTIONS,
    };
    await Deno.writeFile(join(out, "codebook.f32"), littleEndianBytes(codebook!));
  }
  await Deno.writeTextFile(join(out, "tokenizer.json"), JSON.stringify(settings, null, 2) + "\n");
  await Deno.writeTextFile(join(out, "vocab.json"), JSON.stringify(vocab, null, 2) + "\n");
  await Deno.writeTextFile(join(out, "sequences.json"), JSON.stringify(sequences, null, 1) + "\n");
  await Deno.writeFile(join(out, "tokens.u32"), littleEndianBytes(tokens));
}

/** The tokenize job (see the module doc). */
export const job = defineJob({
  name: "tokenize",
  version: "1",
  description: "audio files → token sequences (log-mel + GPU k-means codebook, or an ONNX codec)",
  params: TokenizeParams,
  inputs: () => ["scan"],
  slots: { scan: ["scan"] },
  // The audio files.json lists may be in the scan's own input (synth's audio/).
  upstream: ["scan"],
  /** metrics.json's flat figures: what gates may name. */
  metrics: [
    "files",
    "categories",
    "vocab_size",
    "frames",
    "tokens",
    "seconds_audio",
    "codebook_usage",
    "code_perplexity",
    "reconstruction_lsd_db",
    "seconds_to_tokens",
    "realtime_factor",
  ],
  sources: (p) =>
    p.kind === "onnx-codec" && p.onnx
      ? [p.onnx.encoder, ...(p.onnx.decoder ? [p.onnx.decoder] : [])]
      : [],
  run: tokenize,
});
