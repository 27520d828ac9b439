/**
 * The training loop behind the train job: data order, learning-rate schedule,
 * evaluation, early stopping, checkpoints and exact resume. The GPU work is
 * the training graph's (lib/model/graph.ts); this file decides what to feed
 * it and when to read it back.
 *
 * Exact resume: the data order of epoch e is a pure function of (seed, e), and
 * a checkpoint holds the weights, Adam's moments, the step count and the
 * position in the epoch, written atomically. A run killed at any moment and
 * started again continues from the last checkpoint and replays the same
 * steps, so its weights end bit-identical to an uninterrupted run's.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { UserError } from "../errors/mod.ts";
import type { ErrorLocation } from "../errors/mod.ts";
import type { ProgressReporter } from "../pipeline/job.ts";
import { formatDuration } from "../pipeline/progress.ts";
import { Random } from "../random/mod.ts";
import { sha256Hex } from "../artifacts/hash.ts";
import type { BucketedData, TokenBatch } from "../data/types.ts";
import { readBucketedData } from "../data/mod.ts";
import { requestGpu } from "../gpu/device.ts";
import { type SamOutConfig, validateConfig } from "../model/config.ts";
import { initParameters, parameterCount } from "../model/params.ts";
import { samoutFromSafetensors, samoutToSafetensors } from "../model/safetensors.ts";
import { readSafetensors, writeSafetensors } from "../model/safetensors.ts";
import {
  chooseMatmulTiles,
  type ChooseOptions,
  describeChoice,
  samoutProductShapes,
} from "../gpu/tuning.ts";
import { WEIGHT_GRAD_ROWS } from "../model/backward.ts";
import { type OptimizerSettings, SamOutTrainingGraph } from "../model/graph.ts";
import type { TrainParams } from "../../jobs/train.ts";

/** Everything {@link trainSamOut} needs; the train job fills it from its context. */
export interface TrainRequest {
  params: TrainParams;
  seed: number;
  /** The bucket artifact's directory. */
  dataDir: string;
  /** Staging directory of the artifact being published. */
  outDir: string;
  /** Directory that survives kills: checkpoints live here. */
  workDir: string;
  /** The store's cache folder, where the kernel choice for this adapter is kept. */
  cacheDir?: string;
  /** Overrides of how the kernels are chosen (tests and tools: candidates, the size threshold). */
  kernelTuning?: Pick<ChooseOptions, "minWork" | "candidates">;
  progress: ProgressReporter;
  log(message: string): void;
  signal: AbortSignal;
  where: ErrorLocation;
}

/**
 * Position and bookkeeping saved with every checkpoint: `state.json`, except
 * the clock-dependent `elapsedS` and `curvesBytes`, which go in `progress.json`.
 */
interface LoopState {
  /** Optimizer steps taken. */
  step: number;
  epoch: number;
  /** Batches of `epoch` already consumed. */
  batchInEpoch: number;
  bestValLoss: number | null;
  bestStep: number;
  evalsWithoutImprovement: number;
  evaluations: number;
  stopped: "early" | "epochs" | "max_steps" | null;
  /** Bytes of curves.jsonl that belong to this state (later lines are dropped on resume). */
  curvesBytes: number;
  /** Training seconds before this checkpoint (wall clock of earlier attempts). */
  elapsedS: number;
}

const CHECKPOINT = "checkpoint";

/** Learning rate at optimizer step `step` (0-based) of `total`. */
export function learningRate(p: TrainParams, step: number, total: number): number {
  const peak = p.optimizer.lr;
  const warm = p.schedule.warmup_steps;
  if (warm > 0 && step < warm) return peak * (step + 1) / warm;
  if (p.schedule.kind === "constant") return peak;
  const span = Math.max(1, total - warm);
  const progress = Math.min(1, (step - warm) / span);
  const floor = peak * p.schedule.min_lr_ratio;
  return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Order in which epoch `epoch` visits the training batches: a pure function of (seed, epoch). */
export function epochOrder(seed: number, epoch: number, batches: number): number[] {
  const order = Array.from({ length: batches }, (_, i) => i);
  return new Random(seed, `train/data-order/${epoch}`).shuffle(order);
}

/** Trains, evaluates, checkpoints; returns the metrics for `metrics.json`. */
export async function trainSamOut(req: TrainRequest): Promise<{
  metrics: Record<string, unknown>;
  environment: Record<string, string>;
}> {
  const p = req.params;
  const data = await readBucketedData(req.dataDir);
  const cfg = modelConfig(p, data, req.where);
  checkData(data, cfg, req.where);

  const gpu = await requestGpu();
  const maxBatch = Math.max(...data.train.map((b) => b.rows), ...data.val.map((b) => b.rows));
  const optimizer: OptimizerSettings = {
    kind: p.optimizer.kind,
    beta1: p.optimizer.beta1,
    beta2: p.optimizer.beta2,
    eps: p.optimizer.eps,
    weightDecay: p.optimizer.weight_decay,
    clipNorm: p.clip_grad_norm,
  };
  const tuningStart = performance.now();
  const kernels = await chooseMatmulTiles(
    gpu,
    samoutProductShapes(cfg, maxBatch * (data.maxLength - 1), WEIGHT_GRAD_ROWS),
    { cacheDir: req.cacheDir, log: req.log, ...req.kernelTuning },
  );
  if (kernels.source === "tuned") {
    const seconds = ((performance.now() - tuningStart) / 1000).toFixed(1);
    req.log(`matrix-product kernels: ${describeChoice(kernels)} in ${seconds} s`);
  }
  const graph = await SamOutTrainingGraph.create(gpu, {
    config: cfg,
    maxBatch,
    maxLength: data.maxLength,
    optimizer,
    tiles: kernels.tiles,
  });
  const lost = watchDeviceLoss(gpu.device, req.where);
  try {
    const ckptDir = join(req.workDir, CHECKPOINT);
    const curvesPath = join(req.workDir, "curves.jsonl");
    let state = await loadCheckpoint(ckptDir, graph, cfg, req.log);
    if (state) {
      req.log(
        `resuming from the checkpoint at step ${state.step} (epoch ${
          state.epoch + 1
        }, batch ${state.batchInEpoch})`,
      );
      await truncateFile(curvesPath, state.curvesBytes);
    } else {
      graph.uploadWeights(initParameters(cfg, req.seed));
      await removeIfExists(curvesPath);
      await removeIfExists(join(req.workDir, "best.safetensors"));
      state = {
        step: 0,
        epoch: 0,
        batchInEpoch: 0,
        bestValLoss: null,
        bestStep: 0,
        evalsWithoutImprovement: 0,
        evaluations: 0,
        stopped: null,
        curvesBytes: 0,
        elapsedS: 0,
      };
    }
    const curves = await Deno.open(curvesPath, { create: true, append: true });
    try {
      await runLoop(req, graph, cfg, data, state, curves, ckptDir, lost);
    } finally {
      curves.close();
    }
    return await publish(req, graph, cfg, data, state, {
      webgpu_adapter: gpu.adapterDescription,
      matmul_kernels: describeChoice(kernels),
    });
  } finally {
    graph.destroy();
  }
}

function modelConfig(p: TrainParams, data: BucketedData, where: ErrorLocation): SamOutConfig {
  return validateConfig({
    vocabSize: data.vocab.tokens.length,
    hidden: p.model.hidden,
    heads: p.model.heads,
    layers: p.model.layers,
    maxPositions: p.model.max_positions,
  }, { ...where, fieldPrefix: stepField(where, "params.model") });
}

function checkData(data: BucketedData, cfg: SamOutConfig, where: ErrorLocation): void {
  if (data.train.length === 0) {
    throw new UserError("the bucket artifact has no training batches", {
      ...where,
      field: stepField(where, "inputs.data"),
      hint: "add audio files, or lower val_fraction",
    });
  }
  if (data.val.length === 0) {
    throw new UserError("the bucket artifact has no validation batches", {
      ...where,
      field: stepField(where, "inputs.data"),
      hint: "early stopping needs a validation split: raise val_fraction",
    });
  }
  if (data.maxLength - 1 > cfg.maxPositions) {
    throw new UserError("sequences are longer than the model's maximum positions", {
      ...where,
      field: stepField(where, "params.model.max_positions"),
      expected: `at least ${data.maxLength - 1} (the longest input sequence)`,
      found: String(cfg.maxPositions),
      hint: "raise model.max_positions, or lower bucket.max_length",
    });
  }
}

async function runLoop(
  req: TrainRequest,
  graph: SamOutTrainingGraph,
  cfg: SamOutConfig,
  data: BucketedData,
  state: LoopState,
  curves: Deno.FsFile,
  ckptDir: string,
  lost: { error: Error | null },
): Promise<void> {
  const p = req.params;
  const perEpoch = data.train.length;
  const plannedSteps = p.max_steps > 0
    ? Math.min(p.max_steps, p.epochs * perEpoch)
    : p.epochs * perEpoch;
  const encoder = new TextEncoder();
  const started = performance.now();
  // Seconds trained by earlier (killed) attempts, plus this one's.
  const before = state.elapsedS;
  const elapsed = () => before + (performance.now() - started) / 1000;
  let pendingTokens = 0;
  let windowStart = performance.now();
  let lastLoss = NaN;

  const writeCurve = async (record: Record<string, unknown>) => {
    const bytes = encoder.encode(JSON.stringify(record) + "\n");
    await curves.write(bytes);
    state.curvesBytes += bytes.length;
  };

  // Reads the per-step figures the GPU accumulated and writes one curve line per step.
  const flushTrainStats = async (firstStep: number) => {
    const stats = await graph.readTrainStats();
    if (lost.error) throw lost.error;
    const seconds = (performance.now() - windowStart) / 1000;
    const tokensPerS = seconds > 0 ? pendingTokens / seconds : 0;
    for (let i = 0; i < stats.length; i++) {
      const s = stats[i];
      const step = firstStep + i;
      if (!Number.isFinite(s.loss)) {
        throw new UserError(`the training loss became ${s.loss} at step ${step + 1}`, {
          ...req.where,
          field: stepField(req.where, "params.optimizer.lr"),
          hint:
            "lower the learning rate or enable clip_grad_norm; the last checkpoint is kept in the work directory",
        });
      }
      lastLoss = s.loss;
      await writeCurve({
        kind: "train",
        step: step + 1,
        epoch: state.epoch + 1,
        loss: s.loss,
        token_accuracy: s.tokens > 0 ? s.correct / s.tokens : 0,
        lr: learningRate(p, step, plannedSteps),
        grad_norm: s.gradNorm,
        tokens: s.tokens,
      });
    }
    pendingTokens = 0;
    windowStart = performance.now();
    return tokensPerS;
  };

  const evaluate = async (): Promise<boolean> => {
    for (const batch of data.val) graph.evalBatch(batch);
    const ev = await graph.readEvalStats();
    if (lost.error) throw lost.error;
    state.evaluations++;
    const improved = state.bestValLoss === null || ev.loss < state.bestValLoss;
    if (improved) {
      state.bestValLoss = ev.loss;
      state.bestStep = state.step;
      state.evalsWithoutImprovement = 0;
      const weights = await graph.downloadWeights();
      await writeAtomic(join(req.workDir, "best.safetensors"), samoutToSafetensors(cfg, weights));
    } else {
      state.evalsWithoutImprovement++;
    }
    await writeCurve({
      kind: "eval",
      step: state.step,
      epoch: state.epoch + 1,
      val_loss: ev.loss,
      val_token_accuracy: ev.accuracy,
      val_tokens: ev.tokens,
      best_val_loss: state.bestValLoss,
      improved,
    });
    req.log(
      `eval at step ${state.step}: val loss ${ev.loss.toFixed(4)}, token accuracy ${
        (100 * ev.accuracy).toFixed(1)
      }%${
        improved
          ? " (best)"
          : ` (${state.evalsWithoutImprovement}/${p.patience} without improvement)`
      }`,
    );
    return state.evalsWithoutImprovement >= p.patience;
  };

  const checkpoint = async () => {
    state.elapsedS = elapsed();
    await saveCheckpoint(ckptDir, graph, cfg, state);
  };

  let tokensPerS = 0;
  while (state.stopped === null && state.epoch < p.epochs) {
    const order = epochOrder(req.seed, state.epoch, perEpoch);
    req.progress.start(perEpoch, "batches", `epoch ${state.epoch + 1}/${p.epochs}`);
    req.progress.update(state.batchInEpoch);
    let firstUnread = state.step;
    while (state.batchInEpoch < perEpoch) {
      if (req.signal.aborted) throw new UserError("training was interrupted", { ...req.where });
      const batch: TokenBatch = data.train[order[state.batchInEpoch]];
      graph.trainStep(batch, learningRate(p, state.step, plannedSteps));
      pendingTokens += countTargets(batch);
      state.step++;
      state.batchInEpoch++;
      const atLog = state.step % p.log_every_steps === 0 || state.batchInEpoch === perEpoch;
      const atCkpt = state.step % p.checkpoint_every_steps === 0;
      const atEval = p.eval_every_steps > 0 && state.step % p.eval_every_steps === 0;
      const atMax = p.max_steps > 0 && state.step >= p.max_steps;
      if (atLog || atCkpt || atEval || atMax) {
        tokensPerS = await flushTrainStats(firstUnread);
        firstUnread = state.step;
        const left = (plannedSteps - state.step) * (elapsed() / Math.max(1, state.step));
        req.progress.update(
          state.batchInEpoch,
          `loss ${lastLoss.toFixed(3)} · ${Math.round(tokensPerS)} tok/s · ~${
            formatDuration(left)
          } left`,
        );
      }
      if (atEval && await evaluate()) state.stopped = "early";
      if (atMax && state.stopped === null) {
        // A final evaluation, so "best" can be the weights training ends with.
        if (!atEval) await evaluate();
        state.stopped = "max_steps";
      }
      if (state.stopped !== null) break;
      if (atCkpt) await checkpoint();
    }
    if (state.stopped === null) {
      if (p.eval_every_steps === 0 && await evaluate()) state.stopped = "early";
      state.epoch++;
      state.batchInEpoch = 0;
      if (state.stopped === null && state.epoch >= p.epochs) state.stopped = "epochs";
    }
    req.progress.finish(`loss ${lastLoss.toFixed(3)}`);
    await checkpoint();
  }
  if (state.bestValLoss === null) await evaluate();
}

/** Non-padding targets of a batch (positions 1.. of each row). */
function countTargets(batch: TokenBatch): number {
  let n = 0;
  for (let r = 0; r < batch.rows; r++) {
    const row = r * batch.length;
    for (let t = 1; t < batch.length; t++) if (batch.tokens[row + t] !== 0) n++;
  }
  return n;
}

async function publish(
  req: TrainRequest,
  graph: SamOutTrainingGraph,
  cfg: SamOutConfig,
  data: BucketedData,
  state: LoopState,
  environment: Record<string, string>,
): Promise<{ metrics: Record<string, unknown>; environment: Record<string, string> }> {
  const last = await graph.downloadWeights();
  await Deno.writeFile(join(req.outDir, "last.safetensors"), samoutToSafetensors(cfg, last));
  await Deno.copyFile(join(req.workDir, "best.safetensors"), join(req.outDir, "best.safetensors"));
  await Deno.copyFile(join(req.workDir, "curves.jsonl"), join(req.outDir, "curves.jsonl"));
  // The last checkpoint (weights, Adam's moments, loop state), to continue training from.
  const ckptOut = join(req.outDir, CHECKPOINT);
  await Deno.mkdir(ckptOut);
  for (const name of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
    await Deno.copyFile(join(req.workDir, CHECKPOINT, name), join(ckptOut, name));
  }
  await Deno.writeTextFile(
    join(req.outDir, "vocab.json"),
    JSON.stringify(data.vocab, null, 2) + "\n",
  );
  const config = {
    voc_size: cfg.vocabSize,
    hidden_size: cfg.hidden,
    num_heads: cfg.heads,
    num_layers: cfg.layers,
    max_positions: cfg.maxPositions,
    parameters: parameterCount(cfg),
  };
  await Deno.writeTextFile(join(req.outDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const uniformLoss = Math.log(cfg.vocabSize);
  const curves = await readCurves(join(req.workDir, "curves.jsonl"));
  const bestEval = curves.findLast((r) => r.kind === "eval" && r.step === state.bestStep);
  // Throughput is a timing: it goes in metrics.json (which a re-run may change), never in the
  // curves, whose bytes a re-run must reproduce.
  const tokens = curves.reduce((n, r) => r.kind === "train" ? n + (r.tokens ?? 0) : n, 0);
  const accuracy = bestEval?.val_token_accuracy;
  req.log(
    `best validation loss ${state.bestValLoss?.toFixed(4)} at step ${state.bestStep} ` +
      `(uniform guessing: ${uniformLoss.toFixed(4)})` +
      (accuracy !== undefined ? `, token accuracy ${(100 * accuracy).toFixed(1)}%` : "") +
      `; ${state.step} steps, stopped: ${describeStop(state.stopped)}`,
  );
  return {
    metrics: {
      steps: state.step,
      epochs_completed: state.epoch,
      stopped: state.stopped,
      best_step: state.bestStep,
      best_val_loss: state.bestValLoss,
      best_val_token_accuracy: bestEval?.val_token_accuracy ?? null,
      uniform_loss: uniformLoss,
      evaluations: state.evaluations,
      parameters: parameterCount(cfg),
      train_seconds: Math.round(state.elapsedS * 10) / 10,
      tokens_per_s: state.elapsedS > 0 ? Math.round(tokens / state.elapsedS) : 0,
    },
    environment,
  };
}

/** A record of curves.jsonl: a train step's figures or an evaluation's (the fields read here). */
interface CurveRecord {
  kind: "train" | "eval";
  step: number;
  /** Train records: target tokens of the step. */
  tokens?: number;
  /** Eval records. */
  val_token_accuracy?: number;
}

/** The records of curves.jsonl, in order. */
async function readCurves(path: string): Promise<CurveRecord[]> {
  return (await Deno.readTextFile(path)).split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

function describeStop(stopped: LoopState["stopped"]): string {
  if (stopped === "early") return "early (no validation improvement for `patience` evaluations)";
  if (stopped === "max_steps") return "max_steps reached";
  return "all epochs done";
}

/** A field path inside a pipeline file's step, e.g. `steps.train.params.model.heads`. */
function stepField(where: ErrorLocation, path: string): string {
  return where.step ? `steps.${where.step}.${path}` : path;
}

// ---- checkpoints -------------------------------------------------------------

/** `checkpoint/checksums.json`: size and SHA-256 of every file a resume trusts, written last. */
interface CheckpointChecksums {
  format: 1;
  /** File in the checkpoint folder -> size and hex SHA-256. */
  files: Record<string, { size: number; sha256: string }>;
  /** The first `bytes` of the work folder's curves.jsonl belong to this checkpoint. */
  curves: { bytes: number; sha256: string };
}

const CHECKSUMS = "checksums.json";
const BEST = "best.safetensors";

/** A checkpoint that must not be resumed from, with the reason. */
class CheckpointDamage extends Error {}

/**
 * Writes a checkpoint: into `<dir>.tmp`, the weights, Adam's moments,
 * `state.json`, `progress.json` and a link to (or copy of) the best weights so
 * far, then `checksums.json` (written last: a folder without it is an
 * unfinished write), each fsynced; then the current checkpoint becomes
 * `<dir>.prev` (kept as the fallback) and the new one `<dir>`. A kill at any
 * moment leaves `<dir>` or `<dir>.prev` complete and verifiable. A failed write
 * (a full disk) removes `<dir>.tmp` and leaves the last good checkpoint alone.
 */
async function saveCheckpoint(
  dir: string,
  graph: SamOutTrainingGraph,
  cfg: SamOutConfig,
  state: LoopState,
): Promise<void> {
  const workDir = dirname(dir);
  const tmp = `${dir}.tmp`;
  const prev = `${dir}.prev`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  try {
    // The previous fallback goes first, so a checkpoint never needs room for three copies.
    if (await exists(dir)) await Deno.remove(prev, { recursive: true }).catch(() => {});
    await Deno.mkdir(tmp, { recursive: true });
    const weights = await graph.downloadWeights();
    const opt = await graph.downloadOptimizerState();
    const moments = [];
    for (const [name, data] of opt.m) {
      moments.push({ name: `m.${name}`, shape: [data.length], data });
    }
    for (const [name, data] of opt.v) {
      moments.push({ name: `v.${name}`, shape: [data.length], data });
    }
    // state.json is a pure function of the seed and the data; what depends on the
    // clock (time trained, the curves' tokens/s widths) goes in progress.json.
    const { elapsedS, curvesBytes, ...position } = state;
    const enc = new TextEncoder();
    const contents: [string, Uint8Array][] = [
      ["model.safetensors", samoutToSafetensors(cfg, weights)],
      ["optimizer.safetensors", writeSafetensors(moments, { step: String(opt.step) })],
      ["state.json", enc.encode(JSON.stringify(position, null, 2) + "\n")],
      ["progress.json", enc.encode(JSON.stringify({ elapsedS, curvesBytes }) + "\n")],
    ];
    const sums: CheckpointChecksums = {
      format: 1,
      files: {},
      curves: {
        bytes: curvesBytes,
        sha256: await sha256Hex(await readPrefix(join(workDir, "curves.jsonl"), curvesBytes)),
      },
    };
    for (const [name, bytes] of contents) {
      await writeSynced(join(tmp, name), bytes);
      sums.files[name] = { size: bytes.length, sha256: await sha256Hex(bytes) };
    }
    if (state.bestValLoss !== null) {
      // best.safetensors is replaced by rename when it improves, so a hard link keeps these bytes.
      const best = await Deno.readFile(join(workDir, BEST));
      await Deno.link(join(workDir, BEST), join(tmp, BEST))
        .catch(() => writeSynced(join(tmp, BEST), best));
      sums.files[BEST] = { size: best.length, sha256: await sha256Hex(best) };
    }
    await writeSynced(join(tmp, CHECKSUMS), enc.encode(JSON.stringify(sums, null, 2) + "\n"));
    await fsyncDir(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  if (await exists(dir)) await Deno.rename(dir, prev);
  await Deno.rename(tmp, dir);
  await fsyncDir(workDir);
}

/**
 * Resumes from the newest checkpoint that verifies: `<dir>`, else `<dir>.prev`.
 * Every file must match `checksums.json` (size and SHA-256), and so must the
 * curves written up to it; a checkpoint that does not is renamed to
 * `<name>.damaged` (kept for a look until the step publishes) and the next is
 * tried. `log` says which checkpoint was damaged, why, and whether training
 * resumes from an earlier checkpoint or starts from the beginning. Restores
 * the best weights so far into the work folder. Null: start from the beginning.
 */
async function loadCheckpoint(
  dir: string,
  graph: SamOutTrainingGraph,
  cfg: SamOutConfig,
  log: (message: string) => void,
): Promise<LoopState | null> {
  const workDir = dirname(dir);
  // An unfinished write (killed, or a full disk) is never resumed from.
  await Deno.remove(`${dir}.tmp`, { recursive: true }).catch(() => {});
  const damaged: string[] = [];
  for (const candidate of [dir, `${dir}.prev`]) {
    if (!await exists(candidate)) continue;
    let loaded: VerifiedCheckpoint;
    try {
      loaded = await readVerifiedCheckpoint(candidate, workDir);
    } catch (e) {
      if (!(e instanceof CheckpointDamage)) throw e;
      const aside = `${candidate}.damaged`;
      await Deno.remove(aside, { recursive: true }).catch(() => {});
      await Deno.rename(candidate, aside);
      damaged.push(`${candidate}: ${e.message} (kept as ${basename(aside)})`);
      continue;
    }
    if (JSON.stringify(loaded.cfg) !== JSON.stringify(cfg)) {
      const file = join(candidate, "model.safetensors");
      throw new UserError("the checkpoint to resume from has other model sizes", {
        file,
        expected: JSON.stringify(cfg),
        found: JSON.stringify(loaded.cfg),
        hint:
          "this cannot happen for an unchanged step key; delete the work directory to start over",
      });
    }
    graph.uploadWeights(loaded.params);
    graph.uploadOptimizerState(loaded.optimizer);
    if (candidate !== dir) await Deno.rename(candidate, dir);
    const best = join(workDir, BEST);
    if (loaded.hasBest) {
      await Deno.copyFile(join(dir, BEST), `${best}.tmp`);
      await Deno.rename(`${best}.tmp`, best);
    } else await removeIfExists(best);
    if (damaged.length) {
      log(
        `the checkpoint is damaged, not resumed from: ${damaged.join("; ")}. ` +
          `Resuming from the previous checkpoint, at step ${loaded.state.step}, instead`,
      );
    }
    return loaded.state;
  }
  if (damaged.length) {
    log(
      `the checkpoint is damaged, not resumed from: ${damaged.join("; ")}. ` +
        `No good checkpoint is left: training starts from the beginning`,
    );
  }
  return null;
}

/** A checkpoint read back after every file matched its checksum. */
interface VerifiedCheckpoint {
  state: LoopState;
  cfg: SamOutConfig;
  params: ReturnType<typeof samoutFromSafetensors>["params"];
  optimizer: { step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> };
  hasBest: boolean;
}

/** Reads a checkpoint folder, checking every file against `checksums.json`; throws {@link CheckpointDamage}. */
async function readVerifiedCheckpoint(dir: string, workDir: string): Promise<VerifiedCheckpoint> {
  let sums: CheckpointChecksums;
  try {
    sums = JSON.parse(await Deno.readTextFile(join(dir, CHECKSUMS)));
  } catch (e) {
    throw new CheckpointDamage(
      e instanceof Deno.errors.NotFound
        ? `${CHECKSUMS} is missing (an unfinished write, or a checkpoint from an older version)`
        : `${CHECKSUMS} is unreadable (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  const files = sums?.files;
  const required = ["model.safetensors", "optimizer.safetensors", "state.json", "progress.json"];
  if (
    sums?.format !== 1 || !files || typeof files !== "object" ||
    !required.every((n) => typeof files[n]?.sha256 === "string") ||
    typeof sums.curves?.bytes !== "number"
  ) {
    throw new CheckpointDamage(`${CHECKSUMS} does not list the checkpoint's files`);
  }
  const bytes = new Map<string, Uint8Array>();
  for (const [name, want] of Object.entries(files)) {
    let data: Uint8Array;
    try {
      data = await Deno.readFile(join(dir, name));
    } catch (e) {
      throw new CheckpointDamage(
        `${name} is ${e instanceof Deno.errors.NotFound ? "missing" : "unreadable"}`,
      );
    }
    if (data.length !== want.size) {
      throw new CheckpointDamage(
        `${name} is ${data.length} bytes, its checksum was taken over ${want.size} (truncated or changed)`,
      );
    }
    if (await sha256Hex(data) !== want.sha256) {
      throw new CheckpointDamage(`${name} does not match its checksum (changed or corrupted)`);
    }
    bytes.set(name, data);
  }
  const curves = await readPrefix(join(workDir, "curves.jsonl"), sums.curves.bytes);
  if (curves.length !== sums.curves.bytes || await sha256Hex(curves) !== sums.curves.sha256) {
    throw new CheckpointDamage(
      `curves.jsonl does not hold the ${sums.curves.bytes} bytes written up to this checkpoint`,
    );
  }
  const dec = new TextDecoder();
  try {
    const state = {
      ...JSON.parse(dec.decode(bytes.get("state.json"))),
      ...JSON.parse(dec.decode(bytes.get("progress.json"))),
    } as LoopState;
    const file = join(dir, "model.safetensors");
    const { cfg, params } = samoutFromSafetensors(bytes.get("model.safetensors")!, { file });
    const optFile = join(dir, "optimizer.safetensors");
    const { tensors, metadata } = readSafetensors(bytes.get("optimizer.safetensors")!, {
      file: optFile,
    });
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, t] of tensors) {
      if (name.startsWith("m.")) m.set(name.slice(2), t.data);
      else if (name.startsWith("v.")) v.set(name.slice(2), t.data);
    }
    return {
      state,
      cfg,
      params,
      optimizer: { step: Number(metadata.step), m, v },
      hasBest: bytes.has(BEST),
    };
  } catch (e) {
    // Checksums match, so this was written so; still, never a stack trace for a checkpoint.
    throw new CheckpointDamage(`cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** The first `length` bytes of a file (fewer when it is shorter; none when it is missing). */
async function readPrefix(path: string, length: number): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Uint8Array();
    throw e;
  }
  return data.subarray(0, Math.min(length, data.length));
}

async function fsyncDir(path: string): Promise<void> {
  try {
    const f = await Deno.open(path, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch {
    // Directory fsync is not supported everywhere; the renames are still atomic.
  }
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await writeSynced(tmp, bytes);
  } catch (e) {
    await removeIfExists(tmp).catch(() => {});
    throw e;
  }
  await Deno.rename(tmp, path);
}

async function truncateFile(path: string, length: number): Promise<void> {
  if (!await exists(path)) {
    await Deno.writeFile(path, new Uint8Array());
    return;
  }
  await Deno.truncate(path, length);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function removeIfExists(path: string): Promise<void> {
  await Deno.remove(path).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

function watchDeviceLoss(device: GPUDevice, where: ErrorLocation): { error: Error | null } {
  const holder: { error: Error | null } = { error: null };
  device.lost.then((info) => {
    holder.error = new UserError(`the GPU device was lost (${info.reason}): ${info.message}`, {
      ...where,
      hint:
        "the last checkpoint is kept: run the same command again to resume (lower the batch size or model size if it ran out of memory)",
    });
  });
  return holder;
}
