/**
 * Length bucketing: token sequences → padded batches with little padding, and
 * the bucket artifact's files.
 *
 * Sequences are sorted by length and cut into batches of `batchSize`; each
 * batch is padded with 0 (`<|pad|>`) only to its own longest row (the seed's
 * dynamic padding). Sequences longer than `maxLength` are truncated or
 * dropped (see {@link fitToLength}).
 *
 * The artifact:
 * - `train.tokens`, `val.tokens`, `test.tokens`: every batch's `[rows, length]` matrix,
 *   row-major, concatenated; uint16 LE when the vocabulary has at most 65536
 *   ids, else uint32 LE (`batches.json` says which);
 * - `batches.json`: {@link BucketIndex};
 * - `sequences.json`: {@link BucketedSequence} per sequence, which
 *   `batches.json` refers to by index;
 * - `vocab.json`: a copy of the tokenize artifact's.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import type { Split } from "./split.ts";
import { readJsonFile, sequenceTokens, type TokenizedData } from "./tokenized.ts";
import type { BucketedData, TokenBatch, Vocabulary } from "./types.ts";
import { checkVocabulary, layoutFraming, vocabularySize } from "./vocab.ts";

/** What to do with a sequence longer than `maxLength`. */
export type Overflow = "truncate" | "drop";

/** Options of {@link bucketTokenizedData}. */
export interface BucketOptions {
  /** Rows per batch (the last batch of a split may have fewer). */
  batchSize: number;
  /** Longest sequence kept, in tokens. */
  maxLength: number;
  overflow: Overflow;
  /**
   * Order sequences of equal length randomly (seeded) instead of by their
   * place in `sequences.json`, so batches mix categories even when every clip
   * has the same length.
   */
  shuffle: boolean;
  seed: number;
}

/** One entry of the bucket artifact's `sequences.json`. */
export interface BucketedSequence {
  path: string;
  category: string;
  split: Split;
  /** Tokens kept (after truncation). */
  length: number;
  /** Tokens in the tokenize artifact. */
  original_length: number;
}

/** One batch in `batches.json`. */
export interface BatchEntry {
  rows: number;
  /** Padded row length: the longest of the batch's sequences. */
  length: number;
  /** Byte offset of the batch's `[rows, length]` matrix in `<split>.tokens`. */
  offset: number;
  /** Indices into `sequences.json`, one per row, in row order. */
  sequences: number[];
}

/** `batches.json`. */
export interface BucketIndex {
  format: "samout-buckets/1";
  /** Element type of `train.tokens` and `val.tokens`, little-endian. */
  dtype: "uint16" | "uint32";
  vocab_size: number;
  /** Longest batch length over both splits. */
  max_length: number;
  train: BatchEntry[];
  val: BatchEntry[];
  /** Absent in artifacts from before the test split: read as no test batches. */
  test?: BatchEntry[];
}

/** Rows of token ids as one batch, each padded with 0 (the padding id) to the longest row. */
export function padBatch(rows: readonly ArrayLike<number>[]): TokenBatch {
  const length = Math.max(...rows.map((r) => r.length));
  const tokens = new Int32Array(rows.length * length);
  rows.forEach((r, i) => tokens.set(r, i * length));
  return { rows: rows.length, length, tokens };
}

/** The smallest `maxLength` that keeps at least one audio code in a layout. */
export function minimumMaxLength(layout: Vocabulary["layout"]): number {
  const { head, tail } = layoutFraming(layout);
  return head + 1 + tail;
}

/**
 * Fits a sequence into `maxLength` tokens by dropping audio codes from the
 * end of the audio part and keeping the framing, so the result is still a
 * well-formed sequence: for "seed" `<|im_start|> a_1 … a_m <category> <|im_end|>`
 * (the category token, which the seed's layout predicts after the audio,
 * survives), for "label-first" `<|im_start|> <category> <|wav|> a_1 … a_m <|im_end|>`.
 * Returns `ids` itself when it already fits.
 */
export function fitToLength(ids: Uint32Array, vocab: Vocabulary, maxLength: number): Uint32Array {
  if (ids.length <= maxLength) return ids;
  const { head, tail } = layoutFraming(vocab.layout);
  if (maxLength < head + 1 + tail) {
    throw new RangeError(`fitToLength: maxLength ${maxLength} < ${head + 1 + tail}`);
  }
  const out = new Uint32Array(maxLength);
  out.set(ids.subarray(0, maxLength - tail));
  out.set(ids.subarray(ids.length - tail), maxLength - tail);
  return out;
}

/**
 * Groups sequences into batches of `batchSize` by length: indices sorted by
 * length (ties by `tieKey`, then index), cut in order. Returns the batches as
 * lists of indices into `lengths`.
 */
export function bucketBySequenceLength(
  lengths: readonly number[],
  batchSize: number,
  tieKey?: readonly number[],
): number[][] {
  const order = lengths.map((_, i) => i);
  order.sort((a, b) => lengths[a] - lengths[b] || (tieKey ? tieKey[a] - tieKey[b] : 0) || a - b);
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}

/** Real tokens / padded slots when each batch is padded to its own longest row (1 for no batches). */
export function paddingEfficiency(lengths: readonly number[], batches: number[][]): number {
  let real = 0, slots = 0;
  for (const b of batches) {
    let longest = 0;
    for (const i of b) {
      real += lengths[i];
      longest = Math.max(longest, lengths[i]);
    }
    slots += longest * b.length;
  }
  return slots === 0 ? 1 : real / slots;
}

/** Summary of a length distribution: quantiles and a power-of-two histogram. */
export interface LengthSummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  max: number;
  /** `{"<=64": n, "<=128": n, …}`: counts per power-of-two upper bound (from 64). */
  histogram: Record<string, number>;
}

/** Summarises sequence lengths for metrics. */
export function summariseLengths(lengths: readonly number[]): LengthSummary {
  const sorted = [...lengths].sort((a, b) => a - b);
  const n = sorted.length;
  const q = (p: number) => n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(p * (n - 1) + 0.5))];
  const histogram: Record<string, number> = {};
  for (const len of sorted) {
    let edge = 64;
    while (edge < len) edge *= 2;
    histogram[`<=${edge}`] = (histogram[`<=${edge}`] ?? 0) + 1;
  }
  return {
    count: n,
    min: n ? sorted[0] : 0,
    mean: n ? sorted.reduce((a, b) => a + b, 0) / n : 0,
    p50: q(0.5),
    p90: q(0.9),
    max: n ? sorted[n - 1] : 0,
    histogram,
  };
}

/** One split's batches, ready to write. */
export interface BucketedSplit {
  batches: TokenBatch[];
  /** Indices into {@link BucketResult.sequences}, per batch, in row order. */
  members: number[][];
  /** Padding efficiency had the sequences been batched in their original order. */
  efficiencyUnsorted: number;
  /** Padding efficiency of `batches`. */
  efficiency: number;
}

/** The result of {@link bucketTokenizedData}. */
export interface BucketResult {
  vocab: Vocabulary;
  /** Kept sequences (dropped ones are not here), in the tokenize artifact's order. */
  sequences: BucketedSequence[];
  /** Kept sequences' token ids (truncated where needed), parallel to `sequences`. */
  tokens: Uint32Array[];
  train: BucketedSplit;
  val: BucketedSplit;
  /** Empty when the tokenize artifact has no test sequences. */
  test: BucketedSplit;
  truncated: string[];
  dropped: string[];
  /** Lengths in the tokenize artifact, before fitting. */
  originalLengths: number[];
}

/**
 * Buckets a tokenize artifact (see the module doc). The split comes from each
 * sequence's `split` field. `maxLength` must be at least
 * {@link minimumMaxLength} for the vocabulary's layout (the caller validates
 * and reports; a smaller value is a `RangeError` here).
 */
export function bucketTokenizedData(data: TokenizedData, opts: BucketOptions): BucketResult {
  const min = minimumMaxLength(data.vocab.layout);
  if (opts.maxLength < min) {
    throw new RangeError(`bucketTokenizedData: maxLength ${opts.maxLength} < ${min}`);
  }
  const sequences: BucketedSequence[] = [];
  const tokens: Uint32Array[] = [];
  const truncated: string[] = [], dropped: string[] = [];
  const originalLengths: number[] = [];
  data.sequences.forEach((s, i) => {
    originalLengths.push(s.length);
    let ids = sequenceTokens(data, i);
    if (ids.length > opts.maxLength) {
      if (opts.overflow === "drop") {
        dropped.push(s.path);
        return;
      }
      truncated.push(s.path);
      ids = fitToLength(ids, data.vocab, opts.maxLength);
    }
    sequences.push({
      path: s.path,
      category: s.category,
      split: s.split,
      length: ids.length,
      original_length: s.length,
    });
    tokens.push(ids);
  });
  const bucketSplit = (split: Split): BucketedSplit => {
    const idx = sequences.flatMap((s, i) => s.split === split ? [i] : []);
    const lengths = idx.map((i) => sequences[i].length);
    let tieKey: number[] | undefined;
    if (opts.shuffle) {
      const rng = new Random(opts.seed, `bucket/${split}`);
      tieKey = rng.shuffle(lengths.map((_, i) => i));
    }
    const local = bucketBySequenceLength(lengths, opts.batchSize, tieKey);
    const unsorted: number[][] = [];
    for (let i = 0; i < lengths.length; i += opts.batchSize) {
      unsorted.push(lengths.slice(i, i + opts.batchSize).map((_, j) => i + j));
    }
    const members = local.map((b) => b.map((j) => idx[j]));
    const batches = members.map((rows) => padBatch(rows.map((i) => tokens[i])));
    return {
      batches,
      members,
      efficiencyUnsorted: paddingEfficiency(lengths, unsorted),
      efficiency: paddingEfficiency(lengths, local),
    };
  };
  return {
    vocab: data.vocab,
    sequences,
    tokens,
    train: bucketSplit("train"),
    val: bucketSplit("val"),
    test: bucketSplit("test"),
    truncated,
    dropped,
    originalLengths,
  };
}

function encodeBatches(batches: TokenBatch[], width: 2 | 4): Uint8Array {
  const total = batches.reduce((a, b) => a + b.rows * b.length, 0);
  const bytes = new Uint8Array(total * width);
  const view = new DataView(bytes.buffer);
  let p = 0;
  for (const b of batches) {
    for (let i = 0; i < b.tokens.length; i++, p += width) {
      if (width === 2) view.setUint16(p, b.tokens[i], true);
      else view.setUint32(p, b.tokens[i], true);
    }
  }
  return bytes;
}

/** Writes the bucket artifact's files (see the module doc) into `dir`. */
export async function writeBucketedData(dir: string, result: BucketResult): Promise<BucketIndex> {
  const vocabSize = vocabularySize(result.vocab);
  const width = vocabSize <= 65536 ? 2 : 4;
  const entries = (split: BucketedSplit): BatchEntry[] => {
    let offset = 0;
    return split.batches.map((b, i) => {
      const e = { rows: b.rows, length: b.length, offset, sequences: split.members[i] };
      offset += b.rows * b.length * width;
      return e;
    });
  };
  const all = [...result.train.batches, ...result.val.batches, ...result.test.batches];
  const index: BucketIndex = {
    format: "samout-buckets/1",
    dtype: width === 2 ? "uint16" : "uint32",
    vocab_size: vocabSize,
    max_length: all.reduce((m, b) => Math.max(m, b.length), 0),
    train: entries(result.train),
    val: entries(result.val),
    test: entries(result.test),
  };
  for (const split of ["train", "val", "test"] as const) {
    await Deno.writeFile(join(dir, `${split}.tokens`), encodeBatches(result[split].batches, width));
  }
  await Deno.writeTextFile(join(dir, "batches.json"), JSON.stringify(index) + "\n");
  await Deno.writeTextFile(
    join(dir, "sequences.json"),
    JSON.stringify(result.sequences, null, 1) + "\n",
  );
  await Deno.writeTextFile(
    join(dir, "vocab.json"),
    JSON.stringify(result.vocab, null, 2) + "\n",
  );
  return index;
}

/** Options of {@link readBucketedData}. */
export interface ReadBucketedOptions {
  /**
   * The model's maximum positions: a `UserError` when a batch is longer (the
   * fix is the bucket step's `max_length` or the model's `max_positions`).
   */
  maxPositions?: number;
}

/**
 * Reads a bucket artifact: the vocabulary and every batch as `[rows, length]`
 * int32 token ids. Checks file sizes, ids against the vocabulary and, when
 * given, the longest batch against `maxPositions`; `UserError`s name the file.
 */
export async function readBucketedData(
  dir: string,
  opts: ReadBucketedOptions = {},
): Promise<BucketedData> {
  const vocabFile = join(dir, "vocab.json");
  const vocab = checkVocabulary(await readJsonFile(vocabFile), vocabFile);
  const indexFile = join(dir, "batches.json");
  const index = await readJsonFile(indexFile) as BucketIndex;
  const bad = (what: string): never => {
    throw new UserError(`batches.json is not a valid bucket index: ${what}`, {
      file: indexFile,
      expected: "the batches.json written by the bucket job",
    });
  };
  if (typeof index !== "object" || index === null || index.format !== "samout-buckets/1") {
    bad("unknown format");
  }
  if (index.dtype !== "uint16" && index.dtype !== "uint32") bad("dtype");
  if (!Array.isArray(index.train) || !Array.isArray(index.val)) bad("train/val lists");
  if (index.test !== undefined && !Array.isArray(index.test)) bad("test list");
  const size = vocabularySize(vocab);
  if (index.vocab_size !== size) bad(`vocab_size ${index.vocab_size} != vocab.json's ${size}`);
  const width = index.dtype === "uint16" ? 2 : 4;
  const readSplit = async (split: Split): Promise<TokenBatch[]> => {
    const entries = index[split];
    if (entries === undefined || (split === "test" && entries.length === 0)) return [];
    const file = join(dir, `${split}.tokens`);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (e) {
      throw new UserError(`cannot read the file: ${e instanceof Error ? e.message : e}`, {
        file,
        cause: e,
      });
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let expectedOffset = 0;
    const batches = entries.map((e, b) => {
      if (
        !Number.isInteger(e.rows) || e.rows < 1 || !Number.isInteger(e.length) || e.length < 1 ||
        e.offset !== expectedOffset
      ) {
        bad(`${split}[${b}] has rows ${e.rows}, length ${e.length}, offset ${e.offset}`);
      }
      const n = e.rows * e.length;
      expectedOffset += n * width;
      if (expectedOffset > bytes.byteLength) {
        throw new UserError(`${split}.tokens is shorter than batches.json says`, {
          file,
          expected: `at least ${expectedOffset} bytes`,
          found: `${bytes.byteLength} bytes`,
        });
      }
      const tokens = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const id = width === 2
          ? view.getUint16(e.offset + 2 * i, true)
          : view.getUint32(e.offset + 4 * i, true);
        if (id >= size) {
          throw new UserError(`token id ${id} in ${split} batch ${b} is outside the vocabulary`, {
            file,
            expected: `ids in [0, ${size})`,
            found: String(id),
          });
        }
        tokens[i] = id;
      }
      return { rows: e.rows, length: e.length, tokens };
    });
    if (expectedOffset !== bytes.byteLength) {
      throw new UserError(`${split}.tokens is longer than batches.json says`, {
        file,
        expected: `${expectedOffset} bytes`,
        found: `${bytes.byteLength} bytes`,
      });
    }
    return batches;
  };
  const train = await readSplit("train");
  const val = await readSplit("val");
  const test = await readSplit("test");
  const maxLength = [...train, ...val, ...test].reduce((m, b) => Math.max(m, b.length), 0);
  if (opts.maxPositions !== undefined && maxLength > opts.maxPositions) {
    throw new UserError(
      `the bucketed data has sequences of ${maxLength} tokens, longer than the model's ${opts.maxPositions} positions`,
      {
        file: indexFile,
        field: "max_length",
        expected: `sequences of at most ${opts.maxPositions} tokens`,
        found: `${maxLength} tokens`,
        hint:
          `set the bucket step's max_length to at most ${opts.maxPositions}, or raise the model's max_positions`,
      },
    );
  }
  return { vocab, maxLength, train, val, test };
}
