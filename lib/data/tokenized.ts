/**
 * The tokenize artifact: `vocab.json`, `sequences.json` and `tokens.u32`
 * (every sequence's token ids, concatenated, uint32 LE), and its reader.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "../errors/mod.ts";
import type { Split } from "./split.ts";
import type { Vocabulary } from "./types.ts";
import { checkVocabulary, vocabularySize } from "./vocab.ts";

/** One entry of `sequences.json`: a clip's place in `tokens.u32`. */
export interface SequenceRecord {
  /** The audio file, relative to the scan's root. */
  path: string;
  category: string;
  /** Hex SHA-256 of the audio file's bytes. */
  sha256: string;
  split: Split;
  /** Index of the sequence's first token in `tokens.u32` (in tokens, not bytes). */
  offset: number;
  /** Tokens in the sequence. */
  length: number;
}

/** A tokenize artifact in memory. */
export interface TokenizedData {
  vocab: Vocabulary;
  sequences: SequenceRecord[];
  /** `[total tokens]` all sequences concatenated. */
  tokens: Uint32Array;
}

/** The token ids of sequence `i` (a view into `data.tokens`). */
export function sequenceTokens(data: TokenizedData, i: number): Uint32Array {
  const s = data.sequences[i];
  return data.tokens.subarray(s.offset, s.offset + s.length);
}

/** Reads and parses a JSON file; `UserError` naming the file when it is missing or malformed. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new UserError(`cannot read the file: ${e instanceof Error ? e.message : String(e)}`, {
      file,
      cause: e,
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`the file is not valid JSON: ${e instanceof Error ? e.message : e}`, {
      file,
      cause: e,
    });
  }
}

/** Reads a little-endian uint32 file (a copy, aligned). */
export async function readUint32File(file: string): Promise<Uint32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new UserError(`cannot read the file: ${e instanceof Error ? e.message : String(e)}`, {
      file,
      cause: e,
    });
  }
  if (bytes.byteLength % 4 !== 0) {
    throw new UserError("the file's size is not a multiple of 4 bytes", {
      file,
      expected: "uint32 little-endian values",
      found: `${bytes.byteLength} bytes`,
    });
  }
  const out = new Uint32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/**
 * Reads a tokenize artifact from `dir` and checks it: a valid vocabulary,
 * sequences that tile `tokens.u32` in order, and every id inside the
 * vocabulary. Problems are `UserError`s naming the file.
 */
export async function readTokenizedData(dir: string): Promise<TokenizedData> {
  const vocabFile = join(dir, "vocab.json");
  const vocab = checkVocabulary(await readJsonFile(vocabFile), vocabFile);
  const seqFile = join(dir, "sequences.json");
  const raw = await readJsonFile(seqFile);
  const tokensFile = join(dir, "tokens.u32");
  const tokens = await readUint32File(tokensFile);
  if (!Array.isArray(raw)) {
    throw new UserError("sequences.json is not a list", {
      file: seqFile,
      expected: "a JSON array",
    });
  }
  let next = 0;
  const sequences = raw.map((r: Partial<SequenceRecord>, i): SequenceRecord => {
    const ok = typeof r === "object" && r !== null && typeof r.path === "string" &&
      typeof r.category === "string" && typeof r.sha256 === "string" &&
      (r.split === "train" || r.split === "val" || r.split === "test") && r.offset === next &&
      Number.isInteger(r.length) && (r.length as number) > 0;
    if (!ok) {
      throw new UserError(`sequences.json entry ${i} is malformed`, {
        file: seqFile,
        field: `[${i}]`,
        expected:
          `{path, category, sha256, split: "train"|"val"|"test", offset: ${next}, length > 0} (entries tile tokens.u32 in order)`,
        found: JSON.stringify(r),
      });
    }
    next += r.length as number;
    return r as SequenceRecord;
  });
  if (next !== tokens.length) {
    throw new UserError("tokens.u32 does not match sequences.json", {
      file: tokensFile,
      expected: `${next} tokens (the sum of the sequence lengths)`,
      found: `${tokens.length} tokens`,
    });
  }
  const size = vocabularySize(vocab);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] >= size) {
      throw new UserError(`token id ${tokens[i]} at index ${i} is outside the vocabulary`, {
        file: tokensFile,
        expected: `ids in [0, ${size})`,
        found: String(tokens[i]),
      });
    }
  }
  return { vocab, sequences, tokens };
}
