import { join } from "node:path";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import { OnnxCodecTokenizer } from "./onnx_codec.ts";
import { buildToyCodec, type ToyCodec, type ToyCodecOptions } from "./toy_codec.ts";

const TOY: ToyCodecOptions = { hop: 8, dim: 4, codebookSize: 16, seed: 11 };

/** Writes a toy codec's models to a fresh temp dir; returns the dir and the codec. */
async function writeToy(
  overrides: Partial<ToyCodecOptions> = {},
): Promise<{ dir: string; toy: ToyCodec }> {
  const dir = await Deno.makeTempDir({ prefix: "onnx-codec-test-" });
  const toy = buildToyCodec({ ...TOY, ...overrides });
  await Deno.writeFile(join(dir, "encoder.onnx"), toy.encoder);
  await Deno.writeFile(join(dir, "decoder.onnx"), toy.decoder);
  return { dir, toy };
}

function settings(extra: Record<string, unknown> = {}) {
  return {
    encoder: "encoder.onnx",
    decoder: "decoder.onnx",
    sample_rate: 16000,
    hop_length: TOY.hop,
    codebook_size: TOY.codebookSize,
    ...extra,
  };
}

/** The toy encoder on the CPU in f64: zero-pad to whole hops, project, nearest codebook row. */
function referenceCodes(samples: Float32Array, toy: ToyCodec): number[] {
  const { hop, dim, codebookSize } = TOY;
  const frames = Math.ceil(samples.length / hop);
  const codes: number[] = [];
  for (let f = 0; f < frames; f++) {
    const z = new Float64Array(dim);
    for (let i = 0; i < hop; i++) {
      const x = samples[f * hop + i] ?? 0;
      for (let d = 0; d < dim; d++) z[d] += x * toy.projection[i * dim + d];
    }
    let best = 0, bestDistance = Infinity;
    for (let k = 0; k < codebookSize; k++) {
      let dist = 0;
      for (let d = 0; d < dim; d++) dist += (z[d] - toy.codebook[k * dim + d]) ** 2;
      if (dist < bestDistance) {
        bestDistance = dist;
        best = k;
      }
    }
    codes.push(best);
  }
  return codes;
}

function signal(n: number, seed: number): Float32Array {
  const r = new Random(seed, "onnx-codec-signal");
  return Float32Array.from({ length: n }, () => r.normal(0, 0.5));
}

async function loadError(raw: unknown, baseDir: string): Promise<UserError> {
  const e = await assertRejects(() => OnnxCodecTokenizer.load(raw, { baseDir }));
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  return e;
}

Deno.test("onnx codec: encode gives the codes of a CPU computation (input padded to whole hops)", async () => {
  const { dir, toy } = await writeToy();
  const codec = await OnnxCodecTokenizer.load(settings(), { baseDir: dir });
  try {
    const x = signal(TOY.hop * 25 + 3, 1);
    const codes = await codec.encode(x);
    const expected = referenceCodes(x, toy);
    assertEquals(codes.length, 26);
    assertEquals(Array.from(codes), expected);
    assert(new Set(expected).size > 4, "expected the test signal to use several codes");
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: decode gives codes × hop samples, the synthesis of the codebook rows", async () => {
  const { dir, toy } = await writeToy();
  const codec = await OnnxCodecTokenizer.load(settings(), { baseDir: dir });
  try {
    const codes = Uint32Array.from([3, 0, 15, 7, 7]);
    const audio = await codec.decode(codes);
    assertEquals(audio.length, codes.length * TOY.hop);
    for (let f = 0; f < codes.length; f++) {
      for (let i = 0; i < TOY.hop; i++) {
        let v = 0;
        for (let d = 0; d < TOY.dim; d++) {
          v += toy.codebook[codes[f] * TOY.dim + d] * toy.synthesis[d * TOY.hop + i];
        }
        assertAlmostEquals(audio[f * TOY.hop + i], v, 1e-5);
      }
    }
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: an int32 codes output is accepted", async () => {
  const { dir, toy } = await writeToy({ codeType: "int32" });
  const codec = await OnnxCodecTokenizer.load(settings(), { baseDir: dir });
  try {
    const x = signal(TOY.hop * 6, 2);
    assertEquals(Array.from(await codec.encode(x)), referenceCodes(x, toy));
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: an encoder taking [1, 1, samples] audio is fed that shape", async () => {
  const { dir, toy } = await writeToy({ channelAxis: true });
  const codec = await OnnxCodecTokenizer.load(settings(), { baseDir: dir });
  try {
    const x = signal(TOY.hop * 6, 4);
    assertEquals(Array.from(await codec.encode(x)), referenceCodes(x, toy));
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: a missing model file names the file and the field", async () => {
  const { dir } = await writeToy();
  const e = await loadError(settings({ decoder: "nowhere.onnx" }), dir);
  assertEquals(e.location.file, join(dir, "nowhere.onnx"));
  assertEquals(e.location.field, "decoder");
  assertEquals(e.found, "no such file");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: a wrong input name lists the model's inputs", async () => {
  const { dir } = await writeToy({ encoderInput: "wave" });
  const e = await loadError(settings(), dir);
  assertEquals(e.location.file, join(dir, "encoder.onnx"));
  assertEquals(e.location.field, "encoder_input");
  assertEquals(e.found, "audio");
  assertEquals(e.expected, "one of the model's inputs: wave");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: a wrong output name lists the model's outputs", async () => {
  const { dir } = await writeToy({ encoderOutput: "tokens" });
  const e = await loadError(settings(), dir);
  assertEquals(e.location.field, "encoder_output");
  assertEquals(e.expected, "one of the model's outputs: tokens");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: float codes are rejected at load", async () => {
  const { dir } = await writeToy({ codeType: "float32" });
  const e = await loadError(settings(), dir);
  assertEquals(e.location.field, "encoder_output");
  assertEquals(e.expected, "int64 or int32");
  assertEquals(e.found, "float32");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: a file that is not ONNX is a UserError naming it", async () => {
  const { dir } = await writeToy();
  await Deno.writeTextFile(join(dir, "encoder.onnx"), "not a model");
  const e = await loadError(settings(), dir);
  assertEquals(e.location.file, join(dir, "encoder.onnx"));
  assertEquals(e.location.field, "encoder");
  assert(e.message.includes("cannot load"), e.message);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: unknown and missing settings fields are named", async () => {
  const { dir } = await writeToy();
  const unknown = await loadError(settings({ hop: 8 }), dir);
  assertEquals(unknown.location.field, "hop");
  const missing = await loadError({ encoder: "encoder.onnx", sample_rate: 16000 }, dir);
  assertEquals(missing.location.field, "hop_length");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("onnx codec: codes outside codebook_size from the encoder are a UserError", async () => {
  const { dir } = await writeToy();
  const codec = await OnnxCodecTokenizer.load(settings({ codebook_size: 2 }), { baseDir: dir });
  try {
    const e = await assertRejects(
      () => codec.encode(signal(TOY.hop * 40, 3)),
      "outside the codebook",
    );
    assert(e instanceof UserError, "expected a UserError");
    assertEquals(e.location.file, join(dir, "encoder.onnx"));
    assertEquals(e.location.field, "codebook_size");
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: decode names the position of a code outside the codebook", async () => {
  const { dir } = await writeToy();
  const codec = await OnnxCodecTokenizer.load(settings(), { baseDir: dir });
  try {
    const e = await assertRejects(() => codec.decode(Uint32Array.from([1, 2, 16])));
    assert(e instanceof UserError, "expected a UserError");
    assertEquals(e.location.field, "codes[2]");
    assertEquals(e.found, "16");
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onnx codec: decode without a decoder model says which field to set", async () => {
  const { dir } = await writeToy();
  const codec = await OnnxCodecTokenizer.load(settings({ decoder: undefined }), { baseDir: dir });
  try {
    assertEquals(codec.canDecode, false);
    const e = await assertRejects(() => codec.decode(Uint32Array.from([1])), "no decoder");
    assertEquals((e as UserError).location.field, "decoder");
  } finally {
    await codec.close();
    await Deno.remove(dir, { recursive: true });
  }
});
