import { join } from "node:path";
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
  logs: string[] = [],
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
    log(message) {
      logs.push(message);
    },
    signal: new AbortController().signal,
  };
}

/**
 * Runs scan with `params`; returns the outputs and the log lines, or throws
 * what the job threw (after copying the log lines into `logs` when given).
 */
async function runScan(
  params: Record<string, unknown>,
  inputs: Record<string, ArtifactRef> = {},
  logs: string[] = [],
) {
  const out = await Deno.makeTempDir({ prefix: "scan_out_" });
  try {
    const ctx = context(ScanParams.parse(params), out, inputs, logs);
    const result = await job.run(ctx) as JobResult;
    const listing: ScanListing = JSON.parse(await Deno.readTextFile(join(out, "files.json")));
    const rejects: ScanReject[] = JSON.parse(await Deno.readTextFile(join(out, "rejects.json")));
    return { listing, rejects, metrics: result.metrics!, logs };
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
    assertEquals(listing.source, { param: "root", path: root });
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
      "coin/readme.txt": "unsupported-extension",
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
      "unsupported-extension": 1,
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
    // An input artifact's folder is recorded by its slot, with no path to its folder.
    assertEquals(listing.source, { input: "audio", path: "audio" });
    assertEquals(listing.categories, { blip: 3, jump: 3 });
    assertEquals(listing.files[0].path, "blip/blip_000.wav");
    assertEquals(rejects, []);
  } finally {
    await Deno.remove(synthOut, { recursive: true });
  }
});

/** Three good files in each of `categories` (`<category>/f<i>.wav`, distinct tones). */
async function makeTree(categories: string[], perCategory = 3): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "scan_root_" });
  let hz = 300;
  for (const c of categories) {
    for (let i = 0; i < perCategory; i++) await write(root, `${c}/f${i}.wav`, tone(0.2, hz += 37));
  }
  return root;
}

Deno.test("scan: a link to a category folder does not take the folder's place; the log names the link", async () => {
  const root = await makeTree(["cat_a", "cat_b"]);
  try {
    // "alias_b" sorts before "cat_b": the walk meets the link first.
    await Deno.symlink("cat_b", join(root, "alias_b"));
    const { listing, rejects, metrics, logs } = await runScan({ root });
    assertEquals(listing.categories, { cat_a: 3, cat_b: 3 });
    assert(listing.files.every((f) => !f.path.startsWith("alias_b/")), "no file under the link");
    assertEquals(rejects, []);
    assertEquals(metrics.folders_revisited, 1);
    const line = logs.find((l) => l.startsWith("not entering"));
    assertStringIncludes(line ?? "(no such log line)", "alias_b (a link to cat_b)");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: a file linked into another category is rejected from both as conflicting-category", async () => {
  const root = await makeTree(["cat_a", "cat_b"], 4);
  try {
    await Deno.symlink("../cat_b/f0.wav", join(root, "cat_a/link_to_b.wav"));
    const { listing, rejects } = await runScan({ root });
    assertEquals(listing.categories, { cat_a: 4, cat_b: 3 });
    assertEquals(rejects.map((r) => [r.path, r.reason]), [
      ["cat_a/link_to_b.wav", "conflicting-category"],
      ["cat_b/f0.wav", "conflicting-category"],
    ]);
    assertStringIncludes(rejects[0].detail, 'cat_b/f0.wav, in category "cat_b"');
    assertStringIncludes(rejects[1].detail, 'cat_a/link_to_b.wav, in category "cat_a"');
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: within one category the real path is kept and a link to it is the duplicate", async () => {
  const root = await makeTree(["cat_a", "cat_b"]);
  try {
    // "a_link.wav" sorts before "f0.wav", the file it points to.
    await Deno.symlink("f0.wav", join(root, "cat_b/a_link.wav"));
    const { listing, rejects } = await runScan({ root });
    assert(listing.files.some((f) => f.path === "cat_b/f0.wav"), "the real path is listed");
    assertEquals(rejects.map((r) => [r.path, r.reason, r.detail]), [
      ["cat_b/a_link.wav", "duplicate", "same file as cat_b/f0.wav"],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: links to a file and to a folder outside the root are scanned as before", async () => {
  const root = await makeTree(["cat_a", "cat_b"]);
  const outside = await Deno.makeTempDir({ prefix: "scan_outside_" });
  try {
    for (let i = 0; i < 3; i++) await write(outside, `more/m${i}.wav`, tone(0.2, 2000 + 50 * i));
    await write(outside, "one.wav", tone(0.2, 2500));
    await Deno.symlink(join(outside, "more"), join(root, "cat_c"));
    await Deno.symlink(join(outside, "one.wav"), join(root, "cat_a/ext.wav"));
    const { listing, rejects } = await runScan({ root });
    assertEquals(listing.categories, { cat_a: 4, cat_b: 3, cat_c: 3 });
    assert(listing.files.some((f) => f.path === "cat_a/ext.wav"));
    assert(listing.files.some((f) => f.path === "cat_c/m0.wav"));
    assertEquals(rejects, []);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("scan: too few usable files names every short category, its usable and rejected counts and the rejects", async () => {
  const root = await makeTree(["big"], 4);
  try {
    await write(root, "one/o0.wav", tone(0.2, 900));
    await write(root, "three/t0.wav", tone(0.2, 1000));
    await write(root, "three/t1.wav", tone(0.2, 1100));
    await write(root, "three/empty.wav", new Uint8Array(0));
    const logs: string[] = [];
    const e = await assertRejects(() => runScan({ root }, {}, logs), "2 categories");
    assert(e instanceof UserError);
    assertStringIncludes(e.message, '"one" has 1 usable file');
    assertStringIncludes(e.message, '"three" has 2 usable files (1 rejected)');
    assertStringIncludes(e.message, "split needs at least 3");
    assertEquals(e.location.file, root);
    assertStringIncludes(e.found!, "one: 1 usable, 0 rejected");
    assertStringIncludes(
      e.found!,
      "three: 2 usable, 1 rejected [three/empty.wav: empty (0 bytes)]",
    );
    // Lowering min_files_per_category (2 already) cannot help; 1 file is too few for test_fraction 0.
    assert(!e.hint!.includes("min_files_per_category"), e.hint);
    assert(!e.hint!.includes("test_fraction"), e.hint);
    assertStringIncludes(e.hint!, '"one", "three"');
    // The rejects reach the log before the step fails (rejects.json is then never written).
    assertStringIncludes(logs.join("\n"), "three/empty.wav: empty (0 bytes)");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: the too-few-files hint suggests test_fraction 0 or a lower min_files_per_category only where that helps", async () => {
  const root = await makeTree(["a", "b"], 4);
  try {
    await write(root, "c/c0.wav", tone(0.2, 900));
    await write(root, "c/c1.wav", tone(0.2, 950));
    const split = await assertRejects(() => runScan({ root }), 'category "c" has 2 usable files');
    assertStringIncludes((split as UserError).hint!, "set test_fraction to 0");
    assert(!(split as UserError).hint!.includes("min_files_per_category"));
    // With test_fraction 0 two files are enough for the split; min_files_per_category 4 is not met.
    const min = await assertRejects(
      () => runScan({ root, test_fraction: 0, min_files_per_category: 4 }),
      "min_files_per_category is 4",
    );
    assertStringIncludes((min as UserError).hint!, "lower min_files_per_category to 2");
    assertEquals((min as UserError).location.field, "min_files_per_category");
    // min_files_per_category 3 with a test share: lowering it cannot go below the split's 3.
    const both = await assertRejects(() => runScan({ root, min_files_per_category: 3 }));
    assert(!(both as UserError).hint!.includes("lower min_files_per_category"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: files with other extensions are listed as unsupported-extension and logged, not failed on", async () => {
  const root = await makeTree(["a", "b"]);
  try {
    await write(root, "a/clip.aiff", "FORM....AIFF");
    await write(root, "b/notes.txt", "notes");
    await write(root, "b/README", "no extension");
    await write(root, "b/.DS_Store", "hidden: skipped silently");
    const { rejects, metrics, logs } = await runScan({ root, on_reject: "fail" });
    assertEquals(rejects.map((r) => [r.path, r.reason]), [
      ["a/clip.aiff", "unsupported-extension"],
      ["b/README", "unsupported-extension"],
      ["b/notes.txt", "unsupported-extension"],
    ]);
    assertStringIncludes(rejects[0].detail, '".aiff"');
    assertStringIncludes(rejects[0].detail, ".wav, .flac, .ogg, .mp3");
    assertStringIncludes(rejects[1].detail, "no extension");
    assertEquals(metrics.hidden_skipped, 1);
    assertEquals(metrics.ignored_files, 3);
    const line = logs.find((l) => l.includes("other extensions"));
    assertStringIncludes(line ?? "(no such log line)", "3 files");
    assertStringIncludes(line!, "a/clip.aiff");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scan: the log lists rejected files with their reasons and says where rejects.json is", async () => {
  const root = await makeTree(["a", "b"]);
  try {
    for (let i = 0; i < 12; i++) await write(root, `a/bad${String(i).padStart(2, "0")}.wav`, "x");
    const { logs } = await runScan({ root });
    assertStringIncludes(logs.join("\n"), "12 files rejected (the first 10):");
    assert(logs.some((l) => l.startsWith("  a/bad00.wav: not-audio (")), logs.join("\n"));
    assertEquals(logs.filter((l) => l.startsWith("  a/bad")).length, 10);
    assertStringIncludes(logs[logs.length - 1], "rejects.json");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
