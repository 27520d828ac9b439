import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import { AudioDecodeError } from "./decode.ts";
import { extractFeatures, type FeatureSpec, fileFeatures, type LoadedFile } from "./features.ts";
import { DEFAULT_MEL } from "./mel.ts";
import { encodeWav } from "./wav.ts";

const SPEC: FeatureSpec = { rate: 16000, mel: DEFAULT_MEL };

/** `count` short noisy WAVs of awkward lengths; every third at 22050 Hz stereo (resampled, mixed). */
function wavs(count: number): LoadedFile[] {
  const r = new Random(7, "features-test");
  return Array.from({ length: count }, (_, i) => {
    const rate = i % 3 === 2 ? 22050 : 16000;
    const n = 1000 + r.int(4000);
    const ch = Float32Array.from({ length: n }, () => r.normal(0, 0.2));
    const channels = i % 3 === 2 ? [ch, ch.map((v) => -v / 2)] : [ch];
    return { bytes: encodeWav(channels, rate, { bits: 16 }), path: `clip_${i}.wav` };
  });
}

const load = (files: LoadedFile[]) => (i: number) => Promise.resolve({ ...files[i] });

Deno.test("extractFeatures on workers gives this thread's bytes, in file order", async () => {
  const files = wavs(7);
  const keep = (i: number) => i % 2 === 0;
  const want = [];
  for (let i = 0; i < files.length; i++) {
    want.push(await fileFeatures(files[i].bytes, files[i].path, SPEC, keep(i)));
  }
  // Each task transfers its bytes away: hand out copies.
  const copies = (i: number) => Promise.resolve({ ...files[i], bytes: files[i].bytes.slice() });
  for (const options of [{ workers: 2, mainThread: false }, { workers: 1 }, { workers: 0 }]) {
    const got = await extractFeatures(files.length, copies, SPEC, keep, options);
    assertEquals(got.length, files.length);
    for (let i = 0; i < files.length; i++) {
      const what = `file ${i} with ${JSON.stringify(options)}`;
      assertEquals(got[i].seconds, want[i].seconds, what);
      assertEquals(got[i].logMel, want[i].logMel, what);
      assertEquals(got[i].samples, want[i].samples, what);
      assertEquals(got[i].samples !== undefined, keep(i), `${what}: samples only when kept`);
    }
  }
});

Deno.test("extractFeatures without mel settings returns the samples", async () => {
  const files = wavs(3);
  const got = await extractFeatures(3, load(files), { rate: 8000 }, () => false, { workers: 0 });
  for (const f of got) {
    assert(f.logMel === undefined && f.samples !== undefined, "samples, no log-mel");
    assertEquals(f.samples!.length, Math.round(f.seconds * 8000));
  }
});

Deno.test("extractFeatures: a bad file in a worker is an AudioDecodeError naming it", async () => {
  const files = wavs(4);
  files[2] = { bytes: new TextEncoder().encode("not audio at all, just text"), path: "bad.wav" };
  const e = await assertRejects(
    () => extractFeatures(4, load(files), SPEC, () => false, { workers: 1, mainThread: false }),
    "",
  );
  assert(e instanceof AudioDecodeError, `expected an AudioDecodeError, got ${e}`);
  assertEquals(e.location.file, "bad.wav");
  assertEquals(e.failure, "not-audio");
});

Deno.test("extractFeatures: an error from load stops the run and comes back as is", async () => {
  const files = wavs(5);
  const e = await assertRejects(() =>
    extractFeatures(
      5,
      (i) => {
        if (i === 3) throw new UserError("changed since the scan", { file: "clip_3.wav" });
        return load(files)(i);
      },
      SPEC,
      () => false,
      { workers: 1 },
    ), "changed since the scan");
  assert(e instanceof UserError);
  assertEquals(e.location.file, "clip_3.wav");
});

Deno.test("extractFeatures refuses mainThread false without workers", async () => {
  await assertRejects(
    () => extractFeatures(1, load(wavs(1)), SPEC, () => false, { workers: 0, mainThread: false }),
    "at least one worker",
  );
});
