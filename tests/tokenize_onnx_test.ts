import { join } from "node:path";
import { job, TokenizeParams } from "../jobs/tokenize.ts";
import { decodeWav } from "../lib/audio/wav.ts";
import { readTokenizedData, sequenceTokens } from "../lib/data/tokenized.ts";
import { decodeSequence } from "../lib/data/vocab.ts";
import { UserError } from "../lib/errors/mod.ts";
import { openTokenizerDir } from "../lib/tokenizers/mod.ts";
import { buildToyCodec } from "../lib/tokenizers/toy_codec.ts";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import {
  type ClipSpec,
  makeScannedFolder,
  readFlatDir,
  runJob,
  testContext,
  withTempDir,
} from "./tokenize_helpers.ts";

const CLIPS: ClipSpec[] = ["a", "b"].flatMap((category, c) =>
  [0, 1, 2].map((i) => ({ category, seconds: 0.2 + 0.05 * i, hz: 400 * (c + 1) }))
);

async function writeToyCodec(dir: string) {
  const toy = buildToyCodec({ hop: 160, dim: 4, codebookSize: 12, seed: 3 });
  const encoder = join(dir, "toy_encoder.onnx"), decoder = join(dir, "toy_decoder.onnx");
  await Deno.writeFile(encoder, toy.encoder);
  await Deno.writeFile(decoder, toy.decoder);
  return { encoder, decoder, sample_rate: 16000, hop_length: 160, codebook_size: 12 };
}

Deno.test("tokenize onnx-codec: codes come from the encoder; the artifact carries the models", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS);
    const onnx = await writeToyCodec(dir);
    const out = join(dir, "out");
    const params = TokenizeParams.parse({
      kind: "onnx-codec",
      onnx,
      layout: "label-first",
      reconstruction_files: 1,
    });
    const result = await runJob(job, testContext("tokenize", params, { scan }, out));
    assertEquals([...(await readFlatDir(out)).keys()], [
      "decoder.onnx",
      "encoder.onnx",
      "sequences.json",
      "tokenizer.json",
      "tokens.u32",
      "vocab.json",
    ]);
    const data = await readTokenizedData(out);
    assertEquals(data.vocab.codebook_size, 12, "the vocabulary takes the codec's codebook size");
    const opened = await openTokenizerDir(out);
    try {
      assertEquals(opened.tokenizer.kind, "onnx-codec");
      for (let i = 0; i < data.sequences.length; i++) {
        const s = data.sequences[i];
        const wav = decodeWav(await Deno.readFile(join(dir, "audio", s.path)));
        const want = await opened.tokenizer.encode(wav.channels[0]);
        const got = decodeSequence(data.vocab, sequenceTokens(data, i));
        assertEquals(got, { category: s.category, codes: Array.from(want) }, s.path);
      }
    } finally {
      await opened.tokenizer.close();
    }
    const m = result.metrics!;
    assertEquals(m.kind, "onnx-codec");
    assert(typeof m.reconstruction_lsd_db === "number", "the decoder scores a validation file");
  });
});

Deno.test("tokenize onnx-codec: a missing encoder file is a UserError naming it", async () => {
  await withTempDir(async (dir) => {
    const scan = await makeScannedFolder(dir, CLIPS);
    const onnx = { ...(await writeToyCodec(dir)), encoder: join(dir, "nope.onnx") };
    const params = TokenizeParams.parse({ kind: "onnx-codec", onnx, reconstruction_files: 0 });
    const e = await assertRejects(() =>
      runJob(job, testContext("tokenize", params, { scan }, join(dir, "out")))
    );
    assert(e instanceof UserError, `expected a UserError, got ${e}`);
    assert(`${e.location.file} ${e.message}`.includes("nope.onnx"), e.format());
  });
});
