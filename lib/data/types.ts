/**
 * The shapes of data that flow between the tokenize, bucket and train jobs.
 * Readers for these live in `lib/data/mod.ts`.
 *
 * @module
 */

/** `vocab.json` written by tokenize (and copied by bucket). Token id = index in `tokens`. */
export interface Vocabulary {
  /** Token strings by id: "<|pad|>", "<|im_start|>", "<|im_end|>", "<|wav|>", categories (sorted), "0".."K-1". */
  tokens: string[];
  pad_id: 0;
  im_start_id: 1;
  im_end_id: 2;
  wav_id: 3;
  /** Category names, sorted; category i has id `category_offset + i`. */
  categories: string[];
  category_offset: number;
  /** Audio code c has id `code_offset + c`. */
  code_offset: number;
  codebook_size: number;
  /** "seed": <|im_start|> audio… <category> <|im_end|>; "label-first": <|im_start|> <category> <|wav|> audio… <|im_end|>. */
  layout: "seed" | "label-first";
}

/** One padded batch: `rows` sequences, each padded with 0 to `length` (its own longest). */
export interface TokenBatch {
  rows: number;
  length: number;
  /** [rows, length] row-major token ids, padding = 0. */
  tokens: Int32Array;
}

/** What training reads from a bucket artifact. */
export interface BucketedData {
  vocab: Vocabulary;
  /** Longest sequence length over all batches (<= the model's max positions). */
  maxLength: number;
  train: TokenBatch[];
  val: TokenBatch[];
  /** Held-out batches for reported figures (empty when the scan made no test split). */
  test: TokenBatch[];
}
