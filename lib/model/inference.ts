/**
 * The SamOut model on the GPU without its trainer: weights, the full-sequence
 * forward pass (`forward.ts`, the same builder the training graph uses) with
 * readouts the caller chooses, and the recurrent step form. It allocates no
 * gradient or optimizer buffer.
 *
 * Readouts (each one readback):
 * - {@link SamOutInference.score}: teacher-forced `seq[:, :-1]` against
 *   `seq[:, 1:]`: the token-weighted loss and accuracy, and per position the
 *   loss and hit (0 for padding targets), so per-row and per-kind figures
 *   are sums on the host;
 * - {@link SamOutInference.logitsAt}: the logits of chosen positions only
 *   (`[n, V]`: the head runs on the gathered rows, never on all `B*S`);
 * - {@link topK} of such logits on the host.
 *
 * The step form ({@link SamOutInference.createStepper}) takes one token per
 * row and carries each layer's running maximum as state, so a new token
 * costs the same whatever the prefix length.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import type { TokenBatch } from "../data/types.ts";
import { type Gpu, type GpuStep, readBuffer } from "../gpu/device.ts";
import { createCrossEntropy, STATS, STATS_FIELDS } from "../gpu/ops/cross_entropy.ts";
import { createAdd } from "../gpu/ops/elementwise.ts";
import { createEmbeddingForward } from "../gpu/ops/embedding.ts";
import { createGatedForward } from "../gpu/ops/gated.ts";
import { createLayerNormForward } from "../gpu/ops/layer_norm.ts";
import { createMatmulNT, createOperandPack, defaultTile } from "../gpu/ops/matmul.ts";
import { createAlphaMixForward } from "../gpu/ops/alpha_mix.ts";
import {
  createGatherRows,
  createMaxStateStep,
  createPositionConcatStep,
  type StepFormDims,
} from "../gpu/ops/step.ts";
import { type SamOutConfig, validateConfig } from "./config.ts";
import { buildForward } from "./forward.ts";
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
import { forwardWeightNames, WeightPacks } from "./weight_packs.ts";

/** What the inference model is built for. */
export interface InferenceOptions {
  config: SamOutConfig;
  /** Most rows of any call. */
  maxBatch: number;
  /** Longest row in tokens (a teacher-forced batch scores `maxLength - 1` positions). */
  maxLength: number;
  /** Most positions one {@link SamOutInference.logitsAt} call reads (default maxBatch). */
  maxPicks?: number;
}

/** Teacher-forced figures of one batch. */
export interface ScoreResult {
  /** Σ cross-entropy over non-padding targets (nats). */
  lossSum: number;
  /** Targets where argmax(logits) == target (ties: lowest id). */
  correct: number;
  /** Non-padding targets. */
  tokens: number;
  /** `[rows, length - 1]`: position t's loss for target `seq[t + 1]` (0 where it is padding). */
  nll: Float32Array;
  /** `[rows, length - 1]`: 1 where argmax(logits) == target, else 0 (0 for padding). */
  hit: Uint8Array;
}

/** A position whose logits {@link SamOutInference.logitsAt} returns. */
export interface Pick {
  row: number;
  /** Position in the row (its token is the input; the logits predict the next one). */
  position: number;
}

/** Splits a teacher-forced batch into ids `seq[:, :-1]` and targets `seq[:, 1:]`, validating it. */
export function teacherForced(
  batch: TokenBatch,
  limits: { vocabSize: number; maxBatch: number; maxLength: number; what: string },
): {
  ids: Int32Array<ArrayBuffer>;
  targets: Int32Array<ArrayBuffer>;
  count: number;
  dims: StepDims;
} {
  const { rows: B, length } = batch;
  checkBatchShape(batch, limits, 2);
  const S = length - 1;
  const ids = new Int32Array(B * S);
  const targets = new Int32Array(B * S);
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < length; t++) {
      const id = batch.tokens[b * length + t];
      if (t < S) ids[b * S + t] = id;
      if (t > 0) {
        targets[b * S + t - 1] = id;
        if (id !== 0) count++;
      }
    }
  }
  return { ids, targets, count, dims: { B, S, rows: B * S } };
}

/** Checks rows, length, the token array's size and every id (UserError naming what is wrong). */
function checkBatchShape(
  batch: TokenBatch,
  limits: { vocabSize: number; maxBatch: number; maxLength: number; what: string },
  minLength: number,
): void {
  const { rows: B, length } = batch;
  const { vocabSize: V, maxBatch, maxLength, what } = limits;
  if (!Number.isInteger(B) || B < 1 || B > maxBatch) {
    throw new UserError(`a batch has ${B} rows but the ${what} was built for at most ${maxBatch}`, {
      field: "rows",
      expected: `1 to ${maxBatch} rows`,
      found: String(B),
    });
  }
  if (!Number.isInteger(length) || length < minLength || length > maxLength) {
    throw new UserError(
      `a batch has sequences of ${length} tokens but the ${what} was built for at most ${maxLength}`,
      {
        field: "length",
        expected: minLength === 2
          ? `2 to ${maxLength} tokens (input + shifted target)`
          : `${minLength} to ${maxLength} tokens`,
        found: String(length),
      },
    );
  }
  if (batch.tokens.length !== B * length) {
    throw new UserError("a batch's token array does not match rows x length", {
      field: "tokens",
      expected: `${B * length} ids`,
      found: `${batch.tokens.length} ids`,
    });
  }
  for (let i = 0; i < batch.tokens.length; i++) {
    const id = batch.tokens[i];
    if (!(id >= 0 && id < V) || !Number.isInteger(id)) {
      throw new UserError(
        `token id ${id} at batch row ${Math.floor(i / length)}, position ${
          i % length
        } is outside the model's vocabulary`,
        { field: "tokens", expected: `an integer id in [0, ${V})`, found: String(id) },
      );
    }
  }
}

/** The k highest logits of one row, best first (ties: lowest id first). */
export function topK(logits: Float32Array, k: number): { id: number; logit: number }[] {
  const ids = Array.from(logits.keys());
  ids.sort((a, b) => logits[b] - logits[a] || a - b);
  return ids.slice(0, Math.max(0, k)).map((id) => ({ id, logit: logits[id] }));
}

/** The SamOut model for inference on one device (see the module doc). */
export class SamOutInference {
  readonly config: SamOutConfig;
  readonly layout: ParameterLayout;
  readonly maxBatch: number;
  readonly maxLength: number;
  readonly maxPicks: number;
  readonly #gpu: Gpu;
  readonly #res: GraphResources;
  #params!: GPUBuffer;
  #ids!: GPUBuffer;
  #targets!: GPUBuffer;
  #logits!: GPUBuffer;
  #rowStats!: GPUBuffer;
  #stats!: GPUBuffer;
  #pickIndex!: GPUBuffer;
  #pickHidden!: GPUBuffer;
  #pickLogits!: GPUBuffer;
  #forward: Stage[] = [];
  #head!: Stage;
  #loss!: Stage;
  #gather!: GpuStep<{ n: number }>;
  #pickHead!: GpuStep<{ M: number; N: number; K: number }>;
  #weights!: WeightPacks;
  #count = 0;

  private constructor(gpu: Gpu, options: InferenceOptions) {
    this.#gpu = gpu;
    this.#res = new GraphResources(gpu, "the inference model");
    this.config = validateConfig(options.config);
    this.layout = parameterLayout(this.config);
    this.maxBatch = options.maxBatch;
    this.maxLength = options.maxLength;
    this.maxPicks = options.maxPicks ?? options.maxBatch;
  }

  /** Builds the model for `options` (UserError when it cannot fit the adapter). */
  static async create(gpu: Gpu, options: InferenceOptions): Promise<SamOutInference> {
    const cfg = validateConfig(options.config);
    const intIn = (field: string, value: number, lo: number, hi: number) => {
      if (!Number.isInteger(value) || value < lo || value > hi) {
        throw new UserError(`invalid inference model size ${field}`, {
          field,
          expected: `an integer from ${lo} to ${hi}`,
          found: String(value),
        });
      }
    };
    intIn("maxBatch", options.maxBatch, 1, 1 << 20);
    intIn("maxLength", options.maxLength, 1, cfg.maxPositions + 1);
    intIn("maxPicks", options.maxPicks ?? options.maxBatch, 1, 1 << 20);
    const rowBytes = Math.max(cfg.vocabSize, 2 * cfg.hidden) * F32;
    const binding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    if (options.maxBatch * options.maxLength * rowBytes > binding) {
      throw new UserError(
        `the inference model's activations for batch ${options.maxBatch} x length ${options.maxLength} exceed the adapter's binding limit of ${binding} bytes`,
        {
          field: "batch",
          expected: `at most ${Math.floor(binding / rowBytes / options.maxLength)} rows`,
        },
      );
    }
    const model = new SamOutInference(gpu, options);
    await buildInErrorScopes(
      gpu,
      "the inference model",
      () => model.#build(),
      () => model.destroy(),
    );
    model.#res.watchDevice();
    return model;
  }

  /** Uploads every parameter (names and sizes as params.ts; UserError naming a bad tensor). */
  uploadWeights(weights: Map<string, Float32Array>): void {
    this.#checkUsable();
    this.#gpu.device.queue.writeBuffer(this.#params, 0, packFlat(this.layout, weights, "weights"));
    this.#weights.invalidate();
  }

  /** Reads every parameter back, by name. */
  async downloadWeights(): Promise<Map<string, Float32Array>> {
    return unpackFlat(this.layout, await this.#read(this.#params, this.layout.totalFloats));
  }

  /** Teacher-forced loss and accuracy of `batch`, in total and per position (one readback). */
  async score(batch: TokenBatch): Promise<ScoreResult> {
    this.#checkUsable();
    const tf = teacherForced(batch, { ...this.#limits(), what: "inference model" });
    const q = this.#gpu.device.queue;
    q.writeBuffer(this.#ids, 0, tf.ids);
    q.writeBuffer(this.#targets, 0, tf.targets);
    q.writeBuffer(this.#stats, 0, new Float32Array(STATS_FIELDS));
    this.#count = tf.count;
    this.#submit(
      "samout.score",
      [this.#weights.stage, ...this.#forward, this.#head, this.#loss],
      tf.dims,
    );
    const [rowStats, stats] = await Promise.all([
      this.#read(this.#rowStats, tf.dims.rows * 2),
      this.#read(this.#stats, STATS_FIELDS),
    ]);
    const nll = new Float32Array(tf.dims.rows);
    const hit = new Uint8Array(tf.dims.rows);
    for (let i = 0; i < tf.dims.rows; i++) {
      nll[i] = rowStats[2 * i];
      hit[i] = rowStats[2 * i + 1] > 0 ? 1 : 0;
    }
    return {
      lossSum: stats[STATS.lossSum],
      correct: stats[STATS.correct],
      tokens: stats[STATS.count],
      nll,
      hit,
    };
  }

  /**
   * Runs `inputs` (every token is an input: position t's logits predict token
   * t + 1) and returns the logits of the `picks` only, `[picks.length, V]`.
   */
  async logitsAt(inputs: TokenBatch, picks: readonly Pick[]): Promise<Float32Array> {
    this.#checkUsable();
    checkBatchShape(inputs, { ...this.#limits(), what: "inference model" }, 1);
    const { rows: B, length: S } = inputs;
    if (picks.length < 1 || picks.length > this.maxPicks) {
      throw new RangeError(`logitsAt: ${picks.length} picks, expected 1 to ${this.maxPicks}`);
    }
    const index = new Uint32Array(picks.length);
    picks.forEach((p, i) => {
      if (!(p.row >= 0 && p.row < B && p.position >= 0 && p.position < S)) {
        throw new RangeError(`logitsAt: pick ${i} (${p.row}, ${p.position}) is outside ${B}x${S}`);
      }
      index[i] = p.row * S + p.position;
    });
    const q = this.#gpu.device.queue;
    q.writeBuffer(this.#ids, 0, new Int32Array(inputs.tokens));
    q.writeBuffer(this.#pickIndex, 0, index);
    const { hidden: d, vocabSize: V } = this.config;
    const n = picks.length;
    const gather: Stage = {
      name: "gather",
      encode: (pass) => this.#gather.encode(pass, { n }),
    };
    const head: Stage = {
      name: "head.picks",
      encode: (pass) => this.#pickHead.encode(pass, { M: n, N: V, K: d }),
    };
    this.#submit("samout.logitsAt", [this.#weights.stage, ...this.#forward, gather, head], {
      B,
      S,
      rows: B * S,
    });
    return await this.#read(this.#pickLogits, n * V);
  }

  /** A step-form runner for `rows` sequences sharing this model's weights. */
  async createStepper(rows: number): Promise<SamOutStepper> {
    this.#checkUsable();
    return await SamOutStepper.create(
      this.#gpu,
      this.config,
      this.layout,
      { params: this.#params, packs: this.#weights },
      rows,
    );
  }

  /** Destroys every GPU buffer the model created. */
  destroy(): void {
    this.#res.destroy();
  }

  #limits() {
    return {
      vocabSize: this.config.vocabSize,
      maxBatch: this.maxBatch,
      maxLength: this.maxLength,
    };
  }

  #checkUsable(): void {
    this.#res.checkUsable();
  }

  #submit(label: string, stages: Stage[], dims: StepDims): void {
    this.#res.submit(label, (enc) => recordStages(enc, label, stages, dims));
  }

  #read(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    return this.#res.readFloats(buffer, count);
  }

  #build(): void {
    const gpu = this.#gpu;
    const res = this.#res;
    const { vocabSize: V, hidden: d, layers: L } = this.config;
    const N = this.maxBatch * this.maxLength;
    this.#params = res.buffer(this.layout.totalFloats, "params");
    this.#ids = res.buffer(N, "ids");
    this.#targets = res.buffer(N, "targets");
    // Whole texels (4 floats): cross-entropy reads the logits through a texture copy.
    this.#logits = res.buffer(Math.ceil(N * V / 4) * 4, "logits");
    this.#rowStats = res.buffer(N * 2, "rowStats");
    this.#stats = res.buffer(STATS_FIELDS, "stats");
    this.#pickIndex = res.buffer(this.maxPicks, "picks.index");
    this.#pickHidden = res.buffer(this.maxPicks * d, "picks.h");
    this.#pickLogits = res.buffer(this.maxPicks * V, "picks.logits");
    const W = (name: string) => tensorSlice(this.layout, this.#params, name);
    this.#weights = new WeightPacks(
      gpu,
      this.layout,
      this.#params,
      forwardWeightNames(this.config),
    );
    res.own(this.#weights);
    const forward = buildForward(res, {
      config: this.config,
      maxRows: N,
      weight: W,
      ids: this.#ids,
      logits: null,
      weightPacks: this.#weights,
    });
    this.#forward = forward.stages;
    this.#head = res.stage(
      "head",
      createMatmulNT(gpu, {
        a: forward.h[L],
        ...this.#weights.operand("head.weight"),
        c: this.#logits,
      }),
      (s) => ({ M: s.rows, N: V, K: d }),
    );
    this.#loss = res.stage(
      "cross_entropy",
      createCrossEntropy(gpu, {
        logits: this.#logits,
        targets: this.#targets,
        stats: this.#stats,
        rowStats: this.#rowStats,
        V,
        maxRows: N,
        mode: "eval",
      }),
      (s) => ({ N: s.rows, count: this.#count, slot: 0 }),
    );
    this.#gather = res.own(createGatherRows(gpu, {
      src: forward.h[L],
      index: this.#pickIndex,
      out: this.#pickHidden,
      width: d,
      maxCount: this.maxPicks,
    }));
    this.#pickHead = res.own(createMatmulNT(gpu, {
      a: this.#pickHidden,
      ...this.#weights.operand("head.weight"),
      c: this.#pickLogits,
    }));
  }
}

/**
 * The recurrent step form for `rows` sequences that advance together: each
 * {@link step} feeds one token per row at the current position, updates
 * every layer's running maximum and leaves the logits `[rows, V]` on the GPU.
 */
export class SamOutStepper {
  readonly config: SamOutConfig;
  readonly rows: number;
  readonly #gpu: Gpu;
  readonly #res: GraphResources;
  #weights!: WeightPacks;
  #ids!: GPUBuffer;
  /** Per layer `[rows, d]` running maximum. */
  #state: GPUBuffer[] = [];
  #logits!: GPUBuffer;
  #stages: { name: string; encode(pass: GPUComputePassEncoder, dims: StepFormDims): void }[] = [];
  #position = 0;

  private constructor(gpu: Gpu, config: SamOutConfig, rows: number) {
    this.#gpu = gpu;
    this.#res = new GraphResources(gpu);
    this.config = config;
    this.rows = rows;
  }

  /**
   * Builds a stepper over the weights in `weights.params` (laid out by
   * `layout`), reading the packs its model keeps of them.
   */
  static async create(
    gpu: Gpu,
    config: SamOutConfig,
    layout: ParameterLayout,
    weights: { params: GPUBuffer; packs: WeightPacks },
    rows: number,
  ): Promise<SamOutStepper> {
    if (!Number.isInteger(rows) || rows < 1 || rows > 1 << 16) {
      throw new RangeError(`stepper rows ${rows}, expected 1 to 65536`);
    }
    const stepper = new SamOutStepper(gpu, config, rows);
    gpu.device.pushErrorScope("validation");
    try {
      stepper.#weights = weights.packs;
      stepper.#build(layout, weights.params);
    } catch (e) {
      stepper.destroy();
      await gpu.device.popErrorScope();
      throw e;
    }
    const error = await gpu.device.popErrorScope();
    if (error) {
      stepper.destroy();
      throw new Error(`building the step form failed WebGPU validation: ${error.message}`);
    }
    stepper.reset();
    return stepper;
  }

  /** Position the next {@link step} feeds (0 after {@link reset}). */
  get position(): number {
    return this.#position;
  }

  /** Starts every row afresh: running maxima at minus infinity, position 0. */
  reset(): void {
    const minusInfinity = new Float32Array(this.rows * this.config.hidden).fill(-Infinity);
    for (const m of this.#state) this.#gpu.device.queue.writeBuffer(m, 0, minusInfinity);
    this.#position = 0;
  }

  /** Enqueues one step: `ids [rows]` at the current position; no readback. */
  step(ids: Int32Array): void {
    if (this.#res.destroyed) throw new Error("the stepper was destroyed");
    if (ids.length !== this.rows) {
      throw new RangeError(`step: ${ids.length} ids for ${this.rows} rows`);
    }
    const V = this.config.vocabSize;
    for (const id of ids) {
      if (!(id >= 0 && id < V)) throw new RangeError(`step: token id ${id} outside [0, ${V})`);
    }
    const device = this.#gpu.device;
    device.queue.writeBuffer(this.#ids, 0, new Int32Array(ids));
    const enc = device.createCommandEncoder({ label: "samout.step" });
    const pass = enc.beginComputePass({ label: "samout.step" });
    this.encodeStep(pass);
    pass.end();
    device.queue.submit([enc.finish()]);
  }

  /**
   * Records one step reading the ids already in {@link idsBuffer} (for
   * example written by a sampling kernel earlier in the same pass) and
   * advances the position. The logits land in {@link logitsBuffer}.
   */
  encodeStep(pass: GPUComputePassEncoder): void {
    if (this.#res.destroyed) throw new Error("the stepper was destroyed");
    if (this.#position >= this.config.maxPositions) {
      throw new UserError(
        `the sequence reached the model's ${this.config.maxPositions} positions`,
        { field: "position", expected: `fewer than ${this.config.maxPositions} tokens` },
      );
    }
    const dims = { B: this.rows, t: this.#position };
    this.#weights.encode(pass);
    for (const s of this.#stages) s.encode(pass, dims);
    this.#position += 1;
  }

  /** The step's input ids `[rows]` i32. */
  get idsBuffer(): GPUBuffer {
    return this.#ids;
  }

  /** The last step's logits `[rows, V]` f32. */
  get logitsBuffer(): GPUBuffer {
    return this.#logits;
  }

  /** The logits of the last step, `[rows, V]` (one readback). */
  async readLogits(): Promise<Float32Array> {
    return new Float32Array(
      await readBuffer(this.#gpu, this.#logits, this.rows * this.config.vocabSize * F32),
    );
  }

  /** Every layer's running maximum, `[L, rows, d]` (one readback). */
  async readState(): Promise<Float32Array> {
    const size = this.rows * this.config.hidden;
    const out = new Float32Array(this.#state.length * size);
    for (const [l, m] of this.#state.entries()) {
      out.set(new Float32Array(await readBuffer(this.#gpu, m, size * F32)), l * size);
    }
    return out;
  }

  /** Destroys the stepper's buffers (not the model's weights). */
  destroy(): void {
    this.#res.destroy();
  }

  #build(layout: ParameterLayout, params: GPUBuffer): void {
    const gpu = this.#gpu;
    const res = this.#res;
    const { vocabSize: V, hidden: d, heads, layers: L, maxPositions: P } = this.config;
    const R = this.rows;
    const d2 = 2 * d;
    const W = (name: string) => tensorSlice(layout, params, name);
    const weight = (name: string) => this.#weights.operand(name);
    this.#ids = res.buffer(R, "step.ids");
    this.#state = Array.from({ length: L }, (_, l) => res.buffer(R * d, `step.state.${l}`));
    // Whole texels (4 floats): the sampler's row form copies the logits into a texture.
    this.#logits = res.buffer(Math.ceil(R * V / 4) * 4, "step.logits");
    const h = [res.buffer(R * d, "step.h.0"), res.buffer(R * d, "step.h.1")]; // ping-pong [R, d]
    const uin = res.buffer(R * d2, "step.concat");
    const u = res.buffer(R * d, "step.u");
    const a = res.buffer(R * d, "step.a");
    const b = res.buffer(R * d, "step.b");
    const c = res.buffer(R * d, "step.c");
    const s = res.buffer(R * d, "step.s");
    const f1 = res.buffer(R * d2, "step.ffn1");
    const g = res.buffer(R * d2, "step.gate");
    const y = res.buffer(R * d2, "step.gated");
    const f = res.buffer(R * d, "step.ffn2");
    const rin = res.buffer(R * d, "step.mix");
    const r = res.buffer(R * d, "step.ln");
    const mean = res.buffer(R, "step.ln.mean");
    const rstd = res.buffer(R, "step.ln.rstd");
    const stages = this.#stages;
    const add = <D>(name: string, step: GpuStep<D>, dims: (x: StepFormDims) => D) => {
      res.own(step);
      stages.push({ name, encode: (pass, x) => step.encode(pass, dims(x)) });
    };
    const rows = (x: StepFormDims) => ({ B: x.B, S: 1 });
    const mm = (n: number, k: number) => (x: StepFormDims) => ({ M: x.B, N: n, K: k });
    // u (head0..2's input) and s (Ffn1's and Gate's) packed once for the
    // products that read them, as the full forward does (texture-form
    // products only): fewer dispatches a step, the same texels.
    const texture = defaultTile(gpu, "NT").texture;
    const shared = (name: string, buffer: GPUBuffer, cols: number) => {
      const pack = texture ? createOperandPack(gpu, buffer, cols, name, R) : undefined;
      if (pack) add(name, pack, (x) => ({ rows: x.B }));
      return pack?.operand;
    };
    add(
      "embedding",
      createEmbeddingForward(gpu, {
        ids: this.#ids,
        table: W("em.weight"),
        out: h[0],
        V,
        d,
        maxRows: R,
      }),
      rows,
    );
    for (let l = 0; l < L; l++) {
      const p = `decoder_layers.${l}`;
      const hIn = h[l % 2], hOut = h[(l + 1) % 2];
      const state = this.#state[l];
      add(
        `concat.${l}`,
        createPositionConcatStep(gpu, { pos: W("pos.weight"), h: hIn, out: uin, d, P, maxRows: R }),
        (x) => x,
      );
      add(
        `down.${l}`,
        createMatmulNT(gpu, { a: uin, ...weight(`down.${l}.weight`), c: u }),
        mm(d, d2),
      );
      const uIn = shared(`pack.u.${l}`, u, d);
      add(
        `head0.${l}`,
        createMatmulNT(gpu, {
          a: u,
          packedA: uIn,
          ...weight(`${p}.self_attention.head0.weight`),
          c: a,
        }),
        mm(d, d),
      );
      add(
        `head1.${l}`,
        createMatmulNT(gpu, {
          a: u,
          packedA: uIn,
          ...weight(`${p}.self_attention.head1.weight`),
          c: b,
        }),
        mm(d, d),
      );
      add(
        `head2.${l}`,
        createMatmulNT(gpu, {
          a: u,
          packedA: uIn,
          ...weight(`${p}.self_attention.head2.weight`),
          c,
        }),
        mm(d, d),
      );
      add(
        `max_state.${l}`,
        createMaxStateStep(gpu, { a, b, c, state, s, d, heads, maxRows: R }),
        (x) => x,
      );
      const sIn = shared(`pack.s.${l}`, s, d);
      add(
        `ffn1.${l}`,
        createMatmulNT(gpu, {
          a: s,
          packedA: sIn,
          ...weight(`${p}.ffn.ffn1.weight`),
          bias: W(`${p}.ffn.ffn1.bias`),
          c: f1,
        }),
        mm(d2, d),
      );
      add(
        `gate.${l}`,
        createMatmulNT(gpu, {
          a: s,
          packedA: sIn,
          ...weight(`${p}.ffn.gate.weight`),
          bias: W(`${p}.ffn.gate.bias`),
          c: g,
        }),
        mm(d2, d),
      );
      add(`gated.${l}`, createGatedForward(gpu, { f1, g, y, width: d2, maxRows: R }), rows);
      add(
        `ffn2.${l}`,
        createMatmulNT(gpu, {
          a: y,
          ...weight(`${p}.ffn.ffn2.weight`),
          bias: W(`${p}.ffn.ffn2.bias`),
          c: f,
        }),
        mm(d, d2),
      );
      add(
        `alpha_mix.${l}`,
        createAlphaMixForward(gpu, { f, u, alpha: W(`${p}.alpha`), y: rin, d, maxRows: R }),
        rows,
      );
      add(
        `layer_norm.${l}`,
        createLayerNormForward(gpu, {
          x: rin,
          gamma: W(`${p}.layer_norm.weight`),
          beta: W(`${p}.layer_norm.bias`),
          y: r,
          mean,
          rstd,
          d,
          maxRows: R,
        }),
        rows,
      );
      add(
        `residual.${l}`,
        createAdd(gpu, { a: r, b: u, out: hOut, maxCount: R * d }),
        (x) => ({ count: x.B * d }),
      );
    }
    add(
      "head",
      createMatmulNT(gpu, { a: h[L % 2], ...weight("head.weight"), c: this.#logits }),
      mm(V, d),
    );
  }
}
