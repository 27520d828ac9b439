/**
 * evaluate: measures the trained model on held-out data, beside the
 * baselines a skeptic would use (uniform, unigram and bigram models fitted on
 * the train split, repeat-the-previous-token, chance and majority class), on
 * the test split (reported) and the validation split (for comparison). See
 * lib/evaluate/mod.ts for what is computed and README "Metrics" for every name.
 *
 * Reads: `model` (a train artifact: best.safetensors, curves.jsonl), `data`
 * (its bucket artifact), `tokens` (the tokenize artifact: the tokenizer for
 * the report's reconstructions) and `scan` (the original audio: where its
 * files.json says, in the scan's own input `ctx.upstream.scan` or its `root`).
 * Writes: `report.html` (self-contained: curves, the metrics table, the
 * confusion matrix, test clips with their reconstructions) and
 * `evaluation.json` (every figure); the runner adds `metrics.json`.
 *
 * @module
 */
import { z } from "zod";
import { defineJob } from "../lib/pipeline/job.ts";

/** The evaluate job's parameters. */
export const EvaluateParams = z.strictObject({
  /** Test clips per category shown (and playable) in the report with their reconstructions; 0: none. */
  report_clips_per_category: z.number().int().min(0).max(20).default(1),
  /**
   * Generated samples per category, judged by an independent classifier
   * (lib/evaluate/generation.ts); 0: no generation figures.
   */
  generate: z.strictObject({
    per_category: z.number().int().min(0).max(256).default(16),
    /**
     * 0.7 with top-p 0.9 was chosen on an earlier default model, where it was recognised
     * far more often than 1.0 with no cut (docs/EXPERIMENTS.md, "Adopted"); what it gives
     * the model evaluated is `generation_recognised`.
     */
    temperature: z.number().min(0).max(10).default(0.7),
    top_k: z.number().int().min(0).default(0),
    top_p: z.number().gt(0).max(1).default(0.9),
  }).prefault({}),
});

/** Parsed evaluate parameters. */
export type EvaluateParams = z.output<typeof EvaluateParams>;

/** The evaluate job (see the module doc). */
export const job = defineJob({
  name: "evaluate",
  version: "1",
  description: "measure the trained model on the test split beside n-gram and trivial baselines",
  params: EvaluateParams,
  inputs: () => ["model", "data", "tokens", "scan"],
  slots: { model: ["train"], data: ["bucket"], tokens: ["tokenize"], scan: ["scan"] },
  // The original audio files.json lists may be in the scan's own input (synth's audio/).
  upstream: ["scan"],
  /** metrics.json's flat figures (README "Metrics"; lib/evaluate/summary.ts): what gates may name. */
  metrics: [
    ...["test", "val"].flatMap((s) => [
      `${s}_loss`,
      `${s}_token_accuracy`,
      `${s}_perplexity`,
      `${s}_audio_loss`,
      `${s}_category_accuracy`,
      `${s}_loss_vs_bigram`,
      `uniform_${s}_loss`,
      `unigram_${s}_loss`,
      `bigram_${s}_loss`,
      `bigram_${s}_token_accuracy`,
      `bigram_${s}_audio_loss`,
      `repeat_previous_${s}_token_accuracy`,
      `${s}_sequences_in_train`,
      `${s}_unseen_loss`,
      `${s}_unseen_token_accuracy`,
      `${s}_unseen_category_accuracy`,
      `bigram_${s}_unseen_loss`,
    ]),
    "category_accuracy",
    "category_top3_accuracy",
    "macro_f1",
    "chance_category_accuracy",
    "majority_category_accuracy",
    "bigram_category_accuracy",
    "generation_recognised",
    "generation_judge_test_accuracy",
    "generation_judge_reconstruction_accuracy",
    "generation_judge_model_agreement",
    "generation_copies_of_train",
  ],
  async run(ctx) {
    const { join } = await import("node:path");
    const { evaluateModel } = await import("../lib/evaluate/mod.ts");
    const { evaluationMetrics, headlineLines } = await import("../lib/evaluate/summary.ts");
    const { generationRows, metricRows, readCurves, reportClips } = await import(
      "../lib/evaluate/report_data.ts"
    );
    const { renderEvaluateReport } = await import("../lib/report/mod.ts");
    const { readScanAudioRoot } = await import("../lib/data/scan_source.ts");
    const audioRoot = await readScanAudioRoot(ctx.inputs.scan.dir, ctx.upstream?.scan, {
      step: ctx.step,
    });
    ctx.progress.start(4, "phases", "evaluate");
    const evaluation = await evaluateModel({
      modelDir: ctx.inputs.model.dir,
      dataDir: ctx.inputs.data.dir,
      splits: ["test", "val"],
      log: (m) => ctx.log(m),
    });
    ctx.progress.update(1, "scored");
    const metrics = evaluationMetrics(evaluation);
    const g = ctx.params.generate;
    const generated: import("../lib/report/types.ts").ReportClip[] = [];
    let generation: import("../lib/evaluate/generation.ts").GenerationFigures | undefined;
    if (g.per_category > 0) {
      const { judgeGeneration } = await import("../lib/evaluate/generation.ts");
      const { sound } = await import("../lib/evaluate/report_data.ts");
      const { requestGpu } = await import("../lib/gpu/device.ts");
      const judged = await judgeGeneration({
        modelDir: ctx.inputs.model.dir,
        tokensDir: ctx.inputs.tokens.dir,
        audioRoot,
        perCategory: g.per_category,
        settings: { temperature: g.temperature, topK: g.top_k, topP: g.top_p, seed: ctx.seed },
        gpu: await requestGpu(),
        modelPredictions: evaluation.splits.test?.predictions,
        log: (m) => ctx.log(m),
      });
      metrics.generation_recognised = judged.figures.recognised;
      metrics.generation_judge_test_accuracy = judged.figures.judge_test_accuracy;
      metrics.generation_judge_reconstruction_accuracy =
        judged.figures.judge_reconstruction_accuracy;
      metrics.generation_judge_model_agreement = judged.figures.judge_model_agreement;
      metrics.generation_copies_of_train = judged.figures.copies_of_train;
      metrics.generation = generation = judged.figures;
      for (const c of evaluation.vocab.categories) {
        const mine = judged.samples.filter((s) => s.requested === c).slice(0, 2);
        if (mine.length === 0) continue;
        generated.push({
          category: c,
          path: `seed ${mine[0].seed}, ${
            mine[0].category_source === "prompt"
              ? "category in the prompt"
              : "category named by the model"
          }`,
          sounds: mine.map((s, i) =>
            sound(`#${i + 1}: ${s.codes.length} tokens, judged ${s.judged}`, s.audio, judged.mel)
          ),
        });
      }
    }
    ctx.progress.update(2, "generated");
    await Deno.writeTextFile(
      join(ctx.outDir, "evaluation.json"),
      JSON.stringify(metrics, null, 1) + "\n",
    );
    const clips = await reportClips(
      ctx.inputs.tokens.dir,
      audioRoot,
      ctx.params.report_clips_per_category,
    );
    ctx.progress.update(3, "clips");
    const cfg = evaluation.config;
    const test = evaluation.splits.test!;
    const html = renderEvaluateReport({
      title: `SamOut evaluation: ${ctx.pipelineFile} (step ${ctx.step})`,
      facts: [
        [
          "model",
          `hidden ${cfg.hidden}, ${cfg.heads} heads, ${cfg.layers} layers, ${cfg.vocabSize} tokens`,
        ],
        ["layout", evaluation.vocab.layout],
        ["categories", evaluation.vocab.categories.join(", ")],
        [
          "test / validation sequences",
          `${test.sequences} / ${
            evaluation.splits.val?.sequences ?? 0
          } (${test.unseen.in_train} / ${
            evaluation.splits.val?.unseen.in_train ?? 0
          } of them occur token for token in the train split)`,
        ],
        ["category prediction", evaluation.category_method],
        ["baselines", "fitted on the train split; add-0.1 smoothing for the n-grams"],
        ["model artifact", ctx.inputs.model.key.slice(0, 12)],
        ["WebGPU adapter", evaluation.adapter],
      ],
      curves: await readCurves(ctx.inputs.model.dir),
      table: [
        ...metricRows(evaluation),
        ...(generation ? generationRows(generation) : []),
      ],
      confusion: { categories: evaluation.vocab.categories, matrix: test.category.confusion },
      clips,
      generated,
    });
    await Deno.writeTextFile(join(ctx.outDir, "report.html"), html);
    ctx.progress.finish("report written");
    for (const line of headlineLines(metrics)) ctx.log(line);
    return { metrics, environment: { webgpu_adapter: evaluation.adapter } };
  },
});
