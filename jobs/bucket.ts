/**
 * bucket: token sequences → padded batches grouped by length (the seed's
 * dynamic padding), in a compact binary form the train job reads with
 * `readBucketedData` (`lib/data/mod.ts`).
 *
 * Reads: `tokens` (a tokenize artifact; the split comes from its
 * `sequences.json`). Writes `train.tokens`, `val.tokens`, `batches.json`,
 * `sequences.json` and a copy of `vocab.json` (format: `lib/data/bucket.ts`).
 *
 * Overflow: a sequence longer than `max_length` is either dropped or
 * truncated by cutting audio codes from the end of the clip while keeping its
 * framing, so it stays well-formed: in the seed layout the category token and
 * `<|im_end|>` after the audio survive (the model still learns to name the
 * clip from its first `max_length - 3` codes); in the label-first layout the
 * `<|im_start|> <category> <|wav|>` prefix and `<|im_end|>` survive.
 *
 * @module
 */
import { z } from "zod";
import { UserError } from "../lib/errors/mod.ts";
import { defineJob, type JobContext, type JobResult } from "../lib/pipeline/job.ts";

/** The bucket job's parameters. */
export const BucketParams = z.strictObject({
  /** Sequences per batch. */
  batch_size: z.number().int().min(1).max(65536).default(32),
  /** Longest sequence kept, in tokens; must not exceed the model's max_positions. */
  max_length: z.number().int().min(2).max(1 << 20).default(1024),
  /** What to do with longer sequences (see the module doc). */
  overflow: z.enum(["truncate", "drop"]).default("truncate"),
  /** Order equal-length sequences randomly (seeded) so batches mix categories. */
  shuffle_within_buckets: z.boolean().default(true),
});

/** Parsed bucket parameters. */
export type BucketParams = z.output<typeof BucketParams>;

/** Paths listed in metrics for truncated or dropped sequences (the counts are complete). */
const LISTED_PATHS = 50;

async function bucket(ctx: JobContext<BucketParams>): Promise<JobResult> {
  const p = ctx.params;
  const data = await import("../lib/data/mod.ts");
  const tokenized = await data.readTokenizedData(ctx.inputs.tokens.dir);
  const min = data.minimumMaxLength(tokenized.vocab.layout);
  if (p.max_length < min) {
    throw new UserError(`max_length ${p.max_length} leaves no room for audio`, {
      file: ctx.pipelineFile,
      step: ctx.step,
      field: `steps.${ctx.step}.params.max_length`,
      expected: `at least ${min} for the ${tokenized.vocab.layout} layout ` +
        `(framing tokens plus one audio code)`,
      found: String(p.max_length),
    });
  }
  const result = data.bucketTokenizedData(tokenized, {
    batchSize: p.batch_size,
    maxLength: p.max_length,
    overflow: p.overflow,
    shuffle: p.shuffle_within_buckets,
    seed: ctx.seed,
  });
  if (result.train.batches.length === 0 || result.val.batches.length === 0) {
    throw new UserError("after dropping overlong sequences a split is empty", {
      file: ctx.pipelineFile,
      step: ctx.step,
      field: `steps.${ctx.step}.params.max_length`,
      expected: "at least one train and one validation sequence",
      found: `${result.train.batches.length} train and ${result.val.batches.length} val batches ` +
        `(${result.dropped.length} sequences dropped)`,
      hint: 'raise max_length or use overflow: "truncate"',
    });
  }
  const index = await data.writeBucketedData(ctx.outDir, result);
  for (
    const [kind, list] of [["truncated", result.truncated], ["dropped", result.dropped]] as const
  ) {
    if (list.length > 0) {
      ctx.log(
        `${list.length} sequences longer than ${p.max_length} tokens ${kind}: ` +
          list.slice(0, 5).join(", ") + (list.length > 5 ? ", …" : ""),
      );
    }
  }
  const splitMetrics = (s: typeof result.train) => {
    const real = s.members.reduce(
      (n, rows) => n + rows.reduce((m, i) => m + result.sequences[i].length, 0),
      0,
    );
    const slots = s.batches.reduce((n, b) => n + b.rows * b.length, 0);
    return {
      sequences: s.members.reduce((n, m) => n + m.length, 0),
      batches: s.batches.length,
      tokens: real,
      padded_slots: slots,
      padding_efficiency: s.efficiency,
      padding_efficiency_unsorted: s.efficiencyUnsorted,
    };
  };
  const train = splitMetrics(result.train), val = splitMetrics(result.val);
  const test = splitMetrics(result.test);
  return {
    metrics: {
      sequences: train.sequences + val.sequences + test.sequences,
      batches: train.batches + val.batches + test.batches,
      tokens: train.tokens + val.tokens + test.tokens,
      padding_efficiency: (train.tokens + val.tokens + test.tokens) /
        (train.padded_slots + val.padded_slots + test.padded_slots),
      max_length: index.max_length,
      dtype: index.dtype,
      train,
      val,
      test,
      truncated: result.truncated.length,
      truncated_paths: result.truncated.slice(0, LISTED_PATHS),
      dropped: result.dropped.length,
      dropped_paths: result.dropped.slice(0, LISTED_PATHS),
      lengths: data.summariseLengths(result.originalLengths),
    },
  };
}

/** The bucket job (see the module doc). */
export const job = defineJob({
  name: "bucket",
  version: "1",
  description: "group token sequences into length-bucketed, dynamically padded batches",
  params: BucketParams,
  inputs: () => ["tokens"],
  slots: { tokens: ["tokenize"] },
  run: bucket,
});
