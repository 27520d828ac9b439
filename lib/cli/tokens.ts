/**
 * `deno task tokens …`: token ids ↔ audio with a tokenize artifact.
 *
 * - `tokens to-audio --tokenizer DIR (--tokens "1 57 88 …" | --tokens-file ids.json) --out x.wav`
 *   keeps the audio-code tokens of a sequence (special and category tokens
 *   are dropped), reconstructs audio (mel-vq: codebook → NNLS → Griffin-Lim;
 *   onnx-codec: the decoder model) and writes a 16-bit mono WAV;
 * - `tokens encode --tokenizer DIR --audio FILE [--category NAME]` prints the
 *   token ids of an audio file as JSON: the full sequence in the vocabulary's
 *   layout with `--category`, the audio-code ids alone without.
 *
 * @module
 */
import { decimalNumber, newProgram, runProgram } from "./commander.ts";
import { fromCaller } from "./caller.ts";
import { UserError } from "../errors/mod.ts";
import { decodeSequence, encodeSequence, vocabularySize } from "../data/vocab.ts";
import type { Vocabulary } from "../data/types.ts";
import { openTokenizerDir } from "../tokenizers/mod.ts";

/** Where token ids came from, for messages. */
export interface TokenSource {
  /** The ids file (`--tokens-file`), when they came from one. */
  file?: string;
  /** The option they came from, e.g. `--tokens`. */
  option: string;
}

/**
 * Parses token ids: a JSON list of integers, or integers separated by
 * spaces or commas. Each must be an integer in `[0, V)`; a `UserError` names
 * the position and the id otherwise.
 */
export function parseTokenIds(text: string, vocab: Vocabulary, source: TokenSource): number[] {
  const size = vocabularySize(vocab);
  const trimmed = text.trim();
  let items: unknown[];
  if (trimmed.startsWith("[")) {
    try {
      const value = JSON.parse(trimmed);
      if (!Array.isArray(value)) throw new Error("not a list");
      items = value;
    } catch (e) {
      throw new UserError("the token ids are not a valid JSON list", {
        file: source.file,
        field: source.option,
        expected: 'a JSON list of integer ids, e.g. [1, 57, 88, 2], or "1 57 88 2"',
        found: (e as Error).message,
      });
    }
  } else {
    items = trimmed.length === 0 ? [] : trimmed.split(/[\s,]+/);
  }
  if (items.length === 0) {
    throw new UserError("no token ids given", {
      file: source.file,
      field: source.option,
      expected: "one or more token ids",
    });
  }
  return items.map((item, i) => {
    const id = typeof item === "string" && /^-?\d+$/.test(item) ? Number(item) : item;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= size) {
      const shown = typeof item === "string" ? item : JSON.stringify(item);
      throw new UserError(`token ${shown} at position ${i} is not a token id of this vocabulary`, {
        file: source.file,
        field: `${source.option}[${i}]`,
        expected: `an integer id from 0 to ${size - 1} (vocabulary of ${size} tokens)`,
        found: shown,
      });
    }
    return id;
  });
}

/** Options of {@link tokensToAudio}. */
export interface TokensToAudioOptions {
  /** Tokenize artifact directory. */
  tokenizer: string;
  /** Ids as text (`--tokens`). */
  tokens?: string;
  /** A file holding the ids (`--tokens-file`). */
  tokensFile?: string;
  /** WAV file to write. */
  out: string;
  /** Griffin-Lim iterations (mel-vq). */
  iterations?: number;
  /** Griffin-Lim seed (mel-vq). */
  seed?: number;
}

/** What {@link tokensToAudio} wrote. */
export interface TokensToAudioResult {
  out: string;
  codes: number;
  category?: string;
  sampleRate: number;
  seconds: number;
  /** Gain applied so the peak is 0.99 (1 when the peak was already <= 1). */
  gain: number;
}

/** `tokens to-audio`: token ids → a 16-bit mono WAV. */
export async function tokensToAudio(opts: TokensToAudioOptions): Promise<TokensToAudioResult> {
  if ((opts.tokens === undefined) === (opts.tokensFile === undefined)) {
    throw new UserError("give the token ids with exactly one of --tokens and --tokens-file", {
      field: "--tokens",
      expected: '--tokens "1 57 88 …" or --tokens-file ids.json',
    });
  }
  const { vocab, tokenizer } = await openTokenizerDir(opts.tokenizer, {
    reconstruction: { iterations: opts.iterations, seed: opts.seed },
  });
  try {
    let text: string;
    let source: TokenSource;
    if (opts.tokensFile !== undefined) {
      try {
        text = await Deno.readTextFile(opts.tokensFile);
      } catch (e) {
        throw new UserError(`cannot read the token ids file: ${(e as Error).message}`, {
          file: opts.tokensFile,
          field: "--tokens-file",
        });
      }
      source = { file: opts.tokensFile, option: "--tokens-file" };
    } else {
      text = opts.tokens!;
      source = { option: "--tokens" };
    }
    const ids = parseTokenIds(text, vocab, source);
    const { category, codes } = decodeSequence(vocab, ids);
    if (codes.length === 0) {
      throw new UserError("the token ids hold no audio codes", {
        file: source.file,
        field: source.option,
        expected: `audio-code ids from ${vocab.code_offset} to ${vocabularySize(vocab) - 1}`,
        found: `${ids.length} special or category tokens`,
      });
    }
    const samples = await tokenizer.decode(Uint32Array.from(codes));
    let peak = 0;
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    const gain = peak > 1 ? 0.99 / peak : 1;
    if (gain !== 1) { for (let i = 0; i < samples.length; i++) samples[i] *= gain; }
    const { encodeWav } = await import("../audio/wav.ts");
    try {
      await Deno.writeFile(opts.out, encodeWav([samples], tokenizer.sampleRate, { bits: 16 }));
    } catch (e) {
      throw new UserError(`cannot write the WAV file: ${(e as Error).message}`, {
        file: opts.out,
        field: "--out",
      });
    }
    return {
      out: opts.out,
      codes: codes.length,
      category,
      sampleRate: tokenizer.sampleRate,
      seconds: samples.length / tokenizer.sampleRate,
      gain,
    };
  } finally {
    await tokenizer.close();
  }
}

/** Options of {@link encodeAudio}. */
export interface EncodeAudioOptions {
  /** Tokenize artifact directory. */
  tokenizer: string;
  /** Audio file (any format `decodeAudioFile` reads). */
  audio: string;
  /** Category name: when set, the full sequence in the vocabulary's layout. */
  category?: string;
}

/**
 * `tokens encode`: an audio file → token ids (mixed to mono and resampled to
 * the tokenizer's rate first, as the tokenize job does).
 */
export async function encodeAudio(opts: EncodeAudioOptions): Promise<number[]> {
  const { vocab, tokenizer } = await openTokenizerDir(opts.tokenizer);
  try {
    if (opts.category !== undefined && !vocab.categories.includes(opts.category)) {
      throw new UserError(`unknown category ${JSON.stringify(opts.category)}`, {
        field: "--category",
        expected: `one of ${vocab.categories.join(", ")}`,
        found: opts.category,
      });
    }
    const { decodeAudioFile, toMono, resample } = await import("../audio/mod.ts");
    const decoded = await decodeAudioFile(opts.audio);
    // The scan job rejects such a file ("cannot-decode"); so does encode, for the same reason.
    for (const channel of decoded.channels) {
      const i = channel.findIndex((v) => !Number.isFinite(v));
      if (i >= 0) {
        throw new UserError(`cannot-decode: non-finite sample at frame ${i}`, {
          file: opts.audio,
          field: "--audio",
          expected: "finite samples (the scan job rejects this file for the same reason)",
          found: `${channel[i]} at frame ${i}`,
        });
      }
    }
    const mono = await resample(toMono(decoded.channels), decoded.sampleRate, tokenizer.sampleRate);
    const codes = await tokenizer.encode(mono);
    return opts.category === undefined
      ? Array.from(codes, (c) => vocab.code_offset + c)
      : encodeSequence(vocab, opts.category, codes);
  } finally {
    await tokenizer.close();
  }
}

function nonNegativeInt(option: string) {
  return (value: string): number => {
    const n = decimalNumber(value);
    if (!Number.isInteger(n) || n < 0) {
      throw new UserError(`${option} must be a non-negative integer`, {
        field: option,
        expected: "an integer >= 0",
        found: value,
      });
    }
    return n;
  };
}

/** Runs `tokens <sub-command> …`; returns the exit code (0 ok or help, 1 bad input or usage). */
export async function main(args: string[]): Promise<number> {
  const program = newProgram(
    "tokens",
    "turn token ids into audio and audio into token ids with a tokenize artifact",
  );
  program.command("to-audio")
    .description("reconstruct a token sequence as a 16-bit mono WAV")
    .requiredOption("--tokenizer <dir>", "a tokenize step's output directory")
    .option("--tokens <ids>", 'token ids, e.g. "1 57 88 2" or "[1, 57, 88, 2]"')
    .option("--tokens-file <file>", "a file holding the ids (JSON list or space-separated)")
    .requiredOption("--out <file>", "the WAV file to write")
    .option("--iterations <n>", "Griffin-Lim iterations (mel-vq)", nonNegativeInt("--iterations"))
    .option("--seed <n>", "Griffin-Lim initial-phase seed (mel-vq)", nonNegativeInt("--seed"))
    .action(async (o) => {
      const r = await tokensToAudio({
        ...o,
        tokenizer: fromCaller(o.tokenizer),
        tokensFile: o.tokensFile === undefined ? undefined : fromCaller(o.tokensFile),
        out: fromCaller(o.out),
      });
      const what = r.category === undefined ? "" : ` (category ${r.category})`;
      const gain = r.gain === 1 ? "" : `, scaled by ${r.gain.toFixed(3)} to avoid clipping`;
      console.log(
        `wrote ${o.out}: ${r.codes} codes${what}, ${
          r.seconds.toFixed(2)
        } s at ${r.sampleRate} Hz${gain}`,
      );
    });
  program.command("encode")
    .description("print an audio file's token ids as JSON")
    .requiredOption("--tokenizer <dir>", "a tokenize step's output directory")
    .requiredOption("--audio <file>", "an audio file (WAV, FLAC, Ogg Vorbis, MP3)")
    .option("--category <name>", "wrap the codes in the vocabulary's layout with this category")
    .action(async (o) => {
      const paths = { tokenizer: fromCaller(o.tokenizer), audio: fromCaller(o.audio) };
      console.log(JSON.stringify(await encodeAudio({ ...o, ...paths })));
    });
  return await runProgram(program, args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
