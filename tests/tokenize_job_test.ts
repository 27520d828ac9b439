import { join } from "node:path";
import { job, TokenizeParams } from "../jobs/tokenize.ts";
import { readTokenizedData, sequenceTokens } from "../lib/data/tokenized.ts";
import { decodeSequence } from "../lib/data/vocab.ts";
import { UserError } from "../lib/errors/mod.ts";
import { openTokenizerDir } from "../lib/tokenizers/mod.ts";
import { decodeWav } from "../lib/audio/wav.ts";
import { resample, toMono } from "../lib/audio/resample.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import {
  type ClipSpec,
  makeScannedFolder,
  readFlatDir,
  runJob,
  testContext,
  withTempDir,
} from "./tokenize_helpers.ts";

/** 3 categories x 3 clips of 0.3-0.5 s (one stereo at 22.05 kHz, one at 8 kHz): ~430 frames. */
const CLIPS: ClipSpec[] = ["beep", "boop", "zap"].flatMap((category, c) =>
  [0, 1, 2].map((i) => ({ category, seconds: 0.3 + 0.1 * i, hz: 300 * (c + 1) + 40 * i }))
);
CLIPS[1] = { ...CLIPS[1], rate: 22050, channels: 2 };
CLIPS[5] = { ...CLIPS[5], rate: 8000 };

const SMALL = { codebook_size: 16, kmeans_iterations: 8, reconstruction_files: 0 };

Deno.test("tokenize: sequences follow the split, vocab and layout; codes match the CPU tokenizer", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS);
    const out = join(dir, "out");
    const params = TokenizeParams.parse({ ...SMALL, reconstruction_files: 2 });
    const result = await runJob(job, testContext("tokenize", params, { scan }, out, 7));
    const data = await readTokenizedData(out);
    assertEquals(data.vocab.categories, ["beep", "boop", "zap"]);
    assertEquals(data.vocab.codebook_size, 16);
    assertEquals(data.vocab.layout, "seed");

    const files = JSON.parse(await Deno.readTextFile(join(scan.dir, "files.json"))).files;
    assertEquals(data.sequences.map((s) => s.path), files.map((f: { path: string }) => f.path));
    assertEquals(
      data.sequences.map((s) => s.split),
      files.map((f: { split: string }) => f.split),
      "each sequence keeps the split the scan recorded",
    );
    assert(data.sequences.some((s) => s.split === "val"), "the fixture has validation files");

    // Each sequence is <|im_start|> codes <category> <|im_end|> with one code per frame.
    const opened = await openTokenizerDir(out);
    let mismatched = 0, total = 0;
    for (let i = 0; i < data.sequences.length; i++) {
      const s = data.sequences[i];
      const ids = sequenceTokens(data, i);
      assertEquals(ids[0], 1);
      assertEquals(ids[ids.length - 1], 2);
      const decoded = decodeSequence(data.vocab, ids);
      assertEquals(decoded.category, s.category);
      const wav = decodeWav(await Deno.readFile(join(dir, "audio", s.path)));
      const samples = await resample(toMono(wav.channels), wav.sampleRate, 16000);
      assertEquals(decoded.codes.length, 1 + Math.floor(samples.length / 160), s.path);
      const cpu = await opened.tokenizer.encode(samples);
      cpu.forEach((c, t) => {
        total++;
        if (c !== decoded.codes[t]) mismatched++;
      });
    }
    // GPU and CPU nearest-centroid agree except at float near-ties.
    assert(
      mismatched <= total / 100,
      `${mismatched} of ${total} codes differ from the CPU tokenizer`,
    );

    const m = result.metrics!;
    assertEquals(m.files, 9);
    assertEquals(m.tokens, data.tokens.length);
    assertEquals(m.frames, data.tokens.length - 3 * 9);
    assert((m.codebook_usage as number) > 0.5, `codebook usage ${m.codebook_usage}`);
    assert((m.code_perplexity as number) > 2, `perplexity ${m.code_perplexity}`);
    assert(typeof m.reconstruction_lsd_db === "number" && m.reconstruction_lsd_db > 0);
    const scored = m.reconstruction_files as { path: string }[];
    const scoredCategories = new Set(scored.map((f) => f.path.split("/")[0]));
    assertEquals(scoredCategories.size, 2, "reconstruction picks validation files of 2 categories");
    for (const f of scored) {
      assertEquals(data.sequences.find((s) => s.path === f.path)?.split, "val", f.path);
    }
    assert((m.kmeans_frames as number) < (m.frames as number), "k-means sees train frames only");
    assert(result.environment?.webgpu_adapter, "environment names the WebGPU adapter");
  });
});

Deno.test("tokenize: two runs give identical bytes; another seed gives another split or codebook", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS);
    const params = TokenizeParams.parse({ ...SMALL, layout: "label-first" });
    await runJob(job, testContext("tokenize", params, { scan }, join(dir, "a"), 3));
    await runJob(job, testContext("tokenize", params, { scan }, join(dir, "b"), 3));
    await runJob(job, testContext("tokenize", params, { scan }, join(dir, "c"), 4));
    const a = await readFlatDir(join(dir, "a")), b = await readFlatDir(join(dir, "b"));
    assertEquals([...a.keys()], [
      "codebook.f32",
      "sequences.json",
      "tokenizer.json",
      "tokens.u32",
      "vocab.json",
    ]);
    for (const [name, bytes] of a) assertEquals(bytes, b.get(name), name);
    const c = await readFlatDir(join(dir, "c"));
    assert(
      !(c.get("codebook.f32")!.every((v, i) => v === a.get("codebook.f32")![i])),
      "seed 4 should fit a different codebook",
    );
    // label-first: <|im_start|> <category> <|wav|> codes <|im_end|>
    const data = await readTokenizedData(join(dir, "a"));
    const ids = sequenceTokens(data, 0);
    assertEquals([ids[0], ids[2], ids[ids.length - 1]], [1, 3, 2]);
    assertEquals(data.vocab.tokens[ids[1]], data.sequences[0].category);
  });
});

Deno.test("tokenize: an audio file edited after the scan is a UserError naming it", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS);
    const victim = join(dir, "audio", "boop", "boop_002.wav");
    const bytes = await Deno.readFile(victim);
    bytes[bytes.length - 1] ^= 0x55;
    await Deno.writeFile(victim, bytes);
    const params = TokenizeParams.parse(SMALL);
    const e = await assertRejects(
      () => runJob(job, testContext("tokenize", params, { scan }, join(dir, "out"))),
      "changed since the scan",
    );
    assert(e instanceof UserError);
    assertEquals(e.location.file, victim);
    assertStringIncludes(e.format(), "re-run the scan");
  });
});

Deno.test("tokenize: too few train frames for the codebook is a UserError on codebook_size", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS.slice(0, 2).concat(CLIPS.slice(3, 5)));
    const params = TokenizeParams.parse({ ...SMALL, codebook_size: 4000 });
    const e = await assertRejects(
      () => runJob(job, testContext("tokenize", params, { scan }, join(dir, "out"))),
      "at least as many frames",
    );
    assert(e instanceof UserError);
    assertEquals(e.location.field, "steps.tokenize.params.codebook_size");
    assertEquals(e.location.step, "tokenize");
  });
});

Deno.test("tokenize: parameter errors name the field", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mel: { f_max: 9000 } }, "f_max"],
    [{ mel: { n_fft: 500 } }, "n_fft"],
    [{ mel: { win_length: 1024 } }, "win_length"],
    [{ kind: "onnx-codec" }, "onnx"],
    [
      { onnx: { encoder: "e.onnx", sample_rate: 16000, hop_length: 320, codebook_size: 8 } },
      "onnx",
    ],
    [{ codebook_size: 512, kmeans_max_frames: 100 }, "kmeans_max_frames"],
    [{ codebook_sise: 16 }, "codebook_sise"],
  ];
  for (const [params, field] of cases) {
    const r = TokenizeParams.safeParse(params);
    assert(!r.success, `${JSON.stringify(params)} should be rejected`);
    const where = r.error.issues.map((i) =>
      [...i.path, ...("keys" in i ? i.keys as string[] : [])].join(".")
    );
    assert(where.some((w) => w.includes(field)), `${JSON.stringify(params)}: issues at ${where}`);
  }
});

const PYTHON = "/usr/bin/python3";
const pythonHasNumpy = (() => {
  try {
    const args = ["-c", "import numpy"];
    return new Deno.Command(PYTHON, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "tokenize: tokenizer.json's conventions, followed with numpy alone, give the job's codes",
  ignore: !pythonHasNumpy, // CI installs no Python; Debian's python3-numpy runs it
  async fn() {
    await withTempDir(async (dir) => {
      const scan = await makeScannedFolder(dir, CLIPS);
      const out = join(dir, "out");
      await runJob(job, testContext("tokenize", TokenizeParams.parse(SMALL), { scan }, out, 7));
      const data = await readTokenizedData(out);
      // The reader leaves resampling to its caller: the clips already at 16 kHz.
      const files: { path: string; sample_rate: number }[] =
        JSON.parse(await Deno.readTextFile(join(scan.dir, "files.json"))).files;
      const at16k = new Set(files.filter((f) => f.sample_rate === 16000).map((f) => f.path));
      const picked = data.sequences.map((s, i) => ({ s, i })).filter(({ s }) => at16k.has(s.path));
      assert(picked.length >= 6, `${picked.length} clips at 16 kHz`);
      const paths = picked.map(({ s }) => join(dir, "audio", s.path));
      const tool = new URL("../tools/tokenize_by_conventions.py", import.meta.url).pathname;
      const run = await new Deno.Command(PYTHON, { args: [tool, out, ...paths] }).output();
      const stderr = new TextDecoder().decode(run.stderr);
      assertEquals(run.code, 0, stderr);
      const byPath: Record<string, number[]> = JSON.parse(new TextDecoder().decode(run.stdout));
      let mismatched = 0, total = 0;
      for (const { s, i } of picked) {
        const job = decodeSequence(data.vocab, sequenceTokens(data, i)).codes;
        const numpy = byPath[join(dir, "audio", s.path)];
        assertEquals(numpy.length, job.length, s.path);
        numpy.forEach((c, t) => {
          total++;
          if (c !== job[t]) mismatched++;
        });
      }
      // float64 against the job's f32 nearest-centroid search: equal except at near-ties.
      assert(mismatched <= total / 100, `${mismatched} of ${total} codes differ`);
    });
  },
});
