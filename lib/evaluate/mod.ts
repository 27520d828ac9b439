/**
 * Evaluates a trained SamOut on held-out data (the evaluate job and
 * `deno task eval`): token figures by kind and category, category accuracy
 * with its confusion matrix, and the baselines beside every figure, on the
 * test split (reported) and the validation split (for comparison: early
 * stopping chose the weights on it, so its figures are optimistic). Each
 * split's figures are given again without its sequences that occur token for
 * token in the train split (`unseen`): short, plain sounds can quantise to
 * the same tokens as a training clip, and those test nothing held out.
 *
 * `metrics.json` names are stable (README, "Metrics"): flat headline names
 * (`test_loss`, `category_accuracy`, …) for gates and diffs, and the full
 * figures under `test` and `val`.
 *
 * @module
 */
import { join } from "node:path";
import type { TokenBatch, Vocabulary } from "../data/types.ts";
import { padBatch, readBucketedData } from "../data/bucket.ts";
import { UserError } from "../errors/mod.ts";
import { requestGpu } from "../gpu/device.ts";
import { SamOutInference } from "../model/inference.ts";
import { categoryMethod, categoryScores } from "./categories.ts";
import { samoutFromSafetensors } from "../model/safetensors.ts";
import type { SamOutConfig } from "../model/config.ts";
import {
  baselinePredictors,
  bigramProbability,
  type CategoryFigures,
  categoryFigures,
  categoryPosition,
  fitNgrams,
  occursIn,
  rankByScore,
  type ScoredSequence,
  type SplitTokenFigures,
  tokenFigures,
  type UnseenFigures,
  unseenFigures,
} from "./metrics.ts";

export * from "./metrics.ts";

/** The splits evaluate reports. */
export type EvalSplit = "test" | "val";

/** What {@link evaluateModel} reads. */
export interface EvaluateRequest {
  /** A train artifact (best.safetensors, curves.jsonl, metrics.json). */
  modelDir: string;
  /** A bucket artifact (train/val/test batches, vocab.json). */
  dataDir: string;
  splits: readonly EvalSplit[];
  log?: (message: string) => void;
}

/** One split's figures: the model's and every baseline's. */
export interface SplitEvaluation {
  model: SplitTokenFigures;
  baselines: Record<string, SplitTokenFigures>;
  category: CategoryFigures;
  category_baselines: Record<string, number>;
  sequences: number;
  /** The figures again without the sequences that occur in the train split. */
  unseen: UnseenFigures;
  /** Each sequence's audio codes and the category the model names for it (its ranking's first). */
  predictions: { codes: number[]; predicted: string }[];
}

/** What {@link evaluateModel} returns. */
export interface Evaluation {
  config: SamOutConfig;
  vocab: Vocabulary;
  adapter: string;
  /** How the category is predicted for this layout. */
  category_method: string;
  splits: Partial<Record<EvalSplit, SplitEvaluation>>;
}

interface Row {
  category: number;
  tokens: Int32Array;
}

/** Strips the trailing padding of each row of each batch. */
function rowsOf(batches: readonly TokenBatch[], vocab: Vocabulary): Row[] {
  const rows: Row[] = [];
  for (const b of batches) {
    for (let r = 0; r < b.rows; r++) {
      const row = b.tokens.subarray(r * b.length, (r + 1) * b.length);
      let n = row.length;
      while (n > 0 && row[n - 1] === 0) n--;
      const tokens = row.slice(0, n);
      const pos = categoryPosition(vocab, tokens);
      if (pos < 0) {
        throw new UserError("a bucketed sequence has no category token", {
          expected: `a ${vocab.layout}-layout sequence with one category token`,
        });
      }
      rows.push({ category: tokens[pos] - vocab.category_offset, tokens });
    }
  }
  return rows;
}

/** Packs rows into padded batches of at most `maxRows`, keeping order. */
function batchesOf(rows: readonly Row[], maxRows: number): TokenBatch[] {
  const out: TokenBatch[] = [];
  for (let i = 0; i < rows.length; i += maxRows) {
    out.push(padBatch(rows.slice(i, i + maxRows).map((r) => r.tokens)));
  }
  return out;
}

/** Evaluates the best weights of `req.modelDir` (see the module doc). */
export async function evaluateModel(req: EvaluateRequest): Promise<Evaluation> {
  const weightsFile = join(req.modelDir, "best.safetensors");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(weightsFile);
  } catch (e) {
    throw new UserError(`cannot read the trained weights: ${(e as Error).message}`, {
      file: weightsFile,
      expected: "a train artifact with best.safetensors",
    });
  }
  const { cfg, params } = samoutFromSafetensors(bytes, { file: weightsFile });
  const data = await readBucketedData(req.dataDir, { maxPositions: cfg.maxPositions });
  const vocab = data.vocab;
  if (vocab.code_offset + vocab.codebook_size !== cfg.vocabSize) {
    throw new UserError("the model and the data have different vocabularies", {
      file: weightsFile,
      expected: `a model with ${vocab.code_offset + vocab.codebook_size} tokens (the data's)`,
      found: `${cfg.vocabSize} tokens`,
      hint: "evaluate a model with the bucket artifact it was trained on",
    });
  }
  const trainRows = rowsOf(data.train, vocab);
  const trainTokens = trainRows.map((r) => r.tokens);
  const ngrams = fitNgrams(vocab, trainRows);
  const predictors = baselinePredictors(ngrams);
  const C = vocab.categories.length;
  const trainCounts = new Array<number>(C).fill(0);
  for (const r of trainRows) trainCounts[r.category]++;
  const majority = rankByScore(trainCounts)[0];

  const splitRows: Partial<Record<EvalSplit, Row[]>> = {};
  for (const split of req.splits) {
    const rows = rowsOf(data[split], vocab);
    if (rows.length === 0) {
      throw new UserError(`the ${split} split is empty`, {
        file: join(req.dataDir, "batches.json"),
        expected: `${split} sequences (the scan step's ${split}_fraction above 0)`,
        hint: split === "test"
          ? "set test_fraction in the scan step, or evaluate with --split val"
          : "raise val_fraction in the scan step",
      });
    }
    splitRows[split] = rows;
  }
  const all = Object.values(splitRows).flat();
  const maxRows = Math.max(...data.train.map((b) => b.rows), ...data.val.map((b) => b.rows), 1);
  const maxLength = Math.max(...all.map((r) => r.tokens.length), 2);
  const gpu = await requestGpu();
  const model = await SamOutInference.create(gpu, {
    config: cfg,
    maxBatch: maxRows,
    maxLength,
    maxPicks: maxRows,
  });
  try {
    model.uploadWeights(params);
    const result: Evaluation = {
      config: cfg,
      vocab,
      adapter: gpu.adapterDescription,
      category_method: categoryMethod(vocab),
      splits: {},
    };
    for (const split of req.splits) {
      const rows = splitRows[split]!;
      req.log?.(`evaluating ${rows.length} ${split} sequences`);
      const scored: ScoredSequence[] = [];
      const rankings: number[][] = [];
      for (const batch of batchesOf(rows, maxRows)) {
        const first = scored.length;
        const s = await model.score(batch);
        const S = batch.length - 1;
        for (let r = 0; r < batch.rows; r++) {
          const row = rows[first + r];
          const n = row.tokens.length - 1;
          scored.push({
            category: vocab.categories[row.category],
            tokens: row.tokens,
            nll: s.nll.subarray(r * S, r * S + n),
            hit: s.hit.subarray(r * S, r * S + n),
          });
        }
        const batchRows = rows.slice(first, first + batch.rows);
        rankings.push(...await rankCategories(model, vocab, batchRows));
      }
      const baselines: Record<string, SplitTokenFigures> = {};
      const baselineScored: Record<string, { scored: ScoredSequence[]; hasLoss: boolean }> = {};
      for (const [name, predict] of Object.entries(predictors)) {
        const b = {
          scored: rows.map((r) => ({
            category: vocab.categories[r.category],
            tokens: r.tokens,
            ...predict(r.tokens),
          })),
          hasLoss: name !== "repeat_previous",
        };
        baselineScored[name] = b;
        baselines[name] = tokenFigures(vocab, b.scored, b.hasLoss);
      }
      const truth = rows.map((r) => r.category);
      const category = categoryFigures(vocab.categories, truth, rankings);
      const category_baselines: Record<string, number> = {
        chance: 1 / C,
        majority_class: truth.filter((t) => t === majority).length / truth.length,
      };
      const baselineRankings: Record<string, number[][]> = {
        majority_class: rows.map(() => [majority]),
      };
      if (vocab.layout === "seed") {
        // The bigram's guess of the category token after the last audio token.
        const bigramRank = rows.map((r) => {
          const prev = r.tokens[categoryPosition(vocab, r.tokens) - 1];
          return rankByScore(
            vocab.categories.map((_, c) =>
              bigramProbability(ngrams, prev, vocab.category_offset + c)
            ),
          );
        });
        category_baselines.bigram = categoryFigures(vocab.categories, truth, bigramRank)
          .category_accuracy;
        baselineRankings.bigram = bigramRank;
      }
      result.splits[split] = {
        model: tokenFigures(vocab, scored),
        baselines,
        category,
        category_baselines,
        sequences: rows.length,
        unseen: unseenFigures(
          vocab,
          scored,
          baselineScored,
          truth,
          rankings,
          occursIn(trainTokens, rows.map((r) => r.tokens)),
          baselineRankings,
        ),
        predictions: rows.map((r, i) => ({
          codes: audioCodes(vocab, r.tokens),
          predicted: vocab.categories[rankings[i][0]],
        })),
      };
    }
    return result;
  } finally {
    model.destroy();
  }
}

/** Each row's categories, best first (categories.ts; {@link Evaluation.category_method}). */
async function rankCategories(
  model: SamOutInference,
  vocab: Vocabulary,
  rows: readonly Row[],
): Promise<number[][]> {
  const codes = rows.map((r) => audioCodes(vocab, r.tokens));
  return (await categoryScores(model, vocab, codes)).map((scores) => rankByScore(scores));
}

/** A sequence's audio codes (codebook indices, not token ids). */
function audioCodes(vocab: Vocabulary, tokens: ArrayLike<number>): number[] {
  return Array.from(tokens).filter((id) => id >= vocab.code_offset).map((id) =>
    id - vocab.code_offset
  );
}
