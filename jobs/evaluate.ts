/**
 * evaluate: measures the trained model on held-out data, beside the
 * baselines a skeptic would use (uniform, unigram and bigram models fitted on
 * the train split, repeat-the-previous-token, chance and majority class), on
 * the test split (reported) and the validation split (for comparison). See
 * lib/evaluate/mod.ts for what is computed and README "Metrics" for every name.
 *
 * Reads: `model` (a train artifact: best.safetensors, curves.jsonl), `data`
 * (its bucket artifact), `tokens` (the tokenize artifact: the tokenizer for
 * the report's reconstructions) and `scan` (the original audio).
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
  async run(ctx) {
    const { join } = await import("node:path");
    const { evaluateModel } = await import("../lib/evaluate/mod.ts");
    const { evaluationMetrics, headlineLines } = await import("../lib/evaluate/summary.ts");
    const { metricRows, readCurves, reportClips } = await import(
      "../lib/evaluate/report_data.ts"
    );
    const { renderEvaluateReport } = await import("../lib/report/mod.ts");
    ctx.progress.start(3, "phases", "evaluate");
    const evaluation = await evaluateModel({
      modelDir: ctx.inputs.model.dir,
      dataDir: ctx.inputs.data.dir,
      splits: ["test", "val"],
      log: (m) => ctx.log(m),
    });
    ctx.progress.update(1, "scored");
    const metrics = evaluationMetrics(evaluation);
    await Deno.writeTextFile(
      join(ctx.outDir, "evaluation.json"),
      JSON.stringify(metrics, null, 1) + "\n",
    );
    const clips = await reportClips(
      ctx.inputs.tokens.dir,
      ctx.inputs.scan.dir,
      ctx.params.report_clips_per_category,
    );
    ctx.progress.update(2, "clips");
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
          `${test.sequences} / ${evaluation.splits.val?.sequences ?? 0}`,
        ],
        ["category prediction", evaluation.category_method],
        ["baselines", "fitted on the train split; add-0.1 smoothing for the n-grams"],
        ["model artifact", ctx.inputs.model.key.slice(0, 12)],
        ["WebGPU adapter", evaluation.adapter],
      ],
      curves: await readCurves(ctx.inputs.model.dir),
      table: metricRows(evaluation),
      confusion: { categories: evaluation.vocab.categories, matrix: test.category.confusion },
      clips,
      generated: [],
    });
    await Deno.writeTextFile(join(ctx.outDir, "report.html"), html);
    ctx.progress.finish("report written");
    for (const line of headlineLines(metrics)) ctx.log(line);
    return { metrics, environment: { webgpu_adapter: evaluation.adapter } };
  },
});
