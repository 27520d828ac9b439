/**
 * Fused softmax cross-entropy (forward and backward in one kernel) over the
 * logits of a batch, and the GPU-side **stats accumulator** that training and
 * evaluation read only every few steps.
 *
 * Stats accumulator: a small f32 buffer of `slots x 4` values,
 * `stats[slot * 4 + field]` with the fields
 *
 * | field | meaning |
 * | --- | --- |
 * | 0 `lossSum` | Σ over non-padding targets of `logsumexp(logits) - logits[target]` |
 * | 1 `correct` | targets where `argmax(logits) == target` (ties: lowest index) |
 * | 2 `count`   | non-padding targets |
 * | 3 `gradNorm`| global L2 gradient norm before clipping (written by grad_norm.ts) |
 *
 * Every kernel ADDS to its slot, so a training loop uses slot `step % slots`
 * and reads (then resets) all slots every `slots` steps, one readback for many
 * steps; an evaluation pass adds all its batches into one slot and reads the
 * token-weighted mean `lossSum / count` at the end. Counts are exact in f32 up
 * to 2^24 tokens per slot.
 *
 * @module
 */
import {
  bindBuffers,
  bufferBinding,
  type BufferSlice,
  cachedPipeline,
  createStorageBuffer,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
  readBuffer,
} from "../device.ts";
import { isSoftwareAdapter } from "../device.ts";
import { dispatchFlat, virtualWorkgroupSumWgsl } from "./elementwise.ts";
import {
  createTextureInputs,
  type InputMode,
  inputWgsl,
  textureInputMode,
} from "./texture_inputs.ts";

/** f32 values per stats slot. */
export const STATS_FIELDS = 4;

/** Field offsets inside a stats slot. */
export const STATS = { lossSum: 0, correct: 1, count: 2, gradNorm: 3 } as const;

/** One slot of the stats accumulator, as read back. */
export interface StatsSlot {
  lossSum: number;
  correct: number;
  count: number;
  gradNorm: number;
  /** `lossSum / count` (NaN when count is 0). */
  meanLoss: number;
  /** `correct / count` (NaN when count is 0). */
  accuracy: number;
}

/** Creates a zeroed stats accumulator of `slots` slots. */
export function createStatsBuffer(gpu: Gpu, slots: number, label = "stats"): GPUBuffer {
  return createStorageBuffer(gpu, slots * STATS_FIELDS * 4, label);
}

/** Reads the first `slots` slots of a stats accumulator (one ~10 ms readback). */
export async function readStats(gpu: Gpu, stats: GPUBuffer, slots: number): Promise<StatsSlot[]> {
  const v = new Float32Array(await readBuffer(gpu, stats, slots * STATS_FIELDS * 4));
  return Array.from({ length: slots }, (_, s) => {
    const o = s * STATS_FIELDS;
    const count = v[o + STATS.count];
    return {
      lossSum: v[o + STATS.lossSum],
      correct: v[o + STATS.correct],
      count,
      gradNorm: v[o + STATS.gradNorm],
      meanLoss: count > 0 ? v[o + STATS.lossSum] / count : NaN,
      accuracy: count > 0 ? v[o + STATS.correct] / count : NaN,
    };
  });
}

/** Zeroes the accumulator; ordered before the next submitted command buffer. */
export function resetStats(gpu: Gpu, stats: GPUBuffer): void {
  gpu.device.queue.writeBuffer(stats, 0, new Float32Array(stats.size / 4));
}

/** {@link readStats} then {@link resetStats}. */
export async function readAndResetStats(
  gpu: Gpu,
  stats: GPUBuffer,
  slots: number,
): Promise<StatsSlot[]> {
  const read = await readStats(gpu, stats, slots);
  resetStats(gpu, stats);
  return read;
}

/** Dimensions of one cross-entropy call. */
export interface CrossEntropyDims {
  /** Rows of this batch (B*S); at most the factory's `maxRows`. */
  N: number;
  /**
   * Non-padding targets among the N rows (known on the host): the gradient is
   * `(softmax - onehot) / count`, PyTorch's mean over `ignore_index=0`.
   */
  count: number;
  /** Stats slot to add this batch's loss, correct and count to. */
  slot: number;
}

/** Buffers and sizes of a cross-entropy step. */
export interface CrossEntropyOptions {
  /** `[N, V]` f32 logits; in "train" mode overwritten with dL/dlogits. */
  logits: GPUBuffer | BufferSlice;
  /** `[N]` i32 target ids; 0 is padding (no loss, zero gradient). */
  targets: GPUBuffer | BufferSlice;
  /** Stats accumulator from {@link createStatsBuffer}. */
  stats: GPUBuffer | BufferSlice;
  /** Vocabulary size V (columns of the logits). */
  V: number;
  /** Most rows of any batch (sizes the per-row scratch buffer). */
  maxRows: number;
  /** "train": write the gradient in place; "eval": only accumulate stats. */
  mode: "train" | "eval";
  /** Invocations per row, a power of two; default 8 on software adapters, 64 on GPUs. */
  rowWorkgroupSize?: number;
  /**
   * Where each row's `[loss, correct]` goes (`[maxRows, 2]` f32; padding rows
   * get 0, 0): a caller that reads per-position figures passes its own buffer.
   * Default: a private scratch buffer.
   */
  rowStats?: GPUBuffer;
  /** Read the logits as vec4 when V % 4 == 0 (default true; false: the scalar kernel, for tests). */
  vec4?: boolean;
  /**
   * One invocation per row ({@link rowsPerInvocationWgsl}) instead of one
   * workgroup; default on software adapters (four logits per load when
   * V % 4 == 0 and vec4, else one).
   */
  rowPerInvocation?: boolean;
  /**
   * With one invocation per row, read the logits through a texture copy when
   * the graph records the step with its command encoder (texture_inputs.ts);
   * default true. Same bits.
   */
  textureReads?: boolean;
}

const REDUCE_WG = 256;
/** Rows per dispatch column: dispatch (min(N, ROW_SPLIT), ceil(N / ROW_SPLIT)). */
const ROW_SPLIT = 32768;

const UNIFORMS = /* wgsl */ `
struct Uniforms {
  N: u32,      // rows of this batch
  V: u32,      // vocabulary size
  slot: u32,   // stats slot
  scale: f32,  // 1 / count of non-padding targets (0 when there are none)
}
@group(0) @binding(0) var<uniform> u: Uniforms;
`;

/**
 * Invocations per row: one 8-lane SIMD group on software adapters (measured
 * on llvmpipe at N=2048, V=1100: 8 lanes 49 ms, 32: 81 ms, 64: 141 ms per
 * train call, the barriers dominating), 64 on GPUs.
 */
function rowWorkgroupSize(gpu: Gpu): number {
  return isSoftwareAdapter(gpu) ? 8 : 64;
}

/**
 * Per row (one workgroup of ROW_WG invocations per row): max and argmax, Σ exp,
 * the row's loss and hit into rowStats, and in train mode the gradient in
 * place. A target outside [1, V) counts as padding (the host validates ids).
 *
 * With `vec4` (V % 4 == 0) the max and gradient passes move four logits per
 * load (on llvmpipe a vec4 storage load costs about what a scalar one does).
 * The results are those of the scalar kernel bit for bit: the max is the same
 * whatever the grouping, the argmax keeps the lowest index either way (each
 * invocation scans its indices in increasing order with a strict '>', the
 * tree breaks ties by index), and each gradient element is the same
 * expression of the same values. The Σ exp pass keeps the scalar kernel's
 * per-invocation order (t, t + ROW_WG, ...), so its sum is unchanged.
 */
function rowsWgsl(train: boolean, ROW_WG: number, vec4: boolean): string {
  const logit = (i: string) => vec4 ? `logits[(${i}) >> 2u][(${i}) & 3u]` : `logits[${i}]`;
  const maxScan = vec4
    ? `
  let base4 = base >> 2u;
  for (var q = t; q < (V >> 2u); q += ${ROW_WG}u) {
    let x4 = logits[base4 + q];
    for (var c = 0u; c < 4u; c++) {
      let x = x4[c];
      if (x > best || bestIndex == 0xffffffffu) { best = x; bestIndex = q * 4u + c; }
    }
  }`
    : `
  for (var v = t; v < V; v += ${ROW_WG}u) {
    let x = logits[base + v];
    if (x > best || bestIndex == 0xffffffffu) { best = x; bestIndex = v; }
  }`;
  const gradient = vec4
    ? `
  for (var q = t; q < (V >> 2u); q += ${ROW_WG}u) {
    let p = exp(logits[base4 + q] - vec4<f32>(rowMax)) * inv;
    let hit = vec4<i32>(i32(q * 4u)) + vec4<i32>(0, 1, 2, 3) == vec4<i32>(tgt);
    logits[base4 + q] = select(vec4<f32>(0.0), (p - select(vec4<f32>(0.0), vec4<f32>(1.0), hit)) * u.scale, valid);
  }`
    : `
  for (var v = t; v < V; v += ${ROW_WG}u) {
    let p = exp(logits[base + v] - rowMax) * inv;
    logits[base + v] = select(0.0, (p - select(0.0, 1.0, i32(v) == tgt)) * u.scale, valid);
  }`;
  return /* wgsl */ `${UNIFORMS}
@group(0) @binding(1) var<storage, read_write> logits: array<${
    vec4 ? "vec4<f32>" : "f32"
  }>;   // [N, V] -> dlogits in train mode
@group(0) @binding(2) var<storage, read> targets: array<i32>;        // [N]
@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>; // [N, 2]: loss, correct

var<workgroup> redValue: array<f32, ${ROW_WG}>;
var<workgroup> redIndex: array<u32, ${ROW_WG}>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.x + wid.y * ${ROW_SPLIT}u;
  if (row >= u.N) { return; }  // uniform across the workgroup
  let t = lid.x;
  let V = u.V;
  let base = row * V;
  let tgt = targets[row];
  let valid = tgt > 0 && u32(tgt) < V;
  let targetLogit = select(0.0, ${logit("base + u32(max(tgt, 0))")}, valid);

  // Max and argmax; each invocation scans its indices in increasing order, so a strict '>' keeps the lowest.
  var best = -3.4028235e38;
  var bestIndex = 0xffffffffu;${maxScan}
  redValue[t] = best;
  redIndex[t] = bestIndex;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      let ov = redValue[t + s];
      let oi = redIndex[t + s];
      let mi = redIndex[t];
      if (oi != 0xffffffffu && (mi == 0xffffffffu || ov > redValue[t] || (ov == redValue[t] && oi < mi))) {
        redValue[t] = ov;
        redIndex[t] = oi;
      }
    }
    workgroupBarrier();
  }
  let rowMax = redValue[0];
  let argmax = redIndex[0];
  workgroupBarrier();

  var sum = 0.0;
  for (var v = t; v < V; v += ${ROW_WG}u) { sum += exp(${logit("base + v")} - rowMax); }
  redValue[t] = sum;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { redValue[t] += redValue[t + s]; }
    workgroupBarrier();
  }
  let sumExp = redValue[0];

  if (t == 0u) {
    rowStats[row * 2u] = select(0.0, rowMax + log(sumExp) - targetLogit, valid);
    rowStats[row * 2u + 1u] = select(0.0, 1.0, valid && argmax == u32(tgt));
  }
${
    train
      ? `
  // dL/dlogits = (softmax - onehot) / count; padding rows get 0.
  let inv = 1.0 / sumExp;${gradient}`
      : ""
  }
}
`;
}

/** Rows (one per invocation) per workgroup of {@link rowsPerInvocationWgsl}. */
const ROWS_PER_WG = 64;

/**
 * The same per-row work with one invocation per row and no barrier (software
 * adapters), giving the bits of {@link rowsWgsl}`(train, ROW_WG)`: the Σ exp
 * of ROW_WG "virtual invocations" (each summing v, v + ROW_WG, … in order) is
 * held in ROW_WG / 4 vec4 accumulators and added in the workgroup's tree
 * ({@link virtualWorkgroupSumWgsl}); a scan of the whole row in increasing
 * order with a strict '>' gives the tree's max and lowest-index argmax.
 *
 * With `vec4` (V % 4 == 0) four logits per load; otherwise one (a texel's
 * component in texture mode), so rows need not start on a whole vec4, ids
 * past V adding +0 to the sums (which changes no sum of non-negative terms
 * that starts at +0).
 */
function rowsPerInvocationWgsl(
  train: boolean,
  ROW_WG: number,
  mode: InputMode,
  vec4 = true,
): string {
  const ks = Array.from({ length: ROW_WG / 4 }, (_, k) => k);
  const type = vec4 ? "vec4<f32>" : "f32";
  const form = vec4
    ? {
      helpers: "",
      row: `let V4 = V / 4u;
  let base4 = row * V4;
  let tgt = targets[row];
  let valid = tgt > 0 && u32(tgt) < V;
  let ti = u32(max(tgt, 0));
  let targetLogit = select(0.0, logitsInAt(base4 + (ti >> 2u))[ti & 3u], valid);`,
      maxScan: `for (var q = 0u; q < V4; q++) {
    let x4 = logitsInAt(base4 + q);
    for (var c = 0u; c < 4u; c++) {
      let x = x4[c];
      if (x > best || bestIndex == 0xffffffffu) { best = x; bestIndex = q * 4u + c; }
    }
  }`,
      sums: ks.map((k) => {
        const add = `a${k} += exp(logitsInAt(base4 + (v + ${4 * k}u) / 4u) - vec4<f32>(rowMax));`;
        return k === 0 ? `    ${add}` : `    if (v + ${4 * k}u < V) { ${add} }`;
      }).join("\n"),
      gradient: `for (var q = 0u; q < V4; q++) {
    let p = exp(logitsInAt(base4 + q) - vec4<f32>(rowMax)) * inv;
    let hit = vec4<i32>(i32(q * 4u)) + vec4<i32>(0, 1, 2, 3) == vec4<i32>(tgt);
    logits[base4 + q] = select(vec4<f32>(0.0), (p - select(vec4<f32>(0.0), vec4<f32>(1.0), hit)) * u.scale, valid);
  }`,
    }
    : {
      helpers: `
// exp(logit v of the row - rowMax) for v < V, +0 past the row's end.
fn expAt(base: u32, v: u32, V: u32, rowMax: f32) -> f32 {
  return select(0.0, exp(logitsInAt(base + min(v, V - 1u)) - rowMax), v < V);
}`,
      row: `let base = row * V;
  let tgt = targets[row];
  let valid = tgt > 0 && u32(tgt) < V;
  let targetLogit = select(0.0, logitsInAt(base + min(u32(max(tgt, 0)), V - 1u)), valid);`,
      maxScan: `for (var v = 0u; v < V; v++) {
    let x = logitsInAt(base + v);
    if (x > best || bestIndex == 0xffffffffu) { best = x; bestIndex = v; }
  }`,
      sums: ks.map((k) =>
        `    a${k} += vec4<f32>(${
          [0, 1, 2, 3].map((c) => `expAt(base, v + ${4 * k + c}u, V, rowMax)`).join(", ")
        });`
      ).join("\n"),
      gradient: `for (var v = 0u; v < V; v++) {
    let p = exp(logitsInAt(base + v) - rowMax) * inv;
    logits[base + v] = select(0.0, (p - select(0.0, 1.0, i32(v) == tgt)) * u.scale, valid);
  }`,
    };
  // Texture mode reads a copy of the logits (binding 4) and writes the gradient to binding 1.
  return /* wgsl */ `${UNIFORMS}
@group(0) @binding(1) var<storage, read_write> logits: array<${type}>; // [N, V] -> dlogits in train mode
@group(0) @binding(2) var<storage, read> targets: array<i32>;          // [N]
@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>;   // [N, 2]: loss, correct
${
    mode !== "storage"
      ? inputWgsl(4, "logitsIn", type, mode)
      : `fn logitsInAt(i: u32) -> ${type} { return logits[i]; }`
  }
${virtualWorkgroupSumWgsl(ROW_WG, "rowSum")}
${form.helpers}

@compute @workgroup_size(${ROWS_PER_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.y * nwg.x + wid.x) * ${ROWS_PER_WG}u + lid;
  if (row >= u.N) { return; }
  let V = u.V;
  ${form.row}

  var best = -3.4028235e38;
  var bestIndex = 0xffffffffu;
  ${form.maxScan}
  let rowMax = best;
  let argmax = bestIndex;

  ${ks.map((k) => `var a${k} = vec4<f32>(0.0);`).join(" ")}
  for (var v = 0u; v < V; v += ${ROW_WG}u) {
${form.sums}
  }
  let sumExp = rowSum(${ks.map((k) => `a${k}`).join(", ")});

  rowStats[row * 2u] = select(0.0, rowMax + log(sumExp) - targetLogit, valid);
  rowStats[row * 2u + 1u] = select(0.0, 1.0, valid && argmax == u32(tgt));
${
    train
      ? `
  // dL/dlogits = (softmax - onehot) / count; padding rows get 0.
  let inv = 1.0 / sumExp;
  ${form.gradient}`
      : ""
  }
}
`;
}

/** One workgroup adds Σ loss, Σ correct and the non-padding count to the stats slot, in row order. */
const REDUCE_WGSL = /* wgsl */ `${UNIFORMS}
@group(0) @binding(1) var<storage, read> targets: array<i32>;        // [N]
@group(0) @binding(2) var<storage, read> rowStats: array<f32>;       // [N, 2]
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;    // [slots, 4]

var<workgroup> red: array<vec3<f32>, ${REDUCE_WG}>;

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var acc = vec3<f32>(0.0);
  for (var n = t; n < u.N; n += ${REDUCE_WG}u) {
    let tgt = targets[n];
    let valid = tgt > 0 && u32(tgt) < u.V;
    acc += vec3<f32>(rowStats[n * 2u], rowStats[n * 2u + 1u], select(0.0, 1.0, valid));
  }
  red[t] = acc;
  workgroupBarrier();
  for (var s = ${REDUCE_WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let o = u.slot * ${STATS_FIELDS}u;
    stats[o + ${STATS.lossSum}u] += red[0].x;
    stats[o + ${STATS.correct}u] += red[0].y;
    stats[o + ${STATS.count}u] += red[0].z;
  }
}
`;

/**
 * Softmax cross-entropy over `logits [N, V]` against `targets [N]` (0 =
 * padding): adds the batch's loss sum, hits and count to `stats[slot]`, and in
 * "train" mode overwrites the logits with `dL/dlogits = (softmax - onehot) /
 * count` (zero rows for padding). Two dispatches: one workgroup per row, then
 * one workgroup that sums the rows in order.
 */
export function createCrossEntropy(
  gpu: Gpu,
  options: CrossEntropyOptions,
): GpuStep<CrossEntropyDims> {
  const train = options.mode === "train";
  const rowWg = options.rowWorkgroupSize ?? rowWorkgroupSize(gpu);
  const vec4 = (options.vec4 ?? true) && options.V % 4 === 0;
  const perRow = rowWg >= 4 && (options.rowPerInvocation ?? isSoftwareAdapter(gpu));
  /** The row form's WGSL: four logits per load where V allows, else one. */
  const rowForm = (mode: InputMode) => rowsPerInvocationWgsl(train, rowWg, mode, vec4);
  const rowsPipeline = cachedPipeline(
    gpu,
    `crossEntropy:rows:${options.mode}:${rowWg}:${perRow ? "rows" : ""}${vec4 ? "v4" : "s"}`,
    perRow ? rowForm("storage") : rowsWgsl(train, rowWg, vec4),
    "main",
  );
  const reducePipeline = cachedPipeline(gpu, "crossEntropy:reduce", REDUCE_WGSL, "main");
  const uniform = createUniformBuffer(gpu, 16, "crossEntropy:uniforms");
  const ownRowStats = options.rowStats === undefined;
  const rowStats = options.rowStats ??
    createStorageBuffer(gpu, options.maxRows * 2 * 4, "crossEntropy:rowStats");
  const rowsGroup = bindBuffers(
    gpu,
    rowsPipeline,
    [uniform, options.logits, options.targets, rowStats],
    "crossEntropy:rows",
  );
  const reduceGroup = bindBuffers(
    gpu,
    reducePipeline,
    [uniform, options.targets, rowStats, options.stats],
    "crossEntropy:reduce",
  );
  const data = new ArrayBuffer(16);
  const words = new Uint32Array(data);
  const floats = new Float32Array(data);
  /** Writes the uniforms; false when there is nothing to do. */
  const prepare = (dims: CrossEntropyDims): boolean => {
    if (dims.N > options.maxRows) {
      throw new Error(`crossEntropy: ${dims.N} rows exceed maxRows ${options.maxRows}`);
    }
    if (dims.N === 0) return false;
    words[0] = dims.N;
    words[1] = options.V;
    words[2] = dims.slot;
    floats[3] = dims.count > 0 ? 1 / dims.count : 0;
    gpu.device.queue.writeBuffer(uniform, 0, data);
    return true;
  };
  const encodeRows = (pass: GPUComputePassEncoder, dims: CrossEntropyDims, group: GPUBindGroup) => {
    pass.setPipeline(group === rowsGroup ? rowsPipeline : texturePipeline!);
    pass.setBindGroup(0, group);
    if (perRow) dispatchFlat(pass, Math.ceil(dims.N / ROWS_PER_WG));
    else pass.dispatchWorkgroups(Math.min(dims.N, ROW_SPLIT), Math.ceil(dims.N / ROW_SPLIT));
    pass.setPipeline(reducePipeline);
    pass.setBindGroup(0, reduceGroup);
    pass.dispatchWorkgroups(1);
  };
  // The per-row kernel reading a texture copy of the logits (texture_inputs.ts),
  // for recorders holding the command encoder.
  // Whole texels: a row of odd V ends inside one, so the buffer must reach the last texel's end.
  const elements = (N: number) => Math.ceil(N * options.V / 4);
  const logitsBytes = "buffer" in options.logits
    ? options.logits.size ?? options.logits.buffer.size - (options.logits.offset ?? 0)
    : options.logits.size;
  const texturePipeline = perRow && (options.textureReads ?? true) &&
      logitsBytes >= elements(options.maxRows) * 16
    ? cachedPipeline(
      gpu,
      `crossEntropy:rows:${options.mode}:${rowWg}:rows${vec4 ? "v4" : "s"}:texture`,
      rowForm(textureInputMode(gpu)),
      "main",
    )
    : undefined;
  const textures = texturePipeline && createTextureInputs(
    gpu,
    texturePipeline,
    "crossEntropy:rows:texture",
    [{
      source: options.logits,
      binding: 4,
      type: "vec4<f32>",
      maxTexels: elements(options.maxRows),
    }],
    [
      { binding: 0, resource: { buffer: uniform } },
      // Eval mode only reads, from the texture: the storage binding is unused.
      ...(train ? [{ binding: 1, resource: bufferBinding(options.logits) }] : []),
      { binding: 2, resource: bufferBinding(options.targets) },
      { binding: 3, resource: { buffer: rowStats } },
    ],
  );
  const step: GpuStep<CrossEntropyDims> = {
    encode(pass, dims) {
      if (prepare(dims)) encodeRows(pass, dims, rowsGroup);
    },
    destroy() {
      uniform.destroy();
      if (ownRowStats) rowStats.destroy();
    },
  };
  if (texturePipeline && textures) {
    step.encodeCommands = (enc, dims) => {
      if (!prepare(dims)) return;
      textures.copy(enc, [elements(dims.N)]);
      const pass = enc.beginComputePass({ label: "crossEntropy" });
      encodeRows(pass, dims, textures.bindGroup());
      pass.end();
    };
  }
  return step;
}
