/**
 * `main.ts classify` on the tiny store of `cli_fixture.ts`: folders with no
 * audio, the truth taken from the nearest folder named after a category,
 * accuracy and the confusion matrix in `--json`, and scan's duration limits.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import { hasStackTrace, runCli, shown, tinyStore } from "./cli_fixture.ts";

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "cli-classify-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A 16-bit mono WAV of a tone, `seconds` long at 8 kHz. */
async function tone(path: string, seconds: number, hz = 440): Promise<void> {
  const n = Math.round(seconds * 8000);
  const x = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / 8000));
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, encodeWav([x], 8000, { bits: 16 }));
}

Deno.test("classify on a folder with no audio files: exit 1 naming the folder and the extensions", async () => {
  await using dir = await tempDir();
  const empty = join(dir.path, "empty");
  const notes = join(dir.path, "notes");
  await Deno.mkdir(empty);
  await Deno.mkdir(join(notes, "laser"), { recursive: true });
  await Deno.writeTextFile(join(notes, "laser", "readme.txt"), "no audio here");
  const clip = join(dir.path, "clip.wav");
  await tone(clip, 0.2);
  for (const folder of [empty, notes]) {
    // The folder is checked before the model is looked up (this one does not exist).
    const r = await runCli(["classify", "--model", "no-such-model", clip, folder]);
    assertEquals(r.code, 1, shown(r));
    assertStringIncludes(r.stderr, `file ${folder}: no audio files in the folder ${folder}`);
    assertStringIncludes(r.stderr, ".wav, .flac, .ogg, .mp3", shown(r));
    assert(!hasStackTrace(r), shown(r));
  }
});

Deno.test("classify: truth from the nearest category folder above the file; --json has accuracy and confusion; scan's too-short", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const root = join(dir.path, "data");
  // A wrapper folder above the category folders, a nested subfolder, a folder of no category.
  const coin = join(root, "wrapper", "coin", "a.wav");
  const laser = join(root, "wrapper", "laser", "take2", "b.wav");
  const other = join(root, "wrapper", "misc", "c.wav");
  const short = join(root, "wrapper", "coin", "short.wav");
  await tone(coin, 0.3, 300);
  await tone(laser, 0.25, 900);
  await tone(other, 0.2, 600);
  await tone(short, 0.002);
  const r = await runCli(["classify", "--model", "latest", "--store", t.store, "--json", root]);
  assertEquals(r.code, 1, `a rejected file makes the exit 1: ${shown(r)}`);
  assert(!hasStackTrace(r), shown(r));
  const json = JSON.parse(r.stdout);
  const byPath = new Map(json.files.map((f: { path: string }) => [f.path, f]));
  const file = (p: string) =>
    byPath.get(p) as { truth?: string; category?: string; rejected?: string };
  assertEquals(file(coin).truth, "coin");
  assertEquals(file(laser).truth, "laser", "the nearest category folder, not the first under root");
  assertEquals(file(other).truth, undefined);
  assertEquals(file(short).rejected, "too-short: 0.002 s, shorter than min_duration_s 0.05");
  const acc = json.accuracy;
  assertEquals(acc.judged, 2);
  assertEquals(acc.outside_categories, 1);
  assertEquals(acc.confusion.categories, t.categories);
  const counts = acc.confusion.counts as number[][];
  assertEquals(counts.flat().reduce((a, b) => a + b, 0), 2);
  assertEquals(counts[t.categories.indexOf("coin")].reduce((a, b) => a + b, 0), 1);
  assertEquals(counts[t.categories.indexOf("laser")].reduce((a, b) => a + b, 0), 1);
  const correct = [coin, laser].filter((p) => file(p).category === file(p).truth).length;
  assertEquals(acc.correct, correct);
  assertEquals(acc.accuracy, correct / 2);

  const text = await runCli(["classify", "--model", "latest", "--store", t.store, root]);
  assertStringIncludes(text.stdout, `(${correct}/2) over files in folders named after categories`);
  assertStringIncludes(text.stdout, "1 files are in no folder named after a category");
  assert(
    !/^wrapper /m.test(text.stdout),
    `no confusion row for the wrapper folder:\n${text.stdout}`,
  );
});
