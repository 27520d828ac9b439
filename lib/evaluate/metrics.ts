/**
 * The evaluate job's figures, as pure functions over token sequences and
 * per-target scores, so they can be checked by hand and recomputed
 * independently (tools/check_evaluate.py does that through PyTorch).
 *
 * Targets follow training exactly: a sequence `seq` (no padding) is scored
 * with input `seq[:-1]` against target `seq[1:]`; every target is
 * non-padding. A predictor gives each target a loss (nats) and a hit (its
 * top-1 guess equals the target).
 *
 * Baselines are fitted on the train split and scored on the same targets as
 * the model: uniform over the vocabulary, a unigram and a bigram model with
 * add-k smoothing, and "repeat the previous token".
 *
 * @module
 */
import type { Vocabulary } from "../data/types.ts";
import { vocabularySize } from "../data/vocab.ts";

/** What a target token is. */
export type TokenKind = "audio" | "category" | "end" | "other";

/** The kind of token id `id` in `vocab`. */
export function tokenKind(vocab: Vocabulary, id: number): TokenKind {
  if (id >= vocab.code_offset) return "audio";
  if (id >= vocab.category_offset && id < vocab.category_offset + vocab.categories.length) {
    return "category";
  }
  if (id === vocab.im_end_id) return "end";
  return "other";
}

/** One scored sequence: its tokens and, per target t (predicting `tokens[t + 1]`), a loss and a hit. */
export interface ScoredSequence {
  category: string;
  tokens: ArrayLike<number>;
  /** `[length - 1]` nats. */
  nll: ArrayLike<number>;
  /** `[length - 1]` 1 or 0. */
  hit: ArrayLike<number>;
}

/** Token-level figures over a set of targets. */
export interface TokenFigures {
  /** Mean loss over the targets (nats per token); null without targets or loss. */
  loss: number | null;
  token_accuracy: number | null;
  perplexity: number | null;
  tokens: number;
}

/** Figures of one predictor on one split. */
export interface SplitTokenFigures extends TokenFigures {
  by_kind: Record<"audio" | "category" | "end", TokenFigures>;
  by_category: Record<string, TokenFigures>;
}

function figures(lossSum: number, hits: number, n: number, hasLoss: boolean): TokenFigures {
  const loss = hasLoss && n > 0 ? lossSum / n : null;
  return {
    loss,
    token_accuracy: n > 0 ? hits / n : null,
    perplexity: loss === null ? null : Math.exp(loss),
    tokens: n,
  };
}

/** Aggregates per-target losses and hits: overall, by token kind and by the sequence's category. */
export function tokenFigures(
  vocab: Vocabulary,
  sequences: readonly ScoredSequence[],
  hasLoss = true,
): SplitTokenFigures {
  const acc = () => ({ loss: 0, hits: 0, n: 0 });
  const all = acc();
  const kinds = { audio: acc(), category: acc(), end: acc(), other: acc() };
  const cats = new Map<string, ReturnType<typeof acc>>(vocab.categories.map((c) => [c, acc()]));
  for (const s of sequences) {
    const cat = cats.get(s.category) ?? acc();
    cats.set(s.category, cat);
    for (let t = 0; t + 1 < s.tokens.length; t++) {
      const kind = kinds[tokenKind(vocab, s.tokens[t + 1])];
      for (const a of [all, kind, cat]) {
        a.loss += s.nll[t];
        a.hits += s.hit[t];
        a.n += 1;
      }
    }
  }
  const f = (a: ReturnType<typeof acc>) => figures(a.loss, a.hits, a.n, hasLoss);
  return {
    ...f(all),
    by_kind: { audio: f(kinds.audio), category: f(kinds.category), end: f(kinds.end) },
    by_category: Object.fromEntries([...cats].map(([c, a]) => [c, f(a)])),
  };
}

/** Add-k smoothing constant of the n-gram baselines. */
export const NGRAM_SMOOTHING = 0.1;

/** Unigram and bigram counts fitted on training sequences (targets only, as the model sees them). */
export interface NgramModel {
  V: number;
  k: number;
  unigram: Float64Array;
  unigramTotal: number;
  /** `[V, V]`: counts of (previous, next). */
  bigram: Float64Array;
  bigramTotal: Float64Array;
  /** Most frequent target. */
  unigramArgmax: number;
  /** Per previous token, the most frequent next (unigramArgmax where unseen). */
  bigramArgmax: Int32Array;
}

/** Fits the unigram and bigram baselines on `train` sequences. */
export function fitNgrams(
  vocab: Vocabulary,
  train: readonly { tokens: ArrayLike<number> }[],
  k = NGRAM_SMOOTHING,
): NgramModel {
  const V = vocabularySize(vocab);
  const unigram = new Float64Array(V);
  const bigram = new Float64Array(V * V);
  const bigramTotal = new Float64Array(V);
  let total = 0;
  for (const s of train) {
    for (let t = 0; t + 1 < s.tokens.length; t++) {
      const prev = s.tokens[t], next = s.tokens[t + 1];
      unigram[next] += 1;
      total += 1;
      bigram[prev * V + next] += 1;
      bigramTotal[prev] += 1;
    }
  }
  const argmax = (a: ArrayLike<number>, from: number, n: number) => {
    let best = -1, bestValue = -Infinity;
    for (let i = 0; i < n; i++) {
      if (a[from + i] > bestValue) [best, bestValue] = [i, a[from + i]];
    }
    return best;
  };
  const unigramArgmax = argmax(unigram, 0, V);
  const bigramArgmax = new Int32Array(V);
  for (let p = 0; p < V; p++) {
    bigramArgmax[p] = bigramTotal[p] > 0 ? argmax(bigram, p * V, V) : unigramArgmax;
  }
  return { V, k, unigram, unigramTotal: total, bigram, bigramTotal, unigramArgmax, bigramArgmax };
}

/**
 * Smoothed probabilities spread over the V - 1 non-padding ids (padding is
 * never a target).
 */
export function unigramProbability(m: NgramModel, next: number): number {
  return (m.unigram[next] + m.k) / (m.unigramTotal + m.k * (m.V - 1));
}

/** P(next | prev) with add-k smoothing over the V - 1 non-padding ids. */
export function bigramProbability(m: NgramModel, prev: number, next: number): number {
  return (m.bigram[prev * m.V + next] + m.k) / (m.bigramTotal[prev] + m.k * (m.V - 1));
}

/** A predictor's per-target loss and hit for one sequence. */
export type Predictor = (tokens: ArrayLike<number>) => { nll: Float64Array; hit: Uint8Array };

/** The baselines as predictors (repeat-previous has no loss: its nll is 0 and unused). */
export function baselinePredictors(m: NgramModel): Record<string, Predictor> {
  const each = (f: (prev: number, next: number) => [number, boolean]): Predictor => (tokens) => {
    const n = Math.max(0, tokens.length - 1);
    const nll = new Float64Array(n);
    const hit = new Uint8Array(n);
    for (let t = 0; t < n; t++) {
      const [loss, h] = f(tokens[t], tokens[t + 1]);
      nll[t] = loss;
      hit[t] = h ? 1 : 0;
    }
    return { nll, hit };
  };
  const uniformLoss = Math.log(m.V);
  return {
    uniform: each(() => [uniformLoss, false]),
    unigram: each((_, next) => [-Math.log(unigramProbability(m, next)), next === m.unigramArgmax]),
    bigram: each((prev, next) => [
      -Math.log(bigramProbability(m, prev, next)),
      next === m.bigramArgmax[prev],
    ]),
    repeat_previous: each((prev, next) => [0, prev === next]),
  };
}

/** Category figures from one prediction (a ranking of category indices) per sequence. */
export interface CategoryFigures {
  category_accuracy: number;
  category_top3_accuracy: number;
  macro_f1: number;
  per_category: Record<string, { precision: number; recall: number; f1: number; support: number }>;
  /** `[true][predicted]` counts, in `vocab.categories` order. */
  confusion: number[][];
  sequences: number;
}

/**
 * Accuracy, top-3, the confusion matrix, precision/recall/F1 per category and
 * macro-F1. `truth[i]` and each `ranking[i]` (best first) are category indices.
 */
export function categoryFigures(
  categories: readonly string[],
  truth: readonly number[],
  ranking: readonly (readonly number[])[],
): CategoryFigures {
  const C = categories.length;
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  let correct = 0, top3 = 0;
  truth.forEach((t, i) => {
    const r = ranking[i];
    confusion[t][r[0]] += 1;
    if (r[0] === t) correct++;
    if (r.slice(0, 3).includes(t)) top3++;
  });
  const per_category: CategoryFigures["per_category"] = {};
  let f1Sum = 0;
  categories.forEach((name, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c], 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
    per_category[name] = { precision, recall, f1, support };
    f1Sum += f1;
  });
  const n = truth.length;
  return {
    category_accuracy: n > 0 ? correct / n : 0,
    category_top3_accuracy: n > 0 ? top3 / n : 0,
    macro_f1: C > 0 ? f1Sum / C : 0,
    per_category,
    confusion,
    sequences: n,
  };
}

/** Category indices by descending score (ties: lower index first). */
export function rankByScore(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => scores[b] - scores[a] || a - b);
}

/** Where the category token sits in a sequence of `vocab`'s layout (-1 when absent). */
export function categoryPosition(vocab: Vocabulary, tokens: ArrayLike<number>): number {
  for (let t = 0; t < tokens.length; t++) {
    if (tokenKind(vocab, tokens[t]) === "category") return t;
  }
  return -1;
}

/** A token or code sequence as a map key (ids joined by commas). */
export function sequenceKey(tokens: ArrayLike<number>): string {
  return Array.prototype.join.call(tokens, ",");
}

/** Per sequence of `rows`, whether an identical sequence (same ids, same length) is in `reference`. */
export function occursIn(
  reference: Iterable<ArrayLike<number>>,
  rows: readonly ArrayLike<number>[],
): boolean[] {
  const keys = new Set<string>();
  for (const r of reference) keys.add(sequenceKey(r));
  return rows.map((r) => keys.has(sequenceKey(r)));
}

/**
 * A split's figures without the sequences it shares with the train split: a
 * held-out sequence whose every token also forms a train sequence (short,
 * low-variety sounds quantise to the same codes) is a memorised one, not a
 * held-out one.
 */
export interface UnseenFigures {
  /** Share of the split's sequences whose full token sequence occurs in the train split. */
  share_in_train: number;
  /** How many: the split's sequences with a copy in the train split. */
  in_train: number;
  /** The sequences left (the split's without a copy in train). */
  sequences: number;
  /** The model on the sequences left. */
  model: SplitTokenFigures;
  /** The baselines on the same targets, by name. */
  baselines: Record<string, SplitTokenFigures>;
  /** Category accuracy on the sequences left; null when none are left. */
  category_accuracy: number | null;
  /** The category baselines' accuracy on the sequences left (chance is the same as on all). */
  category_baselines: Record<string, number | null>;
}

/**
 * {@link UnseenFigures} of a split: `model` and each of `baselines` score
 * its sequences (same order; `hasLoss` as for {@link tokenFigures}), `truth` and `ranking` are its categories and the model's
 * rankings (as for {@link categoryFigures}), `inTrain[i]` whether sequence i
 * occurs in the train split ({@link occursIn}); `baselineRankings` the
 * category baselines' rankings of the same sequences, by name.
 */
export function unseenFigures(
  vocab: Vocabulary,
  model: readonly ScoredSequence[],
  baselines: Record<string, { scored: readonly ScoredSequence[]; hasLoss: boolean }>,
  truth: readonly number[],
  ranking: readonly (readonly number[])[],
  inTrain: readonly boolean[],
  baselineRankings: Record<string, readonly (readonly number[])[]> = {},
): UnseenFigures {
  const keep = <T>(xs: readonly T[]) => xs.filter((_, i) => !inTrain[i]);
  const left = keep(truth);
  const inTrainCount = inTrain.filter((x) => x).length;
  const accuracy = (r: readonly (readonly number[])[]) =>
    left.length > 0 ? categoryFigures(vocab.categories, left, keep(r)).category_accuracy : null;
  return {
    share_in_train: inTrain.length > 0 ? inTrainCount / inTrain.length : 0,
    in_train: inTrainCount,
    sequences: left.length,
    model: tokenFigures(vocab, keep(model)),
    baselines: Object.fromEntries(
      Object.entries(baselines).map((
        [name, b],
      ) => [name, tokenFigures(vocab, keep(b.scored), b.hasLoss)]),
    ),
    category_accuracy: accuracy(ranking),
    category_baselines: Object.fromEntries(
      Object.entries(baselineRankings).map(([name, r]) => [name, accuracy(r)]),
    ),
  };
}
