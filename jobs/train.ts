/**
 * train: fits SamOut on the bucketed token batches with the WGSL training
 * graph (lib/model/graph.ts), evaluating on the validation batches, stopping
 * early when the validation loss stops improving, and checkpointing so a
 * killed run resumes to the bit-identical result.
 *
 * Reads: `data` (a bucket artifact). Writes: `best.safetensors` (weights with
 * the lowest validation loss), `last.safetensors` (weights at the end),
 * `config.json`, `curves.jsonl`, `vocab.json`; the runner adds `metrics.json`.
 *
 * @module
 */
import { z } from "zod";
import { defineJob } from "../lib/pipeline/job.ts";

const modelSchema = z.strictObject({
  hidden: z.number().int().min(1).default(128),
  heads: z.number().int().min(1).default(8),
  layers: z.number().int().min(1).default(2),
  max_positions: z.number().int().min(1).default(1024),
}).refine((m) => m.hidden % m.heads === 0, {
  message: "hidden must be a multiple of heads (head size = hidden / heads)",
  path: ["heads"],
});

const optimizerSchema = z.strictObject({
  kind: z.enum(["adam", "adamw"]).default("adam"),
  lr: z.number().positive().default(1e-3),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  weight_decay: z.number().min(0).default(0),
});

const scheduleSchema = z.strictObject({
  kind: z.enum(["constant", "cosine"]).default("constant"),
  warmup_steps: z.number().int().min(0).default(0),
  /** Cosine floor as a fraction of the peak learning rate. */
  min_lr_ratio: z.number().min(0).max(1).default(0.1),
});

/** The train job's parameters. */
export const TrainParams = z.strictObject({
  model: modelSchema.prefault({}),
  optimizer: optimizerSchema.prefault({}),
  schedule: scheduleSchema.prefault({}),
  /** Clip the global gradient L2 norm to this value; null turns clipping off. */
  clip_grad_norm: z.number().positive().nullable().default(1.0),
  /** Upper bound on epochs; early stopping usually ends sooner. */
  epochs: z.number().int().min(1).default(20),
  /** Evaluate every N steps; 0 = at the end of each epoch. */
  eval_every_steps: z.number().int().min(0).default(0),
  /** Stop after this many evaluations without a lower validation loss (the seed: 3). */
  patience: z.number().int().min(1).default(3),
  /** Read the loss from the GPU every N steps (each read costs >= 10 ms). */
  log_every_steps: z.number().int().min(1).default(10),
  /** Checkpoint every N steps (and at each epoch end). */
  checkpoint_every_steps: z.number().int().min(1).default(50),
  /** Stop after this many optimizer steps in total (0 = no limit); for smoke runs and benchmarks. */
  max_steps: z.number().int().min(0).default(0),
});

/** Parsed train parameters. */
export type TrainParams = z.output<typeof TrainParams>;

/** The train job (see the module doc). */
export const job = defineJob({
  name: "train",
  // 2: curves.jsonl no longer holds the measured tokens/s (metrics.json does), so a re-run
  // reproduces it byte for byte.
  version: "2",
  description: "train SamOut on bucketed token batches with the WebGPU training graph",
  params: TrainParams,
  inputs: () => ["data"],
  slots: { data: ["bucket"] },
  /** metrics.json's flat figures: what gates may name. */
  metrics: [
    "steps",
    "epochs_completed",
    "best_step",
    "best_val_loss",
    "best_val_token_accuracy",
    "uniform_loss",
    "evaluations",
    "parameters",
    "train_seconds",
    "tokens_per_s",
  ],
  async run(ctx) {
    const { trainSamOut } = await import("../lib/train/mod.ts");
    return await trainSamOut({
      params: ctx.params,
      seed: ctx.seed,
      dataDir: ctx.inputs.data.dir,
      outDir: ctx.outDir,
      workDir: ctx.workDir,
      cacheDir: ctx.cacheDir,
      progress: ctx.progress,
      log: (m) => ctx.log(m),
      signal: ctx.signal,
      where: { file: ctx.pipelineFile, step: ctx.step },
    });
  },
});
