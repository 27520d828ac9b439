/**
 * The training loop's early stopping and its choice of best over last
 * weights, on data made so that validation gets worse: the training rows
 * follow code 0 with code 1, the validation rows follow it with code 2. The
 * expectations come from the written rule (stop after `patience` evaluations
 * without a strictly lower validation loss) applied to the run's own curve,
 * and from the CPU reference scoring the published weights.
 */
import { join } from "node:path";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { TrainParams } from "../jobs/train.ts";
import { trainSamOut } from "../lib/train/mod.ts";
import { bucketTokenizedData, readBucketedData, writeBucketedData } from "../lib/data/bucket.ts";
import type { SequenceRecord, TokenizedData } from "../lib/data/tokenized.ts";
import type { TokenBatch } from "../lib/data/types.ts";
import { buildVocabulary, encodeSequence } from "../lib/data/vocab.ts";
import { samoutFromSafetensors } from "../lib/model/safetensors.ts";
import { samoutLossAndGrads } from "../lib/model/reference.ts";

const PATIENCE = 2;

/** Train rows `0 1 0 1 …`, validation rows `0 2 0 2 …`, one category, 4 codes. */
async function writeContradictoryBucket(dir: string): Promise<void> {
  const vocab = buildVocabulary(["x"], 4, "seed");
  const sequences: SequenceRecord[] = [];
  const all: number[] = [];
  const add = (split: "train" | "val", i: number, other: number) => {
    const codes = Array.from({ length: 8 + (i % 3) }, (_, t) => t % 2 === 0 ? 0 : other);
    const ids = encodeSequence(vocab, "x", codes);
    sequences.push({
      path: `${split}/${i}.wav`,
      category: "x",
      sha256: `${split}-${i}`,
      split,
      offset: all.length,
      length: ids.length,
    });
    all.push(...ids);
  };
  for (let i = 0; i < 8; i++) add("train", i, 1);
  for (let i = 0; i < 3; i++) add("val", i, 2);
  const data: TokenizedData = { vocab, sequences, tokens: Uint32Array.from(all) };
  const result = bucketTokenizedData(data, {
    batchSize: 4,
    maxLength: 32,
    overflow: "truncate",
    shuffle: false,
    seed: 1,
  });
  await Deno.mkdir(dir, { recursive: true });
  await writeBucketedData(dir, result);
}

/** Token-weighted mean loss of `weightsFile` over `batches`, on the CPU (float64). */
async function cpuLoss(weightsFile: string, batches: TokenBatch[]): Promise<number> {
  const { cfg, params } = samoutFromSafetensors(await Deno.readFile(weightsFile), {
    file: weightsFile,
  });
  let sum = 0, count = 0;
  for (const b of batches) {
    const r = samoutLossAndGrads(params, cfg, b.tokens, b.rows, b.length);
    sum += r.loss * r.count;
    count += r.count;
  }
  return sum / count;
}

Deno.test("train: early stopping after `patience` worse evaluations keeps the best weights", async () => {
  const root = await Deno.makeTempDir({ prefix: "samout-train-loop-" });
  try {
    const dataDir = join(root, "data"), outDir = join(root, "out"), workDir = join(root, "work");
    await writeContradictoryBucket(dataDir);
    await Deno.mkdir(outDir);
    await Deno.mkdir(workDir);
    const { metrics } = await trainSamOut({
      params: TrainParams.parse({
        model: { hidden: 16, heads: 2, layers: 1, max_positions: 32 },
        optimizer: { lr: 0.01 },
        epochs: 40,
        eval_every_steps: 1,
        patience: PATIENCE,
        log_every_steps: 1,
      }),
      seed: 3,
      dataDir,
      outDir,
      workDir,
      progress: { start() {}, update() {}, finish() {} },
      log: () => {},
      signal: new AbortController().signal,
      where: { step: "train" },
    });

    // The rule, applied to the run's own validation curve.
    const evals = (await Deno.readTextFile(join(outDir, "curves.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((r) => r.kind === "eval");
    assertEquals(evals.map((e) => e.step), evals.map((_, i) => i + 1), "one evaluation per step");
    let best = Infinity, bestStep = 0, since = 0, stopAt = -1;
    for (const [i, e] of evals.entries()) {
      if (e.val_loss < best) [best, bestStep, since] = [e.val_loss, e.step, 0];
      else since++;
      if (since >= PATIENCE) {
        stopAt = i;
        break;
      }
    }
    const curve = evals.map((e) => e.val_loss.toFixed(4)).join(" ");
    assert(stopAt >= 0, `validation never got worse ${PATIENCE} times in a row: ${curve}`);
    assertEquals(stopAt, evals.length - 1, `the run stops at the first chance: ${curve}`);
    assertEquals(metrics.stopped, "early");
    assertEquals(metrics.steps, evals.at(-1).step);
    assertEquals(metrics.evaluations, evals.length);
    assertEquals([metrics.best_step, metrics.best_val_loss], [bestStep, best]);
    assert(bestStep < evals.at(-1).step, "the best step is not the last");

    // best.safetensors holds the weights that scored the best loss; last.safetensors the last.
    const data = await readBucketedData(dataDir);
    const bestLoss = await cpuLoss(join(outDir, "best.safetensors"), data.val);
    const lastLoss = await cpuLoss(join(outDir, "last.safetensors"), data.val);
    assertAlmostEquals(bestLoss, best, 1e-4 * best, `best.safetensors scores ${bestLoss}`);
    const last = evals.at(-1).val_loss;
    assertAlmostEquals(lastLoss, last, 1e-4 * last, `last.safetensors scores ${lastLoss}`);
    assert(lastLoss > bestLoss, `last ${lastLoss} should be worse than best ${bestLoss}`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
