/**
 * Data between the tokenize, bucket and train jobs: the vocabulary and
 * sequence layouts, the train/validation split, and readers of the tokenize
 * and bucket artifacts (`readTokenizedData`, `readBucketedData`), and where a
 * scan's audio is (`scanSourceOf`, `scanAudioRoot`).
 *
 * @module
 */
export * from "./types.ts";
export * from "./split.ts";
export * from "./vocab.ts";
export * from "./tokenized.ts";
export * from "./bucket.ts";
export * from "./scan_source.ts";
