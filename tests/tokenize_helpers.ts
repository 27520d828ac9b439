/** Helpers for the tokenize and bucket job tests: a tiny scanned audio folder and job contexts. */
import { dirname, join } from "node:path";
import { encodeWav } from "../lib/audio/wav.ts";
import type { ArtifactRef } from "../lib/artifacts/mod.ts";
import type { JobContext, JobResult } from "../lib/pipeline/job.ts";
import { Random } from "../lib/random/mod.ts";
import { splitFiles } from "../lib/data/split.ts";

/** A clip to generate: category, length and a base tone (Hz); optionally its own rate and channels. */
export interface ClipSpec {
  category: string;
  seconds: number;
  hz: number;
  /** Sample rate of this file (default: the folder's rate). */
  rate?: number;
  /** Channels (default 1); extra channels carry the same tone at half level. */
  channels?: number;
}

/** Hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A tone with a little seeded noise and a slow tremolo, `[n]` f32. */
export function clipSamples(spec: ClipSpec, rate: number, seed: number): Float32Array {
  const r = new Random(seed, "tokenize-test-clip");
  const n = Math.round(spec.seconds * rate);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    x[i] = 0.4 * Math.sin(2 * Math.PI * spec.hz * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 3 * t)) +
      r.normal(0, 0.02);
  }
  return x;
}

/**
 * A fake scan artifact: WAVs under `<dir>/audio/<category>/` (`<dir>` stands
 * for the synth artifact the scan read), and `<dir>/scan/files.json` with
 * each file's split (splitFiles, seed 7, val 0.2).
 */
export async function makeScannedFolder(
  dir: string,
  clips: ClipSpec[],
  rate = 16000,
): Promise<ArtifactRef> {
  const root = join(dir, "audio");
  const files = [];
  const counts: Record<string, number> = {};
  for (let i = 0; i < clips.length; i++) {
    const c = clips[i];
    const n = counts[c.category] = (counts[c.category] ?? 0) + 1;
    const rel = `${c.category}/${c.category}_${String(n).padStart(3, "0")}.wav`;
    await Deno.mkdir(join(root, c.category), { recursive: true });
    const fileRate = c.rate ?? rate;
    const mono = clipSamples(c, fileRate, i);
    const channels = [mono];
    for (let ch = 1; ch < (c.channels ?? 1); ch++) channels.push(mono.map((v) => v / 2));
    const bytes = encodeWav(channels, fileRate, { bits: 16 }) as Uint8Array<ArrayBuffer>;
    await Deno.writeFile(join(root, rel), bytes);
    files.push({
      path: rel,
      category: c.category,
      format: "wav",
      sample_rate: fileRate,
      channels: channels.length,
      duration_s: mono.length / fileRate,
      sha256: await sha256Hex(bytes),
    });
  }
  files.sort((a, b) => a.path < b.path ? -1 : 1);
  // The split as the scan job records it (seed 7, a fifth in validation, no test split).
  const sides = splitFiles(files, 7, 0.2);
  const listed = files.map((f, i) => ({ ...f, split: sides[i] }));
  const scanDir = join(dir, "scan");
  await Deno.mkdir(scanDir, { recursive: true });
  await Deno.writeTextFile(
    join(scanDir, "files.json"),
    JSON.stringify(
      { source: { input: "audio", path: "audio" }, files: listed, categories: counts },
      null,
      1,
    ),
  );
  return fakeRef(scanDir, "scan");
}

/** An `ArtifactRef` for a directory (key and manifest are placeholders). */
export function fakeRef(dir: string, job: string): ArtifactRef {
  return {
    key: `test-${job}`,
    dir,
    manifest: {
      key: `test-${job}`,
      job,
      job_version: "0",
      code_hash: "",
      step: job,
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
 * A job context with quiet progress; `log` lines are collected in `logs`. A
 * `scan` input made by {@link makeScannedFolder} gets its audio input as
 * `upstream.scan.audio`: the scan folder's parent, in the synth layout.
 */
export function testContext<P>(
  step: string,
  params: P,
  inputs: Record<string, ArtifactRef>,
  outDir: string,
  seed = 7,
  logs: string[] = [],
): JobContext<P> {
  return {
    step,
    pipelineFile: "test.yaml",
    params,
    inputs,
    upstream: inputs.scan ? { scan: { audio: fakeRef(dirname(inputs.scan.dir), "synth") } } : {},
    seed,
    outDir,
    workDir: outDir,
    progress: { start() {}, update() {}, finish() {} },
    log: (m) => logs.push(m),
    signal: new AbortController().signal,
  };
}

/** Relative path → bytes of every file in `dir` (not recursive). */
export async function readFlatDir(dir: string): Promise<Map<string, Uint8Array>> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  names.sort();
  const out = new Map<string, Uint8Array>();
  for (const n of names) out.set(n, await Deno.readFile(join(dir, n)));
  return out;
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "samout-tokenize-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs a job's `run` in a fresh output directory under `dir`. */
export async function runJob<P>(
  job: { run(ctx: JobContext<P>): Promise<JobResult | void> },
  ctx: JobContext<P>,
): Promise<JobResult> {
  await Deno.mkdir(ctx.outDir, { recursive: true });
  return (await job.run(ctx)) ?? {};
}
