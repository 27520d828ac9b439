/**
 * A tiny random SamOut at awkward sizes (V 37, d 24, H 4, L 2, P 20: nothing
 * a multiple of a tile) and the three artifacts the export job reads, written
 * by hand: a train artifact (`best.safetensors`, `config.json`, `vocab.json`,
 * `metrics.json`), a tokenize artifact (mel-vq: `tokenizer.json`,
 * `codebook.f32`, `sequences.json`, `tokens.u32`, `vocab.json`) and an
 * evaluate artifact (`metrics.json` with the flat names). For the export
 * tests (`lib/export/*_test.ts`, `tests/export_*_test.ts`).
 *
 * @module
 */
import { join } from "node:path";
import type { SequenceRecord } from "../lib/data/tokenized.ts";
import type { TokenBatch, Vocabulary } from "../lib/data/types.ts";
import { buildVocabulary } from "../lib/data/vocab.ts";
import type { SamOutConfig } from "../lib/model/config.ts";
import { initParameters, parameterCount } from "../lib/model/params.ts";
import { samoutToSafetensors } from "../lib/model/safetensors.ts";
import { Random } from "../lib/random/mod.ts";

/** 4 special tokens + 3 categories + 30 codes = 37. */
export const TINY: SamOutConfig = {
  vocabSize: 37,
  hidden: 24,
  heads: 4,
  layers: 2,
  maxPositions: 20,
};

/** The tiny model's vocabulary (seed layout). */
export function tinyVocab(): Vocabulary {
  return buildVocabulary(["coin", "jump", "laser"], 30, "seed");
}

/** Random weights at init scale (every tensor nonzero except the padding row). */
export function tinyWeights(seed = 5): Map<string, Float32Array> {
  return initParameters(TINY, seed);
}

/** A padded batch of random non-padding ids, one row per length (`lengths[i] <= length`). */
export function randomIds(seed: number, length: number, lengths: number[]): TokenBatch {
  const rng = new Random(seed, "export_fixture/ids");
  const tokens = new Int32Array(lengths.length * length);
  lengths.forEach((n, r) => {
    for (let t = 0; t < n; t++) tokens[r * length + t] = 1 + rng.int(TINY.vocabSize - 1);
  });
  return { rows: lengths.length, length, tokens };
}

/** The paths of the artifacts {@link writeTinyArtifacts} wrote. */
export interface TinyArtifacts {
  modelDir: string;
  tokensDir: string;
  evaluateDir: string;
}

/** Test-split sequence lengths: one longer than P (clipped), one of P, short ones. */
const TEST_LENGTHS = [26, 20, 13, 6, 3];

/** Writes the three input artifacts of a tiny export under `root`. */
export async function writeTinyArtifacts(root: string, seed = 5): Promise<TinyArtifacts> {
  const vocab = tinyVocab();
  const vocabText = JSON.stringify(vocab, null, 2) + "\n";
  const modelDir = join(root, "train");
  const tokensDir = join(root, "tokenize");
  const evaluateDir = join(root, "evaluate");
  for (const d of [modelDir, tokensDir, evaluateDir]) await Deno.mkdir(d, { recursive: true });

  await Deno.writeFile(
    join(modelDir, "best.safetensors"),
    samoutToSafetensors(TINY, tinyWeights(seed)),
  );
  const config = {
    voc_size: TINY.vocabSize,
    hidden_size: TINY.hidden,
    num_heads: TINY.heads,
    num_layers: TINY.layers,
    max_positions: TINY.maxPositions,
    parameters: parameterCount(TINY),
  };
  await Deno.writeTextFile(join(modelDir, "config.json"), JSON.stringify(config, null, 2));
  await Deno.writeTextFile(join(modelDir, "vocab.json"), vocabText);
  await Deno.writeTextFile(
    join(modelDir, "metrics.json"),
    JSON.stringify({
      steps: 12,
      epochs_completed: 3,
      stopped: "early",
      best_step: 8,
      best_val_loss: 3.1,
      uniform_loss: Math.log(TINY.vocabSize),
    }),
  );

  const nMels = 8;
  await Deno.writeTextFile(join(tokensDir, "vocab.json"), vocabText);
  await Deno.writeTextFile(
    join(tokensDir, "tokenizer.json"),
    JSON.stringify({
      kind: "mel-vq",
      sample_rate: 8000,
      n_fft: 256,
      win_length: 200,
      hop_length: 160,
      n_mels: nMels,
      f_min: 0,
      f_max: 4000,
      frame_rate_hz: 50,
      codebook_size: vocab.codebook_size,
      layout: vocab.layout,
      codebook: "codebook.f32",
    }),
  );
  const rng = new Random(seed, "export_fixture/data");
  const codebook = new Float32Array(vocab.codebook_size * nMels).map(() => rng.normal(-4, 1));
  await Deno.writeFile(join(tokensDir, "codebook.f32"), new Uint8Array(codebook.buffer));
  const sequences: SequenceRecord[] = [];
  const tokens: number[] = [];
  const categories = vocab.categories;
  const add = (split: SequenceRecord["split"], length: number, i: number) => {
    const category = categories[i % categories.length];
    const ids: number[] = [vocab.im_start_id];
    while (ids.length < length - 2) ids.push(vocab.code_offset + rng.int(vocab.codebook_size));
    ids.push(vocab.category_offset + categories.indexOf(category), vocab.im_end_id);
    sequences.push({
      path: `${category}/${split}_${i}.wav`,
      category,
      sha256: String(i).padStart(64, "0"),
      split,
      offset: tokens.length,
      length: ids.length,
    });
    tokens.push(...ids);
  };
  [9, 11, 14].forEach((n, i) => add("train", n, i));
  TEST_LENGTHS.forEach((n, i) => add("test", n, 10 + i));
  await Deno.writeTextFile(join(tokensDir, "sequences.json"), JSON.stringify(sequences, null, 1));
  await Deno.writeFile(
    join(tokensDir, "tokens.u32"),
    new Uint8Array(Uint32Array.from(tokens).buffer),
  );

  await Deno.writeTextFile(
    join(evaluateDir, "metrics.json"),
    JSON.stringify({
      test_loss: 2.5,
      bigram_test_loss: 2.75,
      unigram_test_loss: 3.4,
      uniform_test_loss: Math.log(TINY.vocabSize),
      test_audio_loss: 2.6,
      bigram_test_audio_loss: 2.8,
      test_token_accuracy: 0.42,
      repeat_previous_test_token_accuracy: 0.31,
      bigram_test_token_accuracy: 0.4,
      category_accuracy: 0.8,
      category_top3_accuracy: 1,
      macro_f1: 0.79,
      chance_category_accuracy: 1 / 3,
      majority_category_accuracy: 0.4,
      reported_split: "test",
      category_method: "argmax over the category tokens",
    }),
  );
  return { modelDir, tokensDir, evaluateDir };
}
