/**
 * `metrics.json` of the evaluate job, and the headline a pipeline run prints.
 * Names are stable: CI gates (`--fail-if 'evaluate.test_loss > 3'`) and
 * experiment diffs read them. The README's "Metrics" table lists every one.
 *
 * @module
 */
import type { Evaluation, SplitEvaluation } from "./mod.ts";

/** Flat headline metrics (test split unless named val_…), then the full figures per split. */
export function evaluationMetrics(e: Evaluation): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  const t = e.splits.test;
  const v = e.splits.val;
  const put = (prefix: string, s: SplitEvaluation | undefined) => {
    if (!s) return;
    flat[`${prefix}_loss`] = s.model.loss;
    flat[`${prefix}_token_accuracy`] = s.model.token_accuracy;
    flat[`${prefix}_perplexity`] = s.model.perplexity;
    flat[`${prefix}_audio_loss`] = s.model.by_kind.audio.loss;
    flat[`${prefix}_category_accuracy`] = s.category.category_accuracy;
    flat[`uniform_${prefix}_loss`] = s.baselines.uniform.loss;
    flat[`unigram_${prefix}_loss`] = s.baselines.unigram.loss;
    flat[`bigram_${prefix}_loss`] = s.baselines.bigram.loss;
    flat[`bigram_${prefix}_token_accuracy`] = s.baselines.bigram.token_accuracy;
    flat[`bigram_${prefix}_audio_loss`] = s.baselines.bigram.by_kind.audio.loss;
    flat[`repeat_previous_${prefix}_token_accuracy`] = s.baselines.repeat_previous.token_accuracy;
    const m = s.model.loss, b = s.baselines.bigram.loss;
    flat[`${prefix}_loss_vs_bigram`] = m !== null && b !== null && b > 0 ? 1 - m / b : null;
    flat[`${prefix}_sequences_in_train`] = s.unseen.share_in_train;
    flat[`${prefix}_unseen_loss`] = s.unseen.model.loss;
    flat[`${prefix}_unseen_token_accuracy`] = s.unseen.model.token_accuracy;
    flat[`${prefix}_unseen_category_accuracy`] = s.unseen.category_accuracy;
    flat[`bigram_${prefix}_unseen_loss`] = s.unseen.baselines.bigram.loss;
  };
  put("test", t);
  put("val", v);
  const main = t ?? v;
  if (main) {
    flat.category_accuracy = main.category.category_accuracy;
    flat.category_top3_accuracy = main.category.category_top3_accuracy;
    flat.macro_f1 = main.category.macro_f1;
    flat.chance_category_accuracy = main.category_baselines.chance;
    flat.majority_category_accuracy = main.category_baselines.majority_class;
    if (main.category_baselines.bigram !== undefined) {
      flat.bigram_category_accuracy = main.category_baselines.bigram;
    }
    flat.reported_split = t ? "test" : "val";
  }
  const nested = (s: SplitEvaluation | undefined) =>
    s && {
      sequences: s.sequences,
      model: s.model,
      unseen: s.unseen,
      baselines: s.baselines,
      category: {
        ...s.category,
        labels: e.vocab.categories,
        baselines: s.category_baselines,
      },
    };
  return {
    ...flat,
    category_method: e.category_method,
    layout: e.vocab.layout,
    adapter: e.adapter,
    ...(t ? { test: nested(t) } : {}),
    ...(v ? { val: nested(v) } : {}),
  };
}

const pct = (x: unknown) => typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "n/a";
const nats = (x: unknown) => typeof x === "number" ? x.toFixed(3) : "n/a";

/** The few lines a person reads first: each figure beside the baseline a skeptic would use. */
export function headlineLines(metrics: Record<string, unknown>): string[] {
  const split = metrics.reported_split === "val" ? "val" : "test";
  const gain = metrics[`${split}_loss_vs_bigram`];
  return [
    `${split} loss ${nats(metrics[`${split}_loss`])} nats/token vs bigram ${
      nats(metrics[`bigram_${split}_loss`])
    }` +
    (typeof gain === "number"
      ? ` (${(100 * Math.abs(gain)).toFixed(1)}% ${gain >= 0 ? "lower" : "higher"})`
      : "") +
    `, unigram ${nats(metrics[`unigram_${split}_loss`])}, uniform ${
      nats(metrics[`uniform_${split}_loss`])
    }`,
    `${split} token accuracy ${pct(metrics[`${split}_token_accuracy`])} vs repeat-previous ${
      pct(metrics[`repeat_previous_${split}_token_accuracy`])
    }, bigram ${pct(metrics[`bigram_${split}_token_accuracy`])}`,
    `category accuracy ${pct(metrics.category_accuracy)} (top-3 ${
      pct(metrics.category_top3_accuracy)
    }, macro-F1 ${nats(metrics.macro_f1)}) vs chance ${pct(metrics.chance_category_accuracy)}` +
    `, majority ${pct(metrics.majority_category_accuracy)}` +
    (metrics.bigram_category_accuracy !== undefined
      ? `, bigram ${pct(metrics.bigram_category_accuracy)}`
      : ""),
    ...(typeof metrics[`${split}_sequences_in_train`] === "number"
      ? [
        `${split} sequences also in the train split ${
          pct(metrics[`${split}_sequences_in_train`])
        }; on the others: loss ${nats(metrics[`${split}_unseen_loss`])} vs bigram ${
          nats(metrics[`bigram_${split}_unseen_loss`])
        }, token accuracy ${pct(metrics[`${split}_unseen_token_accuracy`])}, category accuracy ${
          pct(metrics[`${split}_unseen_category_accuracy`])
        }`,
      ]
      : []),
    ...(typeof metrics.generation_recognised === "number" ? generationLines(metrics) : []),
  ];
}

/**
 * The generation figure beside the same judge on real test clips, not chance:
 * a seed-layout sample is kept when the model names the category asked for,
 * so its reference is the judge agreeing with the model's category on test
 * clips; a label-first one's is the judge's accuracy on them.
 */
function generationLines(metrics: Record<string, unknown>): string[] {
  const g = (metrics.generation ?? {}) as Record<string, unknown>;
  const rebuilt = typeof metrics.generation_judge_reconstruction_accuracy === "number"
    ? `, ${pct(metrics.generation_judge_reconstruction_accuracy)} rebuilt from tokens`
    : "";
  const reference = metrics.layout === "seed"
    ? `on test clips it agrees with the model's category ${
      pct(metrics.generation_judge_model_agreement)
    } and with the true one ${pct(metrics.generation_judge_test_accuracy)}${rebuilt}`
    : `it recognises ${pct(metrics.generation_judge_test_accuracy)} of test clips${rebuilt}`;
  const asked = metrics.layout === "seed"
    ? "the category the model named"
    : "their prompt's category";
  return [
    `generated samples recognised as ${asked} ${
      pct(metrics.generation_recognised)
    } by an independent judge (${reference})`,
    ...(typeof metrics.generation_copies_of_train === "number"
      ? [
        `generated samples that copy a train clip ${pct(metrics.generation_copies_of_train)}` +
        ` (test clips ${pct(g.test_copies_of_train)})`,
      ]
      : []),
  ];
}
