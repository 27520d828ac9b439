/**
 * Baselines beside a trained model, for the experiment log (docs/EXPERIMENTS.md).
 *
 *   deno run -A --unstable-webgpu tools/experiments/baselines.ts --store /tmp/exp-store \
 *     [--run RECORD_ID | --train KEY | --bucket KEY] [--category] [--json]
 *
 * Without `--run`/`--train` it reads the store's newest run record. From the
 * train artifact it follows the manifests to the bucket and tokenize
 * artifacts, then reports on the validation split, over the non-padding
 * targets (input `seq[:, :-1]`, target `seq[:, 1:]`, pad id 0):
 *
 * - unigram and bigram models fitted on the train split with add-k smoothing:
 *   k = 0.1 (the figure issue 7 quotes) and the k of a small grid with the
 *   lowest 5-fold cross-validated loss on the train split (folds by sequence);
 * - bigram accuracy (argmax of the bigram counts; unseen contexts fall back to
 *   the unigram argmax) and "repeat the previous token" accuracy;
 * - the model's best_val_loss and best_val_token_accuracy from metrics.json,
 *   and the train loss near the best step from curves.jsonl;
 * - with `--category`: the model's category accuracy on val (best.safetensors
 *   on the GPU: at the position before the category token, argmax over the
 *   category tokens only), beside the bigram's at the same position;
 * - the tokenizer's reconstruction error and code perplexity, training time,
 *   steps and tokens/s.
 *
 * @module
 */
import { join } from "node:path";
import { readBucketedData } from "../../lib/data/mod.ts";
import type { TokenBatch, Vocabulary } from "../../lib/data/types.ts";

interface Args {
  store: string;
  run?: string;
  train?: string;
  bucket?: string;
  category: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { store: "artifacts", category: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === "--store") a.store = argv[++i];
    else if (v === "--run") a.run = argv[++i];
    else if (v === "--train") a.train = argv[++i];
    else if (v === "--bucket") a.bucket = argv[++i];
    else if (v === "--category") a.category = true;
    else if (v === "--json") a.json = true;
    else throw new Error(`unknown argument ${v}`);
  }
  return a;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** The newest run record of the store (or the named one). */
async function runRecord(store: string, id?: string): Promise<Record<string, unknown>> {
  const dir = join(store, "runs");
  if (id) return await readJson(join(dir, id.endsWith(".json") ? id : `${id}.json`));
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) names.push(e.name);
  names.sort();
  if (names.length === 0) throw new Error(`no run records in ${dir}`);
  return await readJson(join(dir, names[names.length - 1]));
}

/** Targets and their contexts (previous token) of a split's batches, padding skipped. */
function pairs(batches: TokenBatch[]): { prev: Int32Array; next: Int32Array; seq: Int32Array } {
  const prev: number[] = [], next: number[] = [], seq: number[] = [];
  let s = 0;
  for (const b of batches) {
    for (let r = 0; r < b.rows; r++, s++) {
      const row = r * b.length;
      for (let t = 1; t < b.length; t++) {
        const y = b.tokens[row + t];
        if (y === 0) continue;
        prev.push(b.tokens[row + t - 1]);
        next.push(y);
        seq.push(s);
      }
    }
  }
  return { prev: Int32Array.from(prev), next: Int32Array.from(next), seq: Int32Array.from(seq) };
}

interface Ngram {
  uni: Float64Array;
  bi: Float64Array;
  ctx: Float64Array;
  total: number;
  V: number;
}

function fit(prev: Int32Array, next: Int32Array, V: number, keep?: (i: number) => boolean): Ngram {
  const uni = new Float64Array(V), bi = new Float64Array(V * V), ctx = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < next.length; i++) {
    if (keep && !keep(i)) continue;
    uni[next[i]]++;
    bi[prev[i] * V + next[i]]++;
    ctx[prev[i]]++;
    total++;
  }
  return { uni, bi, ctx, total, V };
}

/** Mean NLL (nats) of the add-k unigram and bigram models on the selected pairs. */
function losses(
  m: Ngram,
  k: number,
  prev: Int32Array,
  next: Int32Array,
  keep?: (i: number) => boolean,
): { unigram: number; bigram: number } {
  let u = 0, b = 0, n = 0;
  for (let i = 0; i < next.length; i++) {
    if (keep && !keep(i)) continue;
    u -= Math.log((m.uni[next[i]] + k) / (m.total + k * m.V));
    b -= Math.log((m.bi[prev[i] * m.V + next[i]] + k) / (m.ctx[prev[i]] + k * m.V));
    n++;
  }
  return { unigram: u / n, bigram: b / n };
}

const K_GRID = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];

/** The k of K_GRID with the lowest 5-fold (by sequence) cross-validated loss on train. */
function chooseK(tr: ReturnType<typeof pairs>, V: number): { bigram: number; unigram: number } {
  const folds = 5;
  const sum = K_GRID.map(() => ({ u: 0, b: 0 }));
  for (let f = 0; f < folds; f++) {
    const m = fit(tr.prev, tr.next, V, (i) => tr.seq[i] % folds !== f);
    K_GRID.forEach((k, j) => {
      const l = losses(m, k, tr.prev, tr.next, (i) => tr.seq[i] % folds === f);
      sum[j].u += l.unigram;
      sum[j].b += l.bigram;
    });
  }
  let bu = 0, bb = 0;
  sum.forEach((s, j) => {
    if (s.u < sum[bu].u) bu = j;
    if (s.b < sum[bb].b) bb = j;
  });
  return { bigram: K_GRID[bb], unigram: K_GRID[bu] };
}

function argmaxRow(a: Float64Array, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (a[offset + j] > a[offset + best]) best = j;
  return best;
}

/** Category accuracy of the model (best.safetensors) and of the bigram on the val batches. */
async function categoryAccuracy(
  trainDir: string,
  val: TokenBatch[],
  vocab: Vocabulary,
  m: Ngram,
): Promise<Record<string, number>> {
  const { requestGpu } = await import("../../lib/gpu/device.ts");
  const { SamOutTrainingGraph } = await import("../../lib/model/graph.ts");
  const { samoutFromSafetensors } = await import("../../lib/model/safetensors.ts");
  const file = join(trainDir, "best.safetensors");
  const { cfg, params } = samoutFromSafetensors(await Deno.readFile(file), { file });
  const gpu = await requestGpu();
  const graph = await SamOutTrainingGraph.create(gpu, {
    config: cfg,
    maxBatch: Math.max(...val.map((b) => b.rows)),
    maxLength: Math.max(...val.map((b) => b.length)),
    optimizer: {
      kind: "adam",
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      clipNorm: null,
    },
  });
  const C = vocab.categories.length, off = vocab.category_offset, V = cfg.vocabSize;
  let n = 0, model = 0, bigram = 0, nll = 0, tokens = 0, correct = 0;
  try {
    graph.uploadWeights(params);
    for (const b of val) {
      const logits = await graph.forwardLogits(b);
      const S = b.length - 1;
      for (let r = 0; r < b.rows; r++) {
        const row = r * b.length;
        for (let t = 0; t < S; t++) {
          const y = b.tokens[row + t + 1];
          if (y === 0) continue;
          const base = (r * S + t) * V;
          // full-vocabulary loss and accuracy, to cross-check metrics.json
          let mx = -Infinity, am = 0;
          for (let j = 0; j < V; j++) {
            if (logits[base + j] > mx) {
              mx = logits[base + j];
              am = j;
            }
          }
          let z = 0;
          for (let j = 0; j < V; j++) z += Math.exp(logits[base + j] - mx);
          nll += Math.log(z) + mx - logits[base + y];
          tokens++;
          if (am === y) correct++;
          if (y >= off && y < off + C) {
            n++;
            let best = 0;
            for (let c = 1; c < C; c++) {
              if (logits[base + off + c] > logits[base + off + best]) best = c;
            }
            if (best === y - off) model++;
            const p = b.tokens[row + t];
            const bb = argmaxRow(m.bi, p * V + off, C);
            if (bb === y - off) bigram++;
          }
        }
      }
    }
  } finally {
    graph.destroy();
  }
  return {
    clips: n,
    model_category_accuracy: model / n,
    bigram_category_accuracy: bigram / n,
    chance: 1 / C,
    model_val_loss_recomputed: nll / tokens,
    model_val_accuracy_recomputed: correct / tokens,
  };
}

async function main() {
  const args = parseArgs(Deno.args);
  const objects = join(args.store, "objects");
  let trainKey = args.train;
  let record: Record<string, unknown> | undefined;
  let bucketKey = args.bucket;
  if (!trainKey && !bucketKey) {
    record = await runRecord(args.store, args.run);
    // deno-lint-ignore no-explicit-any
    const steps = record.steps as any;
    const t = steps.train?.key as string | undefined;
    const done = t !== undefined &&
      await Deno.stat(join(objects, t, "metrics.json")).then(() => true, () => false);
    if (done) trainKey = t;
    else bucketKey = steps.bucket.key as string;
  }
  const trainDir = trainKey ? join(objects, trainKey) : "";
  bucketKey ??= ((await readJson(join(trainDir, "manifest.json")))
    .inputs as Record<string, string>).data;
  const bucketDir = join(objects, bucketKey);
  const bucketManifest = await readJson(join(bucketDir, "manifest.json"));
  const tokKey = (bucketManifest.inputs as Record<string, string>).tokens;
  const tokMetrics = await readJson(join(objects, tokKey, "metrics.json"));
  const trainMetrics = trainKey ? await readJson(join(trainDir, "metrics.json")) : {};

  const data = await readBucketedData(bucketDir);
  const V = data.vocab.tokens.length;
  const tr = pairs(data.train), va = pairs(data.val);
  const m = fit(tr.prev, tr.next, V);
  const kBest = chooseK(tr, V);
  const at01 = losses(m, 0.1, va.prev, va.next);
  const atK = losses(m, kBest.bigram, va.prev, va.next);
  const uniK = losses(m, kBest.unigram, va.prev, va.next);
  const uniArg = argmaxRow(m.uni, 0, V);
  let biOk = 0, repOk = 0;
  for (let i = 0; i < va.next.length; i++) {
    const p = va.prev[i];
    const guess = m.ctx[p] > 0 ? argmaxRow(m.bi, p * V, V) : uniArg;
    if (guess === va.next[i]) biOk++;
    if (p === va.next[i]) repOk++;
  }

  // train loss near the best step (mean of the train curve over the epoch ending there)
  let trainLossAtBest: number | null = null;
  if (trainKey) {
    try {
      const curves = (await Deno.readTextFile(join(trainDir, "curves.jsonl"))).trim().split("\n")
        .map((l) => JSON.parse(l));
      const best = trainMetrics.best_step as number;
      const ev = curves.filter((c) => c.kind === "eval").map((c) => c.step as number);
      const prevEval = Math.max(0, ...ev.filter((s) => s < best));
      const win = curves.filter((c) => c.kind === "train" && c.step > prevEval && c.step <= best);
      if (win.length) {
        let l = 0, t = 0;
        for (const c of win) {
          l += c.loss * c.tokens;
          t += c.tokens;
        }
        trainLossAtBest = l / t;
      }
    } catch { /* no curves */ }
  }

  const bigramLoss = Math.min(at01.bigram, atK.bigram);
  const modelLoss = (trainMetrics.best_val_loss ?? NaN) as number;
  const out: Record<string, unknown> = {
    train_key: trainKey?.slice(0, 12),
    bucket_key: bucketKey.slice(0, 12),
    overrides: record?.overrides,
    val_targets: va.next.length,
    train_targets: tr.next.length,
    vocab_size: V,
    unigram_loss_k01: at01.unigram,
    unigram_loss_kcv: uniK.unigram,
    bigram_loss_k01: at01.bigram,
    bigram_k_cv: kBest.bigram,
    bigram_loss_kcv: atK.bigram,
    bigram_accuracy: biOk / va.next.length,
    repeat_previous_accuracy: repOk / va.next.length,
    model_val_loss: modelLoss,
    model_val_accuracy: trainMetrics.best_val_token_accuracy,
    model_train_loss_at_best: trainLossAtBest,
    loss_vs_best_bigram: modelLoss / bigramLoss - 1,
    steps: trainMetrics.steps,
    best_step: trainMetrics.best_step,
    stopped: trainMetrics.stopped,
    train_seconds: trainMetrics.train_seconds,
    tokens_per_s: trainMetrics.tokens_per_s,
    parameters: trainMetrics.parameters,
    reconstruction_lsd_db: tokMetrics.reconstruction_lsd_db,
    code_perplexity: tokMetrics.code_perplexity,
    tokens_total: tokMetrics.tokens,
  };
  // the evaluate job's figures (test split), when the run had that step
  // deno-lint-ignore no-explicit-any
  const evalKey = (record?.steps as any)?.evaluate?.key as string | undefined;
  if (evalKey) {
    out.evaluate = await readJson(join(objects, evalKey, "metrics.json")).catch(() => null);
  }
  if (args.category && trainKey) {
    Object.assign(out, await categoryAccuracy(trainDir, data.val, data.vocab, m));
  }
  if (args.json) {
    console.log(JSON.stringify(out));
    return;
  }
  for (const [k, v] of Object.entries(out)) {
    console.log(
      `${k.padEnd(28)} ${
        typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : JSON.stringify(v)
      }`,
    );
  }
}

if (import.meta.main) await main();
