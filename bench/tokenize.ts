/**
 * Tokenize throughput: seconds of audio turned into tokens per wall-clock
 * second, from reading and decoding the files to token ids, on a generated
 * set of synth clips (16-bit WAV at 16 kHz, 7 categories, about 60 s in all),
 * with the tokenize job's default settings (mel-vq, K = 256, 25 k-means
 * iterations at most; the reconstruction metric is off). Goal: >= 200x real
 * time.
 *
 * Two figures, each the median of `--runs` runs (the machine is shared and
 * single runs vary by +-30%): the whole job including the one-off codebook
 * fit (`seconds_audio_per_second`), and the encode path alone with the
 * codebook that run fitted (read + hash + decode + log-mel + GPU assignment,
 * `tokenize_only_seconds_audio_per_second`), which is what every later file
 * costs; each with its phases and its ratio to the goal. GPU kernels are
 * compiled before the timed runs (once per process); module imports inside
 * the job are timed.
 *
 * Run: `deno run -A bench/tokenize.ts [--seconds N] [--runs N]` (5 runs by default).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { median, positiveInt, positiveNumber } from "./common.ts";
import { SYNTH_CATEGORIES, synthesizeClip } from "../jobs/synth.ts";
import { job as tokenizeJob, TokenizeParams } from "../jobs/tokenize.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import type { ArtifactRef } from "../lib/artifacts/mod.ts";
import type { JobContext } from "../lib/pipeline/job.ts";

/** One run's figures. */
export interface TokenizeRun {
  /** Wall-clock seconds of the whole job. */
  wall_s: number;
  /** Audio seconds per wall-clock second, whole job (decode → codebook fit → tokens). */
  seconds_audio_per_second: number;
  /**
   * The job's phases in seconds: read + hash (this thread), decode + resample +
   * log-mel (the rest of that phase's wall time), the k-means fit (including
   * the assignment of the frames outside it), and everything else (scan file,
   * split, imports, writing the artifact).
   */
  phases: { read: number; features: number; kmeans: number; other: number };
  /** Wall-clock seconds of the encode path with the fitted codebook. */
  encode_wall_s: number;
  /** Audio seconds per second of the encode path (read → decode → log-mel → GPU assignment). */
  encode_seconds_audio_per_second: number;
  /** The encode path's phases in seconds: read + decode + log-mel, GPU assignment. */
  encode_phases: { features: number; assign: number };
  kmeans_iterations: number;
}

/** What {@link benchTokenize} measured: medians over the runs, and every run. */
export interface TokenizeBenchResult {
  /** Median audio seconds per second, whole job (decode → codebook fit → tokens). */
  seconds_audio_per_second: number;
  /** Median audio seconds per second of the encode path (a fitted codebook: what every later file costs). */
  tokenize_only_seconds_audio_per_second: number;
  /** The goal, 200 (x real time). */
  goal: number;
  /** Median whole-job figure / goal. */
  ratio: number;
  /** Median encode-path figure / goal. */
  tokenize_only_ratio: number;
  seconds_audio: number;
  files: number;
  runs: TokenizeRun[];
  adapter: string;
  /** The machine's 1-minute load average before the runs (other processes share the 2 cores). */
  load_average: number;
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
      // The scan job's default sides, 70/15/15: the codebook is fit on the training files.
      split: i % 20 < 14 ? "train" : i % 20 < 17 ? "val" : "test",
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
    // As a scan of this folder given as `root` (absolute, as a user may write it) records it.
    JSON.stringify({ source: { param: "root", path: root }, files, categories: counts }),
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

/**
 * Runs the tokenize job `runs` times on about `seconds` of generated audio,
 * and after each run the encode path alone with the codebook it fitted;
 * reports the medians (the machine is shared, so single runs are noisy).
 */
export async function benchTokenize(seconds = 60, runs = 5): Promise<TokenizeBenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "samout-bench-tokenize-" });
  try {
    const scan = await generateScannedSet(dir, seconds);
    const params = TokenizeParams.parse({ reconstruction_files: 0 });
    // Warm up: compile the kernels (not timed; a pipeline is compiled once per process).
    const { requestGpu } = await import("../lib/gpu/device.ts");
    const { assignNearest, fitKMeans } = await import("../lib/gpu/kmeans.ts");
    const { extractFeatures } = await import("../lib/audio/features.ts");
    const { createHash } = await import("node:crypto");
    const gpu = await requestGpu();
    const warm = Float32Array.from({ length: 40 * 300 }, (_, i) => Math.sin(i));
    await fitKMeans(gpu, warm, 40, 256, { seed: 1, iterations: 2, tolerance: 0 });
    await assignNearest(gpu, warm, warm.subarray(0, 40 * 256), 40, 256);
    const listing = JSON.parse(await Deno.readTextFile(join(scan.dir, "files.json"))) as {
      source: { path: string };
      files: { path: string }[];
    };
    const paths = listing.files.map((f) => join(listing.source.path, f.path));

    const loadAverage = Deno.loadavg()[0];
    const done: TokenizeRun[] = [];
    let secondsAudio = 0;
    for (let r = 0; r < runs; r++) {
      const out = join(dir, `out-${r}`);
      await Deno.mkdir(out);
      const ctx: JobContext<TokenizeParams> = {
        step: "tokenize",
        pipelineFile: "bench",
        params,
        inputs: { scan },
        seed: 1,
        outDir: out,
        workDir: out,
        progress: { start() {}, update() {}, finish() {} },
        log: () => {},
        signal: new AbortController().signal,
      };
      const t0 = performance.now();
      const result = await tokenizeJob.run(ctx);
      const wall = (performance.now() - t0) / 1000;
      const m = (result ?? {}).metrics as Record<string, number>;
      secondsAudio = m.seconds_audio;
      const phases = {
        read: m.seconds_decode,
        features: m.seconds_features,
        kmeans: m.seconds_kmeans + m.seconds_assign,
        other: 0,
      };
      phases.other = Math.max(0, wall - phases.read - phases.features - phases.kmeans);

      // The encode path: read (and hash, as the job does) → features → nearest code.
      const bytes = await Deno.readFile(join(out, "codebook.f32"));
      const codebook = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const e0 = performance.now();
      const feats = await extractFeatures(
        paths.length,
        async (i) => {
          const b = await Deno.readFile(paths[i]);
          createHash("sha256").update(b).digest("hex");
          return { bytes: b, path: paths[i] };
        },
        { rate: params.mel.sample_rate, mel: params.mel },
        () => false,
        { workers: 0 },
      );
      const e1 = performance.now();
      const frames = new Float32Array(feats.reduce((n, f) => n + f.logMel!.length, 0));
      let o = 0;
      for (const f of feats) {
        frames.set(f.logMel!, o);
        o += f.logMel!.length;
      }
      await assignNearest(gpu, frames, codebook, params.mel.n_mels, params.codebook_size);
      const e2 = performance.now();
      const encodeWall = (e2 - e0) / 1000;
      done.push({
        wall_s: wall,
        seconds_audio_per_second: m.seconds_audio / wall,
        phases,
        encode_wall_s: encodeWall,
        encode_seconds_audio_per_second: m.seconds_audio / encodeWall,
        encode_phases: { features: (e1 - e0) / 1000, assign: (e2 - e1) / 1000 },
        kmeans_iterations: m.kmeans_iterations,
      });
    }
    const goal = 200;
    const whole = median(done.map((d) => d.seconds_audio_per_second));
    const encode = median(done.map((d) => d.encode_seconds_audio_per_second));
    const res: TokenizeBenchResult = {
      seconds_audio_per_second: whole,
      tokenize_only_seconds_audio_per_second: encode,
      goal,
      ratio: whole / goal,
      tokenize_only_ratio: encode / goal,
      seconds_audio: secondsAudio,
      files: paths.length,
      runs: done,
      adapter: gpu.adapterDescription,
      load_average: loadAverage,
    };
    const x = (v: number) => `${v.toFixed(0)}x real time`;
    const f3 = (v: number) => v.toFixed(3);
    const verdict = (v: number) =>
      `${(v / goal).toFixed(2)} of the ${goal}x goal: ${v >= goal ? "met" : "NOT met"}`;
    const lines = [
      `tokenize: ${
        secondsAudio.toFixed(1)
      } s of audio in ${paths.length} files on ${res.adapter}, ` +
      `${runs} runs (median), load average ${loadAverage.toFixed(2)} before`,
      `  whole job (decode → k-means fit → tokens): ${x(whole)} (${verdict(whole)})`,
      `  encode path (fitted codebook: read → log-mel → GPU assign): ${x(encode)} ` +
      `(${verdict(encode)})`,
      `  first run (cold JIT, as a pipeline's one tokenize step runs): ` +
      `${x(done[0].seconds_audio_per_second)}`,
    ];
    done.forEach((d, i) => {
      const p = d.phases, e = d.encode_phases;
      lines.push(
        `  run ${i + 1}: job ${f3(d.wall_s)} s = ${x(d.seconds_audio_per_second)} ` +
          `[read ${f3(p.read)}, decode+log-mel ${f3(p.features)}, ` +
          `k-means ${f3(p.kmeans)} (${d.kmeans_iterations} it.), other ${f3(p.other)}]; ` +
          `encode ${f3(d.encode_wall_s)} s = ${x(d.encode_seconds_audio_per_second)} ` +
          `[read+log-mel ${f3(e.features)}, assign ${f3(e.assign)}]`,
      );
    });
    console.error(lines.join("\n"));
    return res;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const program = new Command()
    .name("bench/tokenize.ts")
    .description("tokenize throughput: seconds of audio turned into tokens per wall-clock second")
    .option("--seconds <n>", "seconds of audio (default 60)", positiveNumber("--seconds"), 60)
    .option("--runs <n>", "runs, of which the median is kept (default 5)", positiveInt("--runs"), 5)
    .action(async (o) => {
      console.log(JSON.stringify(await benchTokenize(o.seconds, o.runs), null, 2));
    });
  await program.parseAsync(Deno.args, { from: "user" });
}
