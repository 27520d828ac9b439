/**
 * The `tokens` CLI on hand-made tokenize artifacts: a mel-vq one (codebook =
 * log-mel frames of a test signal) and an onnx-codec one (the toy ONNX codec).
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { encodeAudio, main, tokensToAudio } from "../lib/cli/tokens.ts";
import { decodeWav, encodeWav } from "../lib/audio/wav.ts";
import { logMelSpectrogram, type MelSettings } from "../lib/audio/mel.ts";
import { buildVocabulary } from "../lib/data/vocab.ts";
import { UserError } from "../lib/errors/mod.ts";
import { Random } from "../lib/random/mod.ts";
import { buildToyCodec } from "../lib/tokenizers/toy_codec.ts";

const MEL: MelSettings = {
  sample_rate: 8000,
  n_fft: 256,
  win_length: 200,
  hop_length: 80,
  n_mels: 20,
  f_min: 0,
  f_max: 4000,
};
const K = 8;

function testSignal(n: number): Float32Array {
  const r = new Random(4, "tokens-cli");
  return Float32Array.from(
    { length: n },
    (_, i) =>
      0.4 * Math.sin(2 * Math.PI * (300 + i / 20) * i / MEL.sample_rate) + 0.01 * r.normal(),
  );
}

/** A mel-vq tokenize artifact: K = 8 codes, categories bird and dog, seed layout. */
async function melVqDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tokens-cli-" });
  const vocab = buildVocabulary(["dog", "bird"], K, "seed");
  const mel = logMelSpectrogram(testSignal(MEL.hop_length * (K - 1)), MEL);
  assertEquals(mel.frames, K);
  const bytes = new Uint8Array(mel.data.length * 4);
  const view = new DataView(bytes.buffer);
  mel.data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify(vocab));
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify({ kind: "mel-vq", ...MEL, codebook_size: K, layout: "seed" }),
  );
  await Deno.writeFile(join(dir, "codebook.f32"), bytes);
  return dir;
}

Deno.test("tokens to-audio writes a 16-bit mono WAV of codes × hop samples", async () => {
  const dir = await melVqDir();
  const out = join(dir, "out.wav");
  // <|im_start|> codes 0 3 3 7 1 <bird> <|im_end|>: code ids start at 4 + 2 categories = 6
  const code = await main([
    "to-audio",
    "--tokenizer",
    dir,
    "--tokens",
    "1 6 9 9 13 7 4 2",
    "--out",
    out,
    "--iterations",
    "8",
  ]);
  assertEquals(code, 0);
  const wav = decodeWav(await Deno.readFile(out), out);
  assertEquals(wav.sampleRate, MEL.sample_rate);
  assertEquals(wav.bits, 16);
  assertEquals(wav.channels.length, 1);
  assertEquals(wav.channels[0].length, 5 * MEL.hop_length);
  assert(wav.channels[0].some((v) => Math.abs(v) > 0.01), "expected audible samples");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens to-audio reads a JSON ids file and reports the category", async () => {
  const dir = await melVqDir();
  const ids = join(dir, "ids.json");
  await Deno.writeTextFile(ids, "[1, 6, 7, 8, 5, 2]");
  const r = await tokensToAudio({ tokenizer: dir, tokensFile: ids, out: join(dir, "a.wav") });
  assertEquals(r.codes, 3);
  assertEquals(r.category, "dog");
  assertEquals(r.seconds, 3 * MEL.hop_length / MEL.sample_rate);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens to-audio names the position and the id of a token outside the vocabulary", async () => {
  const dir = await melVqDir();
  const e = await assertRejects(() =>
    tokensToAudio({ tokenizer: dir, tokens: "1 6 14 9", out: join(dir, "x.wav") })
  );
  assert(e instanceof UserError, "expected a UserError");
  assertEquals(e.location.field, "--tokens[2]");
  assertEquals(e.found, "14");
  assertStringIncludes(e.message, "position 2");
  assertEquals(e.expected, "an integer id from 0 to 13 (vocabulary of 14 tokens)");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens to-audio: a bad id in a file names the file; main exits 1 with the message", async () => {
  const dir = await melVqDir();
  const ids = join(dir, "ids.json");
  await Deno.writeTextFile(ids, '[1, 6, "x"]');
  const e = await assertRejects(() =>
    tokensToAudio({ tokenizer: dir, tokensFile: ids, out: join(dir, "x.wav") })
  );
  assertEquals((e as UserError).location.file, ids);
  assertEquals((e as UserError).location.field, "--tokens-file[2]");
  const code = await main(["to-audio", "--tokenizer", dir, "--tokens", "1 99", "--out", ids]);
  assertEquals(code, 1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens to-audio rejects ids with no audio codes", async () => {
  const dir = await melVqDir();
  await assertRejects(
    () => tokensToAudio({ tokenizer: dir, tokens: "1 4 2", out: join(dir, "x.wav") }),
    "no audio codes",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens: a missing tokenizer directory is a UserError naming it", async () => {
  const e = await assertRejects(() =>
    tokensToAudio({ tokenizer: "/nonexistent/tok", tokens: "6", out: "/tmp/never.wav" })
  );
  assertEquals((e as UserError).location.file, "/nonexistent/tok");
});

Deno.test("tokens: a codebook of the wrong size is a UserError naming codebook.f32", async () => {
  const dir = await melVqDir();
  await Deno.writeFile(join(dir, "codebook.f32"), new Uint8Array(12));
  const e = await assertRejects(() =>
    tokensToAudio({ tokenizer: dir, tokens: "6", out: join(dir, "x.wav") })
  );
  assertEquals((e as UserError).location.file, join(dir, "codebook.f32"));
  assertEquals((e as UserError).found, "12 bytes");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens: a tokenizer.json of unknown kind names the field", async () => {
  const dir = await melVqDir();
  await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify({ kind: "wavelet" }));
  const e = await assertRejects(() =>
    tokensToAudio({ tokenizer: dir, tokens: "6", out: join(dir, "x.wav") })
  );
  assertEquals((e as UserError).location.field, "kind");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens encode gives the codes of the signal the codebook was made from", async () => {
  const dir = await melVqDir();
  const wav = join(dir, "in.wav");
  await Deno.writeFile(
    wav,
    encodeWav([testSignal(MEL.hop_length * (K - 1))], MEL.sample_rate, { bits: 32, float: true }),
  );
  const plain = await encodeAudio({ tokenizer: dir, audio: wav });
  assertEquals(plain, [6, 7, 8, 9, 10, 11, 12, 13]);
  const framed = await encodeAudio({ tokenizer: dir, audio: wav, category: "dog" });
  assertEquals(framed, [1, 6, 7, 8, 9, 10, 11, 12, 13, 5, 2]);
  await assertRejects(
    () => encodeAudio({ tokenizer: dir, audio: wav, category: "cat" }),
    "unknown category",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokens to-audio with an onnx-codec tokenizer runs the decoder model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokens-cli-onnx-" });
  const toy = buildToyCodec({ hop: 8, dim: 4, codebookSize: 16, seed: 3 });
  await Deno.writeFile(join(dir, "encoder.onnx"), toy.encoder);
  await Deno.writeFile(join(dir, "decoder.onnx"), toy.decoder);
  await Deno.writeTextFile(
    join(dir, "vocab.json"),
    JSON.stringify(buildVocabulary(["a"], 16, "label-first")),
  );
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify({
      kind: "onnx-codec",
      onnx: {
        encoder: "encoder.onnx",
        decoder: "decoder.onnx",
        sample_rate: 8000,
        hop_length: 8,
        codebook_size: 16,
      },
    }),
  );
  const out = join(dir, "out.wav");
  // label-first: <|im_start|> <a> <|wav|> codes 0 15 2 <|im_end|>; code ids start at 5
  const r = await tokensToAudio({ tokenizer: dir, tokens: "[1, 4, 3, 5, 20, 7, 2]", out });
  assertEquals(r.category, "a");
  const wav = decodeWav(await Deno.readFile(out), out);
  assertEquals(wav.channels[0].length, 3 * 8);
  assertEquals(wav.sampleRate, 8000);
  await Deno.remove(dir, { recursive: true });
});
