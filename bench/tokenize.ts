/**
 * Tokenize throughput: seconds of audio turned into tokens per wall-clock
 * second, from reading and decoding the files to token ids, on a generated
 * set of synth clips (16-bit WAV at 16 kHz, 7 categories, about 60 s in all),
 * with the tokenize job's default settings (mel-vq, K = 256, 25 k-means
 * iterations at most; the reconstruction metric is off). Goal: >= 200x real
 * time.
 *
 * Two figures: the whole job including the one-off codebook fit
 * (`seconds_audio_per_second`), and tokenizing alone with a fitted codebook
 * (decode + log-mel + GPU assignment, `tokenize_only_seconds_audio_per_second`),
 * which is what every later file costs.
 *
 * Run: `deno run -A bench/tokenize.ts [--seconds N]`.
 *
 * @module
 */
import { join } from "node:path";
import { SYNTH_CATEGORIES, synthesizeClip } from "../jobs/synth.ts";
import { job as tokenizeJob, TokenizeParams } from "../jobs/tokenize.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import type { ArtifactRef } from "../lib/artifacts/mod.ts";
import type { JobContext } from "../lib/pipeline/job.ts";

/** What {@link benchTokenize} measured. */
export interface TokenizeBenchResult {
  /** Audio seconds per wall-clock second, whole job (decode → codebook fit → tokens). */
  seconds_audio_per_second: number;
  /** Audio seconds per second for decode + log-mel + GPU assignment (codebook already fitted). */
  tokenize_only_seconds_audio_per_second: number;
  /** The goal, 200 (x real time). */
  goal: number;
  seconds_audio: number;
  files: number;
  wall_s: number;
  /** Seconds per phase: read + hash + decode + resample, log-mel, k-means fit, GPU assignment. */
  phases: { decode: number; features: number; kmeans: number; assign: number };
  kmeans_iterations: number;
  adapter: string;
}

/** Writes about `seconds` of synth clips as WAVs and a scan-style `files.json`; returns its ref. */
async function generateScannedSet(dir: string, seconds: number): Promise<ArtifactRef> {
  const rate = 16000;
  const root = join(dir, "audio");
  const files = [];
  const counts: Record<string, number> = {};
  let total = 0;
  for (let i = 0; total < seconds; i++) {
    const category = SYNTH_CATEGORIES[i % SYNTH_CATEGORIES.length];
    const index = Math.floor(i / SYNTH_CATEGORIES.length);
    const samples = synthesizeClip(category, index, 1, rate, [0.5, 2]);
    const bytes = encodeWav([samples], rate, { bits: 16 }) as Uint8Array<ArrayBuffer>;
    const rel = `${category}/${category}_${String(index).padStart(3, "0")}.wav`;
    await Deno.mkdir(join(root, category), { recursive: true });
    await Deno.writeFile(join(root, rel), bytes);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    files.push({
      path: rel,
      category,
      format: "wav",
      sample_rate: rate,
      channels: 1,
      duration_s: samples.length / rate,
      sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    });
    counts[category] = (counts[category] ?? 0) + 1;
    total += samples.length / rate;
  }
  files.sort((a, b) => a.path < b.path ? -1 : 1);
  const scanDir = join(dir, "scan");
  await Deno.mkdir(scanDir);
  await Deno.writeTextFile(
    join(scanDir, "files.json"),
    JSON.stringify({ root, files, categories: counts }),
  );
  return {
    key: "bench-scan",
    dir: scanDir,
    manifest: {
      key: "bench-scan",
      job: "scan",
      job_version: "0",
      code_hash: "",
      step: "scan",
      params: {},
      inputs: {},
      sources: {},
      files: [],
      started_at: "",
      finished_at: "",
      environment: {},
    },
  };
}

/** Runs the tokenize job on about `seconds` of generated audio and reports throughput. */
export async function benchTokenize(seconds = 60): Promise<TokenizeBenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "samout-bench-tokenize-" });
  try {
    const scan = await generateScannedSet(dir, seconds);
    const out = join(dir, "out");
    await Deno.mkdir(out);
    const ctx: JobContext<TokenizeParams> = {
      step: "tokenize",
      pipelineFile: "bench",
      params: TokenizeParams.parse({ reconstruction_files: 0 }),
      inputs: { scan },
      seed: 1,
      outDir: out,
      workDir: out,
      progress: { start() {}, update() {}, finish() {} },
      log: () => {},
      signal: new AbortController().signal,
    };
    // Warm up: compile the kernel, load the FFT plan (not timed).
    const { requestGpu } = await import("../lib/gpu/device.ts");
    const { assignNearest } = await import("../lib/gpu/kmeans.ts");
    const gpu = await requestGpu();
    await assignNearest(gpu, new Float32Array(40 * 64), new Float32Array(40 * 256), 40, 256);

    const t0 = performance.now();
    const result = await tokenizeJob.run(ctx);
    const wall = (performance.now() - t0) / 1000;
    const m = (result ?? {}).metrics as Record<string, number>;
    const phases = {
      decode: m.seconds_decode,
      features: m.seconds_features,
      kmeans: m.seconds_kmeans,
      assign: m.seconds_assign,
    };
    const res: TokenizeBenchResult = {
      seconds_audio_per_second: m.seconds_audio / wall,
      tokenize_only_seconds_audio_per_second: m.seconds_audio /
        (phases.decode + phases.features + phases.assign),
      goal: 200,
      seconds_audio: m.seconds_audio,
      files: m.files,
      wall_s: wall,
      phases,
      kmeans_iterations: m.kmeans_iterations,
      adapter: gpu.adapterDescription,
    };
    const x = (v: number) => `${v.toFixed(0)}x real time`;
    console.error(
      `tokenize: ${
        res.seconds_audio.toFixed(1)
      } s of audio in ${res.files} files on ${res.adapter}\n` +
        `  whole job (incl. k-means fit, ${res.kmeans_iterations} iterations): ` +
        `${wall.toFixed(2)} s = ${x(res.seconds_audio_per_second)} ` +
        `(goal ${res.goal}x: ${res.seconds_audio_per_second >= res.goal ? "met" : "NOT met"})\n` +
        `  tokenize only (decode + log-mel + GPU assign): ` +
        `${x(res.tokenize_only_seconds_audio_per_second)} ` +
        `(goal ${res.goal}x: ${
          res.tokenize_only_seconds_audio_per_second >= res.goal ? "met" : "NOT met"
        })\n` +
        `  phases (s): decode ${phases.decode.toFixed(3)}, log-mel ${
          phases.features.toFixed(3)
        }, ` +
        `k-means ${phases.kmeans.toFixed(3)}, assign ${phases.assign.toFixed(3)}`,
    );
    return res;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--seconds");
  const seconds = i >= 0 ? Number(Deno.args[i + 1]) : 60;
  console.log(JSON.stringify(await benchTokenize(seconds), null, 2));
}
