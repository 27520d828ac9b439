import { basename, join } from "node:path";
import { job, type ScanListing, ScanParams, type ScanReject } from "../jobs/scan.ts";
import { job as synthJob, SynthParams } from "../jobs/synth.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import type { ArtifactRef } from "../lib/artifacts/mod.ts";
import { UserError } from "../lib/errors/mod.ts";
import type { JobContext, JobResult } from "../lib/pipeline/job.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";

const FIXTURES = new URL("./fixtures/audio/", import.meta.url);

function context<P>(
  params: P,
  outDir: string,
  inputs: Record<string, ArtifactRef> = {},
): JobContext<P> {
  return {
    step: "scan",
    pipelineFile: "test.yaml",
    params,
    inputs,
    seed: 3,
    outDir,
    workDir: outDir,
    progress: { start() {}, update() {}, finish() {} },
    log() {},
    signal: new AbortController().signal,
  };
}

/** Runs scan with `params`; returns the outputs, or throws what the job threw. */
async function runScan(params: Record<string, unknown>, inputs: Record<string, ArtifactRef> = {}) {
  const out = await Deno.makeTempDir({ prefix: "scan_out_" });
  try {
    const result = await job.run(context(ScanParams.parse(params), out, inputs)) as JobResult;
    const listing: ScanListing = JSON.parse(await Deno.readTextFile(join(out, "files.json")));
    const rejects: ScanReject[] = JSON.parse(await Deno.readTextFile(join(out, "rejects.json")));
    return { listing, rejects, metrics: result.metrics! };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

function tone(seconds: number, hz: number, amplitude = 0.5, rate = 8000): Uint8Array {
  const x = Float32Array.from(
    { length: Math.round(seconds * rate) },
    (_, i) => amplitude * Math.sin(2 * Math.PI * hz * i / rate),
  );
  return encodeWav([x], rate, { bits: 16 });
}

async function write(root: string, rel: string, bytes: Uint8Array | string): Promise<void> {
  const path = join(root, rel);
  await Deno.mkdir(join(path, ".."), { recursive: true });
  if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
  else await Deno.writeFile(path, bytes);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const isRoot = Deno.uid() === 0;

/** A folder with good files in 2 categories and one of every kind of bad file. */
async function makeMessyTree(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  for (let i = 0; i < 3; i++) {
    await write(root, `coin/good${i}.wav`, tone(0.2, 600 + 100 * i));
    await write(root, `laser/good${i}.wav`, tone(0.3, 1500 - 100 * i));
  }
  await write(root, "coin/extra/deep.wav", tone(0.25, 900));
  await Deno.copyFile(new URL("tone440_mono_8k.flac", FIXTURES), join(root, "coin/tone.flac"));
  await Deno.copyFile(new URL("tone440_mono_16k.mp3", FIXTURES), join(root, "laser/tone.MP3"));
  await write(root, "laser/truncated.wav", tone(0.2, 700).subarray(0, 1000));
  await write(root, "laser/notes.wav", "these are my notes, not audio\n");
  await write(root, "coin/empty.wav", new Uint8Array(0));
  await write(root, "coin/silent.wav", tone(0.3, 500, 0));
  await write(root, "coin/short.wav", tone(0.01, 500));
  await write(root, "coin/long.wav", tone(2, 500));
  await write(root, "coin/.hidden.wav", tone(0.2, 500));
  await write(root, ".cache/x.wav", tone(0.2, 500));
  await write(root, "coin/readme.txt", "not listed: the extension is not an audio one");
  await write(root, "top.wav", tone(0.2, 500));
  await Deno.symlink("..", join(root, "coin/loop")); // a link back to the root
  await Deno.symlink(".", join(root, "laser/self")); // a link to its own folder
  await Deno.symlink("good0.wav", join(root, "laser/link.wav"));
  await Deno.symlink("missing.wav", join(root, "coin/broken.wav"));
  await write(root, "coin/locked.wav", tone(0.2, 500));
  await Deno.chmod(join(root, "coin/locked.wav"), 0o000);
  return root;
}

Deno.test("scan: lists good files, and rejects every kind of bad file with its reason", async () => {
  const root = await makeMessyTree();
  try {
    const { listing, rejects, metrics } = await runScan({ root, max_duration_s: 1 });
    assertEquals(listing.root, root);
    const paths = listing.files.map((f) => f.path);
    const expectedPaths = [
      "coin/extra/deep.wav",
      "coin/good0.wav",
      "coin/good1.wav",
      "coin/good2.wav",
      "coin/tone.flac",
      "laser/good0.wav",
      "laser/good1.wav",
      "laser/good2.wav",
      "laser/tone.MP3",
    ];
    // Running as root, chmod 000 does not stop reading: the file is then simply good.
    if (isRoot) expectedPaths.splice(4, 0, "coin/locked.wav");
    assertEquals(paths, expectedPaths);
    assertEquals(listing.categories, { coin: isRoot ? 6 : 5, laser: 4 });
    const reasons = Object.fromEntries(rejects.map((r) => [r.path, r.reason]));
    const expectedReasons: Record<string, string> = {
      "coin/broken.wav": "unreadable",
      "coin/empty.wav": "empty",
      "coin/long.wav": "too-long",
      "coin/short.wav": "too-short",
      "coin/silent.wav": "silent",
      "laser/link.wav": "duplicate",
      "laser/notes.wav": "not-audio",
      "laser/truncated.wav": "cannot-decode",
      "top.wav": "no-category",
    };
    if (!isRoot) expectedReasons["coin/locked.wav"] = "unreadable";
    assertEquals(reasons, expectedReasons);
    assertStringIncludes(
      rejects.find((r) => r.path === "laser/truncated.wav")!.detail,
      "truncated",
    );
    assertStringIncludes(
      rejects.find((r) => r.path === "laser/link.wav")!.detail,
      "laser/good0.wav",
    );
    assertEquals(metrics.rejects_by_reason, {
      "cannot-decode": 1,
      duplicate: 1,
      empty: 1,
      "no-category": 1,
      "not-audio": 1,
      silent: 1,
      "too-long": 1,
      "too-short": 1,
      unreadable: isRoot ? 1 : 2,
    });
    assertEquals(metrics.hidden_skipped, 2);
    assertEquals(metrics.ignored_files, 1);
    assertEquals(metrics.folders_revisited, 2, "the two link loops");
    assertEquals(metrics.files, paths.length);
    assertEquals(
      (metrics.train_files as number) + (metrics.val_files as number) +
        (metrics.test_files as number),
      paths.length,
    );
  } finally {
    await Deno.chmod(join(root, "coin/locked.wav"), 0o644);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: records format, rate, channels, duration and the bytes' sha256", async () => {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  try {
    const wav = tone(0.25, 500, 0.5, 16000);
    await write(root, "a/one.wav", wav);
    await write(root, "a/two.wav", tone(0.5, 700));
    await Deno.mkdir(join(root, "b"));
    await Deno.copyFile(new URL("tone440_stereo_16k.flac", FIXTURES), join(root, "b/st.flac"));
    await Deno.copyFile(new URL("tone440_mono_16k.ogg", FIXTURES), join(root, "b/v.ogg"));
    const { listing, metrics } = await runScan({ root, test_fraction: 0 });
    const { split, ...first } = listing.files[0];
    assertEquals(first, {
      path: "a/one.wav",
      category: "a",
      format: "wav",
      sample_rate: 16000,
      channels: 1,
      duration_s: 0.25,
      sha256: await sha256(wav),
    });
    assert(split === "train" || split === "val", `split ${split}`);
    const flac = listing.files.find((f) => f.path === "b/st.flac")!;
    assertEquals([flac.format, flac.sample_rate, flac.channels, flac.duration_s], [
      "flac",
      16000,
      2,
      0.2,
    ]);
    assertEquals(listing.files.find((f) => f.path === "b/v.ogg")!.format, "ogg");
    assertEquals(metrics.total_duration_s, 0.25 + 0.5 + 0.2 + 0.5);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: fewer than two categories is an error naming the root and the count", async () => {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  try {
    for (let i = 0; i < 3; i++) await write(root, `coin/c${i}.wav`, tone(0.2, 500 + i * 50));
    const e = await assertRejects(() => runScan({ root }), "found 1 category");
    assert(e instanceof UserError);
    assertStringIncludes(e.message, root);
    assertStringIncludes(e.message, "(coin)");
    assertEquals(e.location.file, root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: a category with one usable file is an error naming it and the count", async () => {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  try {
    for (let i = 0; i < 3; i++) await write(root, `coin/c${i}.wav`, tone(0.2, 500 + i * 50));
    await write(root, "laser/l0.wav", tone(0.2, 900));
    await write(root, "laser/bad.wav", "oops");
    const e = await assertRejects(() => runScan({ root }), 'category "laser" has 1 usable file');
    assert(e instanceof UserError);
    assertStringIncludes(e.message, "(1 rejected)");
    assertEquals(e.location.file, join(root, "laser"));
    assertEquals(e.location.field, "min_files_per_category");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: on_reject fail stops with an error naming the rejected file", async () => {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  try {
    for (let i = 0; i < 2; i++) {
      await write(root, `coin/c${i}.wav`, tone(0.2, 500 + i * 50));
      await write(root, `laser/l${i}.wav`, tone(0.2, 900 + i * 50));
    }
    await write(root, "laser/quiet.wav", tone(0.2, 900, 0));
    assertEquals(
      (await runScan({ root, test_fraction: 0 })).rejects.map((r) => r.reason),
      ["silent"],
    );
    const e = await assertRejects(
      () => runScan({ root, on_reject: "fail", test_fraction: 0 }),
      '1 file rejected and on_reject is "fail"; first: laser/quiet.wav: silent',
    );
    assert(e instanceof UserError);
    assertEquals(e.location.file, join(root, "laser/quiet.wav"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: a missing root is an error on the root field", async () => {
  const e = await assertRejects(() => runScan({ root: "/nonexistent/sounds" }), "does not exist");
  assertEquals((e as UserError).location.field, "root");
});

Deno.test("scan: needs the audio input without root, and reads root as its source with it", () => {
  const withRoot = ScanParams.parse({ root: "sounds" });
  assertEquals(job.inputs(withRoot), []);
  assertEquals(job.sources!(withRoot), ["sounds"]);
  const withoutRoot = ScanParams.parse({});
  assertEquals(job.inputs(withoutRoot), ["audio"]);
  assertEquals(job.sources!(withoutRoot), []);
});

Deno.test("scan: rejects unknown keys and bad limits", () => {
  for (
    const bad of [
      { rooot: "x" },
      { min_duration_s: 2, max_duration_s: 1 },
      { val_fraction: 1 },
      { min_files_per_category: 1 },
      { on_reject: "ignore" },
    ]
  ) {
    assert(!ScanParams.safeParse(bad).success, `expected ${JSON.stringify(bad)} to be rejected`);
  }
  assertEquals(ScanParams.parse({ extensions: [".WAV"] }).extensions, ["wav"]);
});

Deno.test("scan: reads synth's output through the audio input", async () => {
  const synthOut = await Deno.makeTempDir({ prefix: "synth_out_" });
  try {
    const params = SynthParams.parse({ categories: ["jump", "blip"], clips_per_category: 3 });
    await synthJob.run({ ...context(params, synthOut), step: "synth" });
    const ref = { key: "k", dir: synthOut } as ArtifactRef;
    const { listing, rejects } = await runScan({}, { audio: ref });
    // An input artifact's folder is recorded relative to the scan artifact's own folder.
    assertEquals(listing.root, `../${basename(synthOut)}/audio`);
    assertEquals(listing.categories, { blip: 3, jump: 3 });
    assertEquals(listing.files[0].path, "blip/blip_000.wav");
    assertEquals(rejects, []);
  } finally {
    await Deno.remove(synthOut, { recursive: true });
  }
});
