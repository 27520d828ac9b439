/**
 * The SamOut training graph on WebGPU: the model's forward pass
 * (`forward.ts`, shared with the inference model), the fused softmax
 * cross-entropy, the backward pass (`backward.ts`), then global-norm
 * clipping and Adam, built once per model size.
 *
 * {@link SamOutTrainingGraph.create} allocates every buffer once for
 * `maxBatch x (maxLength - 1)` rows. A training step uploads only the token
 * ids, the targets and the embedding-gradient plan, then records every stage
 * into ONE compute pass and submits it: no readback. Loss, accuracy and
 * gradient norm accumulate on the GPU and are read in one go by
 * {@link SamOutTrainingGraph.readTrainStats}. Built without an optimizer, the
 * graph computes losses and gradients only (no Adam moments allocated).
 *
 * Batches are teacher-forced: a `TokenBatch` of `length` tokens per row feeds
 * `seq[:, :-1]` (S = length - 1 positions) and is scored against `seq[:, 1:]`.
 * Each batch has its own length (dynamic padding): dispatch sizes follow it.
 *
 * Determinism: every reduction runs in a fixed order and no kernel uses
 * atomics, so the same weights and batches give bit-identical weights.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import type { TokenBatch } from "../data/types.ts";
import type { Gpu } from "../gpu/device.ts";
import { createAdam } from "../gpu/ops/adam.ts";
import { createCrossEntropy, STATS, STATS_FIELDS } from "../gpu/ops/cross_entropy.ts";
import { type EmbeddingGradientPlan, planEmbeddingGradient } from "../gpu/ops/embedding_plan.ts";
import { createGradNorm } from "../gpu/ops/grad_norm.ts";
import type { MatmulTiles } from "../gpu/ops/matmul.ts";
import { buildBackward } from "./backward.ts";
import { type SamOutConfig, validateConfig } from "./config.ts";
import { buildForward } from "./forward.ts";
import { teacherForced } from "./inference.ts";
import { packFlat, type ParameterLayout, parameterLayout, unpackFlat } from "./layout.ts";
import {
  buildInErrorScopes,
  F32,
  GraphResources,
  recordStages,
  type Stage,
  type StepDims,
  tensorSlice,
} from "./resources.ts";

/** Adam / AdamW settings (PyTorch semantics); the learning rate comes per step. */
export interface OptimizerSettings {
  kind: "adam" | "adamw";
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 term added to the gradient (adam) or decoupled decay (adamw). */
  weightDecay: number;
  /** Clip the global gradient L2 norm to this value; null: no clipping. */
  clipNorm: number | null;
}

/** What the graph is built for. */
export interface TrainingGraphOptions {
  config: SamOutConfig;
  /** Most rows of any batch. */
  maxBatch: number;
  /** Longest padded sequence including the shifted target (S + 1 <= maxPositions + 1). */
  maxLength: number;
  /**
   * Adam settings; null builds a graph that computes losses and gradients
   * only (no Adam moments are allocated; {@link SamOutTrainingGraph.trainStep} throws).
   */
  optimizer: OptimizerSettings | null;
  /**
   * The matrix-product kernels (default: the adapter's defaults; see
   * lib/gpu/tuning.ts for the ones measured fastest on this adapter). Every
   * choice gives the same sums in the same order: results do not depend on it.
   */
  tiles?: Partial<MatmulTiles>;
}

/** Figures of one training step. */
export interface TrainStepStats {
  /** Mean cross-entropy over the non-padding targets of the step. */
  loss: number;
  /** Non-padding targets. */
  tokens: number;
  /** Targets where argmax(logits) == target. */
  correct: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
}

/** Figures over the `evalBatch` calls since the last read. */
export interface EvalStats {
  /** Mean cross-entropy over all non-padding targets (token-weighted). */
  loss: number;
  accuracy: number;
  tokens: number;
}

/** Adam's state, by parameter name, with the number of steps taken. */
export interface OptimizerState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** Stats slots of the training accumulator: steps between two flushes to the host. */
const TRAIN_SLOTS = 256;

/**
 * The SamOut training graph of one model size on one device. See the module
 * documentation for the step's structure.
 */
export class SamOutTrainingGraph {
  /** The model's sizes. */
  readonly config: SamOutConfig;
  /** Where each tensor sits in the flat parameter, gradient and Adam buffers. */
  readonly layout: ParameterLayout;
  /** Most rows of a batch. */
  readonly maxBatch: number;
  /** Longest batch `length` (input + shifted target). */
  readonly maxLength: number;
  /** Adam settings the update kernels were built with. */
  readonly optimizer: OptimizerSettings | null;
  readonly #gpu: Gpu;
  /** Rows of every activation buffer: maxBatch x (maxLength - 1). */
  readonly #maxRows: number;
  /** The matrix-product kernels (empty: the adapter's defaults). */
  readonly #tiles: Partial<MatmulTiles>;
  /** Every buffer and step the graph created (destroyed by {@link destroy}). */
  readonly #res: GraphResources;
  #params!: GPUBuffer;
  #grads!: GPUBuffer;
  #adamM!: GPUBuffer;
  #adamV!: GPUBuffer;
  /** Input ids `[B, S]` i32 (seq[:, :-1]). */
  #ids!: GPUBuffer;
  /** Targets `[B, S]` i32 (seq[:, 1:]). */
  #targets!: GPUBuffer;
  /** Logits `[B*S, V]` f32; dL/dlogits in place after the loss. */
  #logits!: GPUBuffer;
  #trainStats!: GPUBuffer;
  #evalStats!: GPUBuffer;
  #probeStats!: GPUBuffer;
  #forward: Stage[] = [];
  #trainLoss!: Stage;
  #evalLoss!: Stage;
  #probeLoss!: Stage;
  #backward: Stage[] = [];
  #update: Stage[] = [];
  /** Embedding-gradient plan of the batch being encoded. */
  #plan: EmbeddingGradientPlan = {
    tokens: new Uint32Array(0),
    offsets: new Uint32Array(1),
    positions: new Uint32Array(0),
  };
  /** Non-padding targets of the batch being encoded (for the loss scale). */
  #count = 0;
  /** Stats slot of the step being encoded. */
  #slot = 0;
  /** Learning rate of the step being encoded. */
  #lr = 0;
  /** Adam steps taken (1-based step of the last update). */
  #step = 0;
  /** Train-stats slots used since the last flush. */
  #slotsUsed = 0;
  /** Earlier flushes of the train accumulator, in order, not yet read. */
  #pendingFlushes: Promise<Float32Array>[] = [];
  #destroyed = false;

  private constructor(gpu: Gpu, options: TrainingGraphOptions) {
    this.#gpu = gpu;
    this.#res = new GraphResources(
      gpu,
      "the training graph",
      "the GPU driver reset or the device was removed; rerun to resume from the last checkpoint",
    );
    this.config = validateConfig(options.config);
    this.layout = parameterLayout(this.config);
    this.maxBatch = options.maxBatch;
    this.maxLength = options.maxLength;
    this.optimizer = options.optimizer ? { ...options.optimizer } : null;
    this.#tiles = options.tiles ?? {};
    this.#maxRows = options.maxBatch * (options.maxLength - 1);
  }

  /**
   * Builds the graph for `options.config` with every buffer sized for
   * `maxBatch x (maxLength - 1)` rows. Throws a `UserError` naming the adapter
   * limit and the batch size or length that would fit when a buffer would
   * exceed `maxStorageBufferBindingSize` or `maxBufferSize`.
   */
  static async create(gpu: Gpu, options: TrainingGraphOptions): Promise<SamOutTrainingGraph> {
    checkOptions(options);
    checkLimits(gpu, options);
    const graph = new SamOutTrainingGraph(gpu, options);
    await buildInErrorScopes(
      gpu,
      "the training graph",
      () => graph.#build(),
      () => graph.destroy(),
    );
    graph.#res.watchDevice();
    return graph;
  }

  // -------------------------------------------------------------------------
  // Weights and optimizer state
  // -------------------------------------------------------------------------

  /** Uploads every parameter (names and sizes as params.ts; UserError naming a bad tensor). */
  uploadWeights(weights: Map<string, Float32Array>): void {
    this.#checkUsable();
    const flat = packFlat(this.layout, weights, "weights");
    this.#gpu.device.queue.writeBuffer(this.#params, 0, flat);
  }

  /** Reads every parameter back, by name (one readback). */
  async downloadWeights(): Promise<Map<string, Float32Array>> {
    return unpackFlat(this.layout, await this.#readFloats(this.#params, this.layout.totalFloats));
  }

  /** Uploads Adam's moments and the number of steps already taken (for bias correction). */
  uploadOptimizerState(state: OptimizerState): void {
    this.#checkUsable();
    this.#checkOptimizer("uploadOptimizerState");
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new UserError("the optimizer state's step count is not a non-negative integer", {
        field: "step",
        found: String(state.step),
      });
    }
    const q = this.#gpu.device.queue;
    q.writeBuffer(this.#adamM, 0, packFlat(this.layout, state.m, "optimizer state m"));
    q.writeBuffer(this.#adamV, 0, packFlat(this.layout, state.v, "optimizer state v"));
    this.#step = state.step;
  }

  /** Reads Adam's moments back, with the number of steps taken. */
  async downloadOptimizerState(): Promise<OptimizerState> {
    this.#checkOptimizer("downloadOptimizerState");
    const n = this.layout.totalFloats;
    const m = unpackFlat(this.layout, await this.#readFloats(this.#adamM, n));
    const v = unpackFlat(this.layout, await this.#readFloats(this.#adamV, n));
    return { step: this.#step, m, v };
  }

  // -------------------------------------------------------------------------
  // Steps
  // -------------------------------------------------------------------------

  /**
   * Enqueues one training step on `batch` (forward, loss, backward, global
   * norm and clipping, Adam with learning rate `lr` and the next step's bias
   * corrections). One submit, no readback; the loss, accuracy and gradient
   * norm land in the stats accumulator ({@link readTrainStats}).
   */
  trainStep(batch: TokenBatch, lr: number): void {
    this.#checkUsable();
    this.#checkOptimizer("trainStep");
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`trainStep: lr = ${lr}`);
    const dims = this.#uploadBatch(batch);
    this.#step += 1;
    this.#lr = lr;
    this.#slot = this.#slotsUsed;
    const stages = [...this.#forward, this.#trainLoss, ...this.#backward, ...this.#update];
    this.#encodeAndSubmit("samout.trainStep", stages, dims, {
      clearGrads: true,
      after: (enc) => {
        this.#slotsUsed += 1;
        if (this.#slotsUsed === TRAIN_SLOTS) this.#flushTrainStats(enc);
      },
    });
  }

  /** Enqueues the forward pass and loss of `batch` into the eval accumulator (no readback). */
  evalBatch(batch: TokenBatch): void {
    this.#checkUsable();
    const dims = this.#uploadBatch(batch);
    this.#encodeAndSubmit("samout.evalBatch", [...this.#forward, this.#evalLoss], dims);
  }

  /**
   * Loss, accuracy and gradient norm of every {@link trainStep} since the last
   * call (in order), then resets. One readback (plus one per 256 steps).
   */
  async readTrainStats(): Promise<TrainStepStats[]> {
    this.#checkUsable();
    const used = this.#slotsUsed;
    const chunks = this.#pendingFlushes;
    this.#pendingFlushes = [];
    this.#slotsUsed = 0;
    const current = used > 0
      ? this.#readFloats(this.#trainStats, used * STATS_FIELDS)
      : Promise.resolve(new Float32Array(0));
    if (used > 0) {
      this.#gpu.device.queue.writeBuffer(
        this.#trainStats,
        0,
        new Float32Array(used * STATS_FIELDS),
      );
    }
    const out: TrainStepStats[] = [];
    for (const values of [...(await Promise.all(chunks)), await current]) {
      for (let o = 0; o < values.length; o += STATS_FIELDS) {
        const count = values[o + STATS.count];
        out.push({
          loss: count > 0 ? values[o + STATS.lossSum] / count : 0,
          tokens: count,
          correct: values[o + STATS.correct],
          gradNorm: values[o + STATS.gradNorm],
        });
      }
    }
    return out;
  }

  /** Token-weighted loss and accuracy over the {@link evalBatch} calls since the last read, then resets. */
  async readEvalStats(): Promise<EvalStats> {
    this.#checkUsable();
    const v = await this.#readFloats(this.#evalStats, STATS_FIELDS);
    this.#gpu.device.queue.writeBuffer(this.#evalStats, 0, new Float32Array(STATS_FIELDS));
    const count = v[STATS.count];
    return {
      loss: count > 0 ? v[STATS.lossSum] / count : NaN,
      accuracy: count > 0 ? v[STATS.correct] / count : NaN,
      tokens: count,
    };
  }

  /**
   * Loss, token accuracy and every parameter's gradient on `batch`, without an
   * optimizer step and without touching the train or eval accumulators.
   */
  async lossAndGrads(
    batch: TokenBatch,
  ): Promise<{ loss: number; tokenAccuracy: number; grads: Map<string, Float32Array> }> {
    this.#checkUsable();
    const dims = this.#uploadBatch(batch);
    this.#gpu.device.queue.writeBuffer(this.#probeStats, 0, new Float32Array(STATS_FIELDS));
    this.#encodeAndSubmit(
      "samout.lossAndGrads",
      [...this.#forward, this.#probeLoss, ...this.#backward],
      dims,
      { clearGrads: true },
    );
    const [stats, grads] = await Promise.all([
      this.#readFloats(this.#probeStats, STATS_FIELDS),
      this.#readFloats(this.#grads, this.layout.totalFloats),
    ]);
    const count = stats[STATS.count];
    return {
      loss: count > 0 ? stats[STATS.lossSum] / count : 0,
      tokenAccuracy: count > 0 ? stats[STATS.correct] / count : 0,
      grads: unpackFlat(this.layout, grads),
    };
  }

  /**
   * Logits of the teacher-forced input `seq[:, :-1]` of `batch`:
   * `[rows, length - 1, V]` f32, row-major (position t predicts token t + 1).
   */
  async forwardLogits(batch: TokenBatch): Promise<Float32Array> {
    this.#checkUsable();
    const dims = this.#uploadBatch(batch);
    this.#encodeAndSubmit("samout.forward", this.#forward, dims);
    return await this.#readFloats(this.#logits, dims.rows * this.config.vocabSize);
  }

  /**
   * Profiling aid (it TRAINS one step): runs the stages of one training step
   * each in its own submit and waits for it; returns the time per stage name
   * in milliseconds of `clock` (wall time by default; bench/train.ts passes
   * process CPU time, steadier on a shared machine). Layers are summed.
   */
  profileStep(
    batch: TokenBatch,
    lr: number,
    clock: () => number = () => performance.now(),
  ): Promise<Record<string, number>> {
    return this.#profile("profileStep", batch, lr, async (stages, dims) => {
      const ms: number[] = [];
      for (const [i, stage] of stages.entries()) {
        const t0 = clock();
        this.#encodeAndSubmit(`samout.profile.${stage.name}`, [stage], dims, {
          clearGrads: i === 0,
        });
        await this.#gpu.device.queue.onSubmittedWorkDone();
        ms.push(clock() - t0);
      }
      return ms;
    });
  }

  /**
   * Profiling aid (it TRAINS one step): the stages of one training step in
   * one submission, each after an empty compute pass that writes the
   * adapter's clock, and the clock once more at the end; returns the time per
   * stage name in milliseconds of the adapter's clock (layers summed), less
   * the cost of the empty pass itself (measured by two markers in a row).
   * Unlike {@link profileStep} no stage pays a submit and a wait of its own,
   * so small stages are not inflated. Needs `gpu.timestamps`.
   */
  profileStepTimestamps(batch: TokenBatch, lr: number): Promise<Record<string, number>> {
    if (!this.#gpu.timestamps) {
      throw new Error("profileStepTimestamps: the device has no timestamp-query feature");
    }
    return this.#profile("profileStepTimestamps", batch, lr, async (stages, dims) => {
      // Markers: 0 and 1 back to back (the empty pass's own cost), then one
      // before each stage and one after the last.
      const count = stages.length + 2;
      const device = this.#gpu.device;
      const querySet = device.createQuerySet({ type: "timestamp", count });
      const resolved = device.createBuffer({
        size: count * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const staging = device.createBuffer({
        size: count * 8,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      try {
        this.#res.submit("samout.profileTimestamps", (enc) => {
          const marker = (index: number) =>
            enc.beginComputePass({
              label: "samout.profile.marker",
              timestampWrites: { querySet, beginningOfPassWriteIndex: index },
            }).end();
          enc.clearBuffer(this.#grads);
          marker(0);
          for (const [i, stage] of stages.entries()) {
            marker(i + 1);
            recordStages(enc, `samout.profile.${stage.name}`, [stage], dims);
          }
          marker(count - 1);
          enc.resolveQuerySet(querySet, 0, count, resolved, 0);
          enc.copyBufferToBuffer(resolved, 0, staging, 0, count * 8);
        });
        await staging.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(staging.getMappedRange().slice(0));
        staging.unmap();
        const interval = (i: number) => Number(t[i + 1] - t[i]) / 1e6;
        return stages.map((_, i) => Math.max(0, interval(i + 1) - interval(0)));
      } finally {
        querySet.destroy();
        resolved.destroy();
        staging.destroy();
      }
    });
  }

  /**
   * One profiled training step: `time` trains it from the graph's stages and
   * returns each stage's milliseconds; the result sums them per stage name
   * with the layer number taken out.
   */
  async #profile(
    what: string,
    batch: TokenBatch,
    lr: number,
    time: (stages: Stage[], dims: StepDims) => Promise<number[]>,
  ): Promise<Record<string, number>> {
    this.#checkUsable();
    this.#checkOptimizer(what);
    const dims = this.#uploadBatch(batch);
    this.#step += 1;
    this.#lr = lr;
    this.#slot = this.#slotsUsed;
    const stages = [...this.#forward, this.#trainLoss, ...this.#backward, ...this.#update];
    await this.#gpu.device.queue.onSubmittedWorkDone();
    const ms = await time(stages, dims);
    this.#slotsUsed += 1;
    if (this.#slotsUsed === TRAIN_SLOTS) {
      const enc = this.#gpu.device.createCommandEncoder();
      this.#flushTrainStats(enc);
      this.#gpu.device.queue.submit([enc.finish()]);
    }
    const times: Record<string, number> = {};
    for (const [i, stage] of stages.entries()) {
      const key = stage.name.replace(/\.\d+(\.|$)/, "$1");
      times[key] = (times[key] ?? 0) + ms[i];
    }
    return times;
  }

  /** Destroys every GPU buffer the graph created; the graph is unusable afterwards. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#res.destroy();
  }

  // -------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------

  #checkOptimizer(what: string): void {
    if (!this.optimizer) throw new Error(`${what}: the graph was built without an optimizer`);
  }

  #checkUsable(): void {
    this.#res.checkUsable();
  }

  /**
   * Splits `batch` into input ids and targets, uploads them and the loss
   * scale; returns the dims. Validates sizes and ids (UserError).
   */
  #uploadBatch(batch: TokenBatch): StepDims {
    const { ids, targets, count, dims } = teacherForced(batch, {
      vocabSize: this.config.vocabSize,
      maxBatch: this.maxBatch,
      maxLength: this.maxLength,
      what: "training graph",
    });
    const q = this.#gpu.device.queue;
    q.writeBuffer(this.#ids, 0, ids);
    q.writeBuffer(this.#targets, 0, targets);
    this.#count = count;
    this.#plan = planEmbeddingGradient(ids, this.config.vocabSize);
    return dims;
  }

  /**
   * Records `stages` (see recordStages) and submits them. `clearGrads`
   * zeroes the gradient buffer first (several kernels add into their
   * gradient); `after` may record more commands after the pass.
   */
  #encodeAndSubmit(
    label: string,
    stages: Stage[],
    dims: StepDims,
    opts: { clearGrads?: boolean; after?: (enc: GPUCommandEncoder) => void } = {},
  ): void {
    this.#res.submit(label, (enc) => {
      if (opts.clearGrads) enc.clearBuffer(this.#grads);
      recordStages(enc, label, stages, dims);
      opts.after?.(enc);
    });
  }

  /** Copies the full train accumulator out (read later) and zeroes it, inside `enc`. */
  #flushTrainStats(enc: GPUCommandEncoder): void {
    const bytes = TRAIN_SLOTS * STATS_FIELDS * F32;
    const staging = this.#gpu.device.createBuffer({
      label: "samout.trainStats.flush",
      size: bytes,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    enc.copyBufferToBuffer(this.#trainStats, 0, staging, 0, bytes);
    enc.clearBuffer(this.#trainStats, 0, bytes);
    this.#slotsUsed = 0;
    // mapAsync is ordered after the submit that follows in trainStep.
    const read = Promise.resolve().then(async () => {
      try {
        await staging.mapAsync(GPUMapMode.READ);
        const copy = new Float32Array(staging.getMappedRange().slice(0));
        staging.unmap();
        return copy;
      } finally {
        staging.destroy();
      }
    });
    read.catch(() => {});
    this.#pendingFlushes.push(read);
  }

  #readFloats(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    return this.#res.readFloats(buffer, count);
  }

  // -------------------------------------------------------------------------
  // The graph: buffers, then what the model computes, in order
  // -------------------------------------------------------------------------

  #build(): void {
    const gpu = this.#gpu;
    const V = this.config.vocabSize;
    const N = this.#maxRows;
    const total = this.layout.totalFloats;
    this.#params = this.#res.buffer(total, "params");
    this.#grads = this.#res.buffer(total, "grads");
    this.#ids = this.#res.buffer(N, "ids");
    this.#targets = this.#res.buffer(N, "targets");
    // Whole texels (4 floats): cross-entropy reads the logits through a texture copy.
    this.#logits = this.#res.buffer(Math.ceil(N * V / 4) * 4, "logits");
    this.#trainStats = this.#res.buffer(TRAIN_SLOTS * STATS_FIELDS, "stats.train");
    this.#evalStats = this.#res.buffer(STATS_FIELDS, "stats.eval");
    this.#probeStats = this.#res.buffer(STATS_FIELDS, "stats.probe");
    const W = (name: string) => tensorSlice(this.layout, this.#params, name);
    const G = (name: string) => tensorSlice(this.layout, this.#grads, name);

    // ---- forward ----------------------------------------------------------
    const forward = buildForward(this.#res, {
      config: this.config,
      maxRows: N,
      weight: W,
      ids: this.#ids,
      logits: this.#logits,
      tiles: this.#tiles,
    });
    this.#forward = forward.stages;
    // ---- loss -------------------------------------------------------------
    const loss = (mode: "train" | "eval", stats: GPUBuffer, slot: () => number) =>
      this.#res.stage(
        "cross_entropy",
        createCrossEntropy(gpu, {
          logits: this.#logits,
          targets: this.#targets,
          stats,
          V,
          maxRows: N,
          mode,
        }),
        (s) => ({ N: s.rows, count: this.#count, slot: slot() }),
      );
    this.#trainLoss = loss("train", this.#trainStats, () => this.#slot);
    this.#evalLoss = loss("eval", this.#evalStats, () => 0);
    this.#probeLoss = loss("train", this.#probeStats, () => 0);

    // ---- backward ---------------------------------------------------------
    this.#backward = buildBackward(this.#res, {
      config: this.config,
      layout: this.layout,
      maxRows: N,
      forward,
      weight: W,
      grad: G,
      grads: this.#grads,
      dLogits: this.#logits,
      plan: () => this.#plan,
      tiles: this.#tiles,
    });

    // ---- clip and Adam ----------------------------------------------------
    const opt = this.optimizer;
    if (!opt) return;
    this.#adamM = this.#res.buffer(total, "adam.m");
    this.#adamV = this.#res.buffer(total, "adam.v");
    const norm = createGradNorm(gpu, {
      grad: this.#grads,
      count: total,
      stats: this.#trainStats,
      clipNorm: opt.clipNorm,
    });
    this.#update = [
      this.#res.stage("grad_norm", norm, () => ({ slot: this.#slot })),
      this.#res.stage(
        "adam",
        createAdam(gpu, {
          params: this.#params,
          grads: this.#grads,
          m: this.#adamM,
          v: this.#adamV,
          count: total,
          clip: norm.result,
          beta1: opt.beta1,
          beta2: opt.beta2,
          eps: opt.eps,
          weightDecay: opt.weightDecay,
          decoupled: opt.kind === "adamw",
        }),
        () => ({ step: this.#step, lr: this.#lr }),
      ),
    ];
  }
}

function checkOptions(options: TrainingGraphOptions): void {
  const cfg = validateConfig(options.config);
  const intIn = (field: string, value: number, lo: number, hi: number) => {
    if (!Number.isInteger(value) || value < lo || value > hi) {
      throw new UserError(`invalid training graph size ${field}`, {
        field,
        expected: `an integer from ${lo} to ${hi}`,
        found: String(value),
      });
    }
  };
  intIn("maxBatch", options.maxBatch, 1, 1 << 20);
  intIn("maxLength", options.maxLength, 2, cfg.maxPositions + 1);
  const o = options.optimizer;
  if (!o) return;
  const num = (field: string, value: number, ok: boolean, expected: string) => {
    if (!ok || !Number.isFinite(value)) {
      throw new UserError(`invalid optimizer setting ${field}`, {
        field: `optimizer.${field}`,
        expected,
        found: String(value),
      });
    }
  };
  num("beta1", o.beta1, o.beta1 >= 0 && o.beta1 < 1, "a number in [0, 1)");
  num("beta2", o.beta2, o.beta2 >= 0 && o.beta2 < 1, "a number in [0, 1)");
  num("eps", o.eps, o.eps > 0, "a positive number");
  num("weightDecay", o.weightDecay, o.weightDecay >= 0, "a number >= 0");
  if (o.clipNorm !== null) num("clipNorm", o.clipNorm, o.clipNorm > 0, "a positive number or null");
}

/**
 * Refuses sizes whose buffers the adapter cannot hold: every activation
 * (largest: the logits `[B*S, V]`, or the backward's joined Ffn1 and Gate
 * gradient `[B*S, 4d]`) must fit one storage binding, and the flat parameter
 * buffer one buffer. The error names the limit and what would fit.
 */
function checkLimits(gpu: Gpu, options: TrainingGraphOptions): void {
  const { config: cfg, maxBatch, maxLength } = options;
  const limits = gpu.limits;
  const binding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const S = maxLength - 1;
  // lib/model/backward.ts: the gate's backward writes [df1 | dg] rows of 4d.
  const widest = Math.max(cfg.vocabSize, 4 * cfg.hidden);
  const rowBytes = widest * F32;
  const bytes = maxBatch * S * rowBytes;
  if (bytes > binding) {
    const limitName = limits.maxStorageBufferBindingSize <= limits.maxBufferSize
      ? "maxStorageBufferBindingSize"
      : "maxBufferSize";
    const rowsFit = Math.floor(binding / rowBytes);
    const batchFit = Math.floor(rowsFit / S);
    const lengthFit = Math.floor(rowsFit / maxBatch) + 1;
    const what = widest === cfg.vocabSize
      ? `logits [B*S, V=${cfg.vocabSize}]`
      : `activation gradients [B*S, 4d=${4 * cfg.hidden}]`;
    throw new UserError(
      `the training graph's ${what} need ${bytes} bytes for batch ${maxBatch} x length ${maxLength}, over the adapter's ${limitName} of ${binding} bytes`,
      {
        field: "batch_size",
        expected: `a batch of at most ${batchFit} sequences at length ${maxLength}` +
          (lengthFit >= 2
            ? `, or sequences of at most ${lengthFit} tokens at batch ${maxBatch}`
            : ""),
        found: `batch ${maxBatch}, length ${maxLength}`,
        hint:
          "lower batch_size or max_length in the pipeline file, or use a GPU with larger limits",
      },
    );
  }
  const layout = parameterLayout(cfg);
  const paramBytes = layout.totalFloats * F32;
  if (paramBytes > limits.maxBufferSize) {
    throw new UserError(
      `the model's ${layout.totalFloats} parameter floats (${paramBytes} bytes) exceed the adapter's maxBufferSize of ${limits.maxBufferSize} bytes`,
      { field: "model", expected: "a smaller vocabulary, hidden size or layer count" },
    );
  }
  for (const e of layout.entries) {
    if (e.size * F32 > limits.maxStorageBufferBindingSize) {
      throw new UserError(
        `parameter ${e.name} (${
          e.size * F32
        } bytes) exceeds the adapter's maxStorageBufferBindingSize of ${limits.maxStorageBufferBindingSize} bytes`,
        { field: "model", expected: "a smaller vocabulary or hidden size" },
      );
    }
  }
}
