import { join } from "node:path";
import { job, SYNTH_CATEGORIES, synthesizeClip, SynthParams } from "../jobs/synth.ts";
import { decodeWav } from "../lib/audio/wav.ts";
import type { JobContext, JobResult } from "../lib/pipeline/job.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "./assert.ts";

async function runSynth(
  params: Record<string, unknown>,
  seed = 1,
): Promise<{ dir: string; result: JobResult | void }> {
  const dir = await Deno.makeTempDir({ prefix: "synth_test_" });
  const ctx: JobContext<SynthParams> = {
    step: "synth",
    pipelineFile: "test.yaml",
    params: SynthParams.parse(params),
    inputs: {},
    seed,
    outDir: dir,
    workDir: dir,
    progress: { start() {}, update() {}, finish() {} },
    log() {},
    signal: new AbortController().signal,
  };
  return { dir, result: await job.run(ctx) };
}

/** Relative path -> bytes of every file under `dir`. */
async function readTree(dir: string, rel = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const names = [];
  for await (const e of Deno.readDir(join(dir, rel))) names.push(e);
  for (const e of names.sort((a, b) => a.name < b.name ? -1 : 1)) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await readTree(dir, path)) out.set(k, v); }
    else out.set(path, await Deno.readFile(join(dir, path)));
  }
  return out;
}

Deno.test("synth: the same seed gives byte-identical files", async () => {
  const params = { clips_per_category: 3 };
  const a = await runSynth(params, 42);
  const b = await runSynth(params, 42);
  try {
    const ta = await readTree(a.dir), tb = await readTree(b.dir);
    assertEquals(ta.size, SYNTH_CATEGORIES.length * 3);
    assertEquals([...ta.keys()], [...tb.keys()]);
    for (const [path, bytes] of ta) assertEquals(bytes, tb.get(path), path);
    assertEquals(a.result, b.result);
  } finally {
    await Deno.remove(a.dir, { recursive: true });
    await Deno.remove(b.dir, { recursive: true });
  }
});

Deno.test("synth: writes audio/<category>/<category>_NNN.wav as 16-bit mono at sample_rate", async () => {
  const { dir, result } = await runSynth({
    categories: ["coin", "explosion"],
    clips_per_category: 2,
    sample_rate: 22050,
  });
  try {
    const tree = await readTree(dir);
    assertEquals([...tree.keys()], [
      "audio/coin/coin_000.wav",
      "audio/coin/coin_001.wav",
      "audio/explosion/explosion_000.wav",
      "audio/explosion/explosion_001.wav",
    ]);
    let seconds = 0;
    for (const [path, bytes] of tree) {
      const wav = decodeWav(bytes, path);
      assertEquals([wav.sampleRate, wav.bits, wav.float, wav.channels.length], [
        22050,
        16,
        false,
        1,
      ]);
      const peak = wav.channels[0].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assert(peak >= 0.49 && peak <= 0.91, `${path}: peak ${peak}, expected 0.5-0.9`);
      seconds += wav.channels[0].length / 22050;
    }
    const metrics = (result as JobResult).metrics!;
    assertEquals(metrics.clips, 4);
    assertEquals(metrics.categories, { coin: 2, explosion: 2 });
    assert(Math.abs((metrics.total_duration_s as number) - seconds) < 1e-3, "total duration");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synth: a clip depends only on seed, category and index", () => {
  const a = synthesizeClip("laser", 3, 9, 16000);
  assertEquals(synthesizeClip("laser", 3, 9, 16000), a);
  assertNotEquals(synthesizeClip("laser", 3, 10, 16000), a, "another seed");
  assertNotEquals(synthesizeClip("laser", 4, 9, 16000), a, "another index");
});

Deno.test("synth: clip lengths are scaled into [min_duration_s, max_duration_s]", () => {
  for (const category of SYNTH_CATEGORIES) {
    for (let i = 0; i < 5; i++) {
      const n = synthesizeClip(category, i, 3, 8000, [0.3, 0.4]).length;
      assert(n >= 0.3 * 8000 - 1 && n <= 0.4 * 8000 + 1, `${category} ${i}: ${n} frames`);
    }
  }
});

Deno.test("synth: rejects unknown keys, repeated categories and min > max duration", () => {
  assertThrows(() => SynthParams.parse({ clip_per_category: 3 }), "clip_per_category");
  assertThrows(() => SynthParams.parse({ categories: ["coin", "coin"] }), "must not repeat");
  assertThrows(
    () => SynthParams.parse({ min_duration_s: 2, max_duration_s: 1 }),
    "must not exceed",
  );
  assertThrows(() => SynthParams.parse({ categories: ["meow"] }));
});

/** Five crude features: log length, log zero-crossing rate, pitch slope, periodicity, fade. */
function features(x: Float32Array, sr: number): number[] {
  const n = x.length;
  const zcr = (a: number, b: number) => {
    let c = 0;
    for (let i = a + 1; i < b; i++) if ((x[i - 1] < 0) !== (x[i] < 0)) c++;
    return (c + 1) / ((b - a) / sr);
  };
  const third = Math.floor(n / 3);
  const w = Math.min(1024, Math.floor(n / 2)), s0 = Math.floor((n - w) / 2);
  let energy = 0;
  for (let i = 0; i < w; i++) energy += x[s0 + i] ** 2;
  let periodicity = 0;
  for (let lag = 8; lag < Math.min(400, w / 2); lag++) {
    let c = 0;
    for (let i = 0; i < w - lag; i++) c += x[s0 + i] * x[s0 + i + lag];
    periodicity = Math.max(periodicity, c / (energy + 1e-9));
  }
  const rms = (k: number) => {
    const a = Math.floor(k * n / 4), b = Math.floor((k + 1) * n / 4);
    let s = 0;
    for (let i = a; i < b; i++) s += x[i] ** 2;
    return Math.sqrt(s / Math.max(1, b - a)) + 1e-6;
  };
  return [
    Math.log(n / sr),
    Math.log(zcr(0, n)),
    Math.log(zcr(2 * third, n) / zcr(0, third)),
    periodicity,
    Math.log(rms(3) / rms(0)),
  ];
}

Deno.test("synth: categories are distinct enough for a nearest-centroid classifier", () => {
  const sr = 16000;
  const train: { c: number; f: number[] }[] = [], test: typeof train = [];
  SYNTH_CATEGORIES.forEach((category, c) => {
    for (let i = 0; i < 16; i++) {
      (i < 8 ? train : test).push({ c, f: features(synthesizeClip(category, i, 5, sr), sr) });
    }
  });
  const d = train[0].f.length;
  const mean = Array.from({ length: d }, (_, k) => train.reduce((s, t) => s + t.f[k], 0) / 56);
  const std = Array.from(
    { length: d },
    (_, k) => Math.sqrt(train.reduce((s, t) => s + (t.f[k] - mean[k]) ** 2, 0) / 56),
  );
  const z = (f: number[]) => f.map((v, k) => (v - mean[k]) / std[k]);
  const centroids = SYNTH_CATEGORIES.map((_, c) => {
    const rows = train.filter((t) => t.c === c).map((t) => z(t.f));
    return Array.from({ length: d }, (_, k) => rows.reduce((s, r) => s + r[k], 0) / rows.length);
  });
  let correct = 0;
  for (const t of test) {
    const f = z(t.f);
    const dist = centroids.map((m) => m.reduce((s, v, k) => s + (v - f[k]) ** 2, 0));
    if (dist.indexOf(Math.min(...dist)) === t.c) correct++;
  }
  // Chance is 1/7; the features are crude, the categories are not.
  assert(correct / test.length >= 0.85, `accuracy ${correct}/${test.length}, expected >= 85%`);
});
