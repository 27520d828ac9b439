/**
 * Audio tokenizers behind one interface, and the reader of a tokenize
 * artifact (`vocab.json`, `tokenizer.json`, `codebook.f32`), so the `tokens`
 * CLI (and later generation and serving) turns token ids into audio and back
 * whatever the tokenizer kind:
 *
 * - `mel-vq`: nearest log-mel codebook row ({@link MelVqTokenizer});
 * - `onnx-codec`: the user's neural codec in ONNX ({@link OnnxCodecTokenizer},
 *   onnxruntime-web imported only when such a tokenizer is opened).
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import type { CodesToAudioOptions } from "../audio/inverse.ts";
import { checkMelSettings, type MelSettings } from "../audio/mel.ts";
import { checkVocabulary } from "../data/vocab.ts";
import type { Vocabulary } from "../data/types.ts";
import { UserError } from "../errors/mod.ts";
import { MelVqTokenizer } from "./mel_vq.ts";
import type { OnnxCodecTokenizer } from "./onnx_codec.ts";

export { MelVqTokenizer } from "./mel_vq.ts";
export type { OnnxCodecSettings, OnnxCodecTokenizer } from "./onnx_codec.ts";

/** The tokenizer kinds. */
export type TokenizerKind = "mel-vq" | "onnx-codec";

/** Audio ↔ codes, whatever the kind. */
export interface AudioTokenizer {
  readonly kind: TokenizerKind;
  /** Sample rate (Hz) of the audio `encode` takes and `decode` returns. */
  readonly sampleRate: number;
  /** Codes are in `[0, codebookSize)`. */
  readonly codebookSize: number;
  /** `[n]` f32 mono at `sampleRate` → `[frames]` codes. */
  encode(samples: Float32Array): Promise<Uint32Array>;
  /** `[frames]` codes → `[n]` f32 mono at `sampleRate`. */
  decode(codes: Uint32Array): Promise<Float32Array>;
  /** Frees model sessions (a no-op for mel-vq). */
  close(): Promise<void>;
}

/** An opened tokenize artifact. */
export interface TokenizerArtifact {
  dir: string;
  vocab: Vocabulary;
  tokenizer: AudioTokenizer;
}

/** Options of {@link openTokenizerDir}. */
export interface OpenTokenizerOptions {
  /** Griffin-Lim and NNLS settings for mel-vq decoding. */
  reconstruction?: CodesToAudioOptions;
}

const MelFields = z.object({
  sample_rate: z.number().int().positive(),
  n_fft: z.number().int().positive(),
  win_length: z.number().int().positive(),
  hop_length: z.number().int().positive(),
  n_mels: z.number().int().positive(),
  f_min: z.number().min(0),
  f_max: z.number().positive(),
});

/**
 * What this reader needs from `tokenizer.json` (the tokenize job writes all
 * its settings; other keys are ignored): `kind`, and for mel-vq the mel
 * settings at the top level, for onnx-codec an `onnx` object
 * ({@link OnnxCodecSettings}, model paths relative to the artifact directory).
 */
const TokenizerFile = z.discriminatedUnion("kind", [
  MelFields.extend({ kind: z.literal("mel-vq") }),
  z.object({ kind: z.literal("onnx-codec"), onnx: z.record(z.string(), z.unknown()) }),
]);

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    throw new UserError(missing ? `${what} is missing` : `cannot read ${what}`, {
      file: path,
      expected: "the output directory of a tokenize step",
      found: missing ? "no such file" : (e as Error).message,
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${what} is not valid JSON`, { file: path, found: (e as Error).message });
  }
}

class MelVqAudioTokenizer implements AudioTokenizer {
  readonly kind = "mel-vq";
  readonly sampleRate: number;
  readonly codebookSize: number;

  constructor(readonly inner: MelVqTokenizer, readonly opts: CodesToAudioOptions) {
    this.sampleRate = inner.mel.sample_rate;
    this.codebookSize = inner.codebookSize;
  }
  encode(samples: Float32Array): Promise<Uint32Array> {
    return Promise.resolve(this.inner.encode(samples));
  }
  decode(codes: Uint32Array): Promise<Float32Array> {
    return Promise.resolve(this.inner.decode(codes, this.opts));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

class OnnxAudioTokenizer implements AudioTokenizer {
  readonly kind = "onnx-codec";
  readonly sampleRate: number;
  readonly codebookSize: number;

  constructor(readonly inner: OnnxCodecTokenizer) {
    this.sampleRate = inner.settings.sample_rate;
    this.codebookSize = inner.settings.codebook_size;
  }
  encode(samples: Float32Array): Promise<Uint32Array> {
    return this.inner.encode(samples);
  }
  decode(codes: Uint32Array): Promise<Float32Array> {
    return this.inner.decode(codes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Opens a tokenize artifact directory: checks `vocab.json` against the
 * vocabulary contract, reads `tokenizer.json`, and loads the codebook
 * (`codebook.f32`, `[K, n_mels]` f32 LE) or the ONNX codec. Every problem is
 * a `UserError` naming the file at fault.
 */
export async function openTokenizerDir(
  dir: string,
  opts: OpenTokenizerOptions = {},
): Promise<TokenizerArtifact> {
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.stat(dir);
  } catch {
    info = undefined;
  }
  if (!info?.isDirectory) {
    throw new UserError(
      info ? "the tokenizer is a file, not a directory" : "the tokenizer directory does not exist",
      {
        file: dir,
        expected: "the output directory of a tokenize step (vocab.json, tokenizer.json, …)",
        found: info ? "a file" : "no such directory",
        hint: info
          ? "give the folder that holds vocab.json and tokenizer.json (a tokenize artifact or an export bundle)"
          : undefined,
      },
    );
  }
  const vocabPath = join(dir, "vocab.json");
  const vocab = checkVocabulary(await readJson(vocabPath, "vocab.json"), vocabPath);
  const settingsPath = join(dir, "tokenizer.json");
  const parsed = TokenizerFile.safeParse(await readJson(settingsPath, "tokenizer.json"));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`tokenizer.json is not valid: ${issue.message}`, {
      file: settingsPath,
      field: issue.path.join("."),
      expected: 'kind "mel-vq" with the mel settings, or kind "onnx-codec" with an onnx object',
    });
  }
  const settings = parsed.data;
  let tokenizer: AudioTokenizer;
  if (settings.kind === "mel-vq") {
    const mel: MelSettings = MelFields.parse(settings);
    try {
      checkMelSettings(mel);
    } catch (e) {
      throw e instanceof UserError ? e.withLocation({ file: settingsPath }) : e;
    }
    const codebookPath = join(dir, "codebook.f32");
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(codebookPath);
    } catch (e) {
      throw new UserError("cannot read the codebook", {
        file: codebookPath,
        found: (e as Error).message,
      });
    }
    const expectedBytes = vocab.codebook_size * mel.n_mels * 4;
    if (bytes.length !== expectedBytes) {
      throw new UserError("the codebook's size does not match the vocabulary", {
        file: codebookPath,
        expected: `[${vocab.codebook_size}, ${mel.n_mels}] f32 = ${expectedBytes} bytes`,
        found: `${bytes.length} bytes`,
      });
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const codebook = new Float32Array(bytes.length / 4);
    for (let i = 0; i < codebook.length; i++) codebook[i] = view.getFloat32(i * 4, true);
    tokenizer = new MelVqAudioTokenizer(
      new MelVqTokenizer(mel, codebook),
      opts.reconstruction ?? {},
    );
  } else {
    const { OnnxCodecTokenizer } = await import("./onnx_codec.ts");
    const codec = await OnnxCodecTokenizer.load(settings.onnx, {
      file: settingsPath,
      baseDir: dir,
      fieldPrefix: "onnx.",
    });
    tokenizer = new OnnxAudioTokenizer(codec);
  }
  if (tokenizer.codebookSize !== vocab.codebook_size) {
    await tokenizer.close();
    throw new UserError("tokenizer.json and vocab.json disagree on the codebook size", {
      file: settingsPath,
      expected: `codebook_size ${vocab.codebook_size} (from vocab.json)`,
      found: String(tokenizer.codebookSize),
    });
  }
  return { dir, vocab, tokenizer };
}
