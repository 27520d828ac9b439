/**
 * export: the trained model as a self-contained bundle that works without
 * the store: `model.onnx` (full sequence) and `model.step.onnx` (one token
 * and the running-maximum state), `model.safetensors`, `config.json`,
 * `vocab.json`, the tokenizer, `samout.py` (PyTorch) and a model card
 * (`README.md`). See lib/export/bundle.ts for the layout.
 *
 * The job checks its own output and fails on a mismatch: onnxruntime-web
 * (wasm always; WebGPU where it starts, with every node required to run on
 * the GPU) runs both ONNX models on test sequences, which must match the
 * WGSL forward to `tolerance` relative, and the step model fed token by token
 * must match the full model.
 *
 * Reads: `model` (a train artifact), `tokens` (its tokenize artifact: the
 * tokenizer and the test sequences), `evaluate` (its evaluate artifact: the
 * figures for the model card). Writes the bundle; the runner adds
 * `metrics.json` (the measured errors).
 *
 * @module
 */
import { z } from "zod";
import { defineJob } from "../lib/pipeline/job.ts";

/** The export job's parameters. */
export const ExportParams = z.strictObject({
  /** Sequences in the self-check's first batch (spread over the test split's lengths). */
  check_rows: z.number().int().min(1).max(16).default(3),
  /** Largest accepted relative error, max |ONNX - WGSL| / max |WGSL|. */
  tolerance: z.number().positive().max(1).default(1e-4),
  /** onnxruntime-web's WebGPU backend: run it where it starts (auto), always (require), or not (skip). */
  webgpu: z.enum(["auto", "require", "skip"]).default("auto"),
});

/** Parsed export parameters. */
export type ExportParams = z.output<typeof ExportParams>;

/** The export job (see the module doc). */
export const job = defineJob({
  name: "export",
  version: "1",
  description:
    "write the model as ONNX, safetensors and PyTorch with its tokenizer and a model card",
  params: ExportParams,
  inputs: () => ["model", "tokens", "evaluate"],
  slots: { model: ["train"], tokens: ["tokenize"], evaluate: ["evaluate"] },
  async run(ctx) {
    const { requestGpu } = await import("../lib/gpu/device.ts");
    const { exportBundle } = await import("../lib/export/mod.ts");
    ctx.progress.start(1, "bundle", "export");
    const gpu = await requestGpu();
    const { metrics } = await exportBundle({
      modelDir: ctx.inputs.model.dir,
      tokensDir: ctx.inputs.tokens.dir,
      evaluateDir: ctx.inputs.evaluate.dir,
      outDir: ctx.outDir,
      workDir: ctx.workDir,
      gpu,
      tolerance: ctx.params.tolerance,
      webgpu: ctx.params.webgpu,
      checkRows: ctx.params.check_rows,
      sources: {
        model: ctx.inputs.model.key,
        tokens: ctx.inputs.tokens.key,
        evaluate: ctx.inputs.evaluate.key,
      },
      log: (m) => ctx.log(m),
    });
    ctx.progress.finish("bundle written and checked");
    return { metrics, environment: { webgpu_adapter: gpu.adapterDescription } };
  },
});
