/**
 * Sampling the next token on the GPU, one workgroup per row, so generation
 * reads nothing back per token: greedy, or temperature with top-k and top-p,
 * driven by a counter-based generator (a hash of seed, row and step), so the
 * same seed gives the same tokens on every run.
 *
 * Per row, from `logits [R, V]`:
 * 1. ids 0 (padding) and 1 (`<|im_start|>`) are never sampled;
 * 2. greedy: the arg-max (lowest id on ties);
 * 3. else `x = logits / T`; top-k keeps `x >= t_k`, the largest threshold
 *    with at least k ids at or above it (found by bisection: ties at the k-th
 *    value are all kept); top-p keeps `e = exp(x - max) >= q`, the largest
 *    threshold whose kept mass is at least p of the (top-k) total;
 * 4. the token is the first id, in id order, where the running sum of the
 *    kept `e` passes `u * total` (u uniform in [0, 1) from the generator).
 *
 * Then `out[r, pos] = token`, `next[r] = token`, and a row that emits
 * `<|im_end|>` is done: afterwards it emits 0 (padding) and feeds 0.
 *
 * Every reduction is a fixed binary tree in workgroup memory (deterministic).
 *
 * On software adapters the same sums run with one invocation per row and no
 * barrier ({@link createSampleStep}'s `encodeCommands`): the 64 invocations'
 * partial sums are kept in registers and added in the workgroup's tree, so
 * the tokens are the same, bit for bit. llvmpipe runs every storage-buffer
 * load lane by lane and every barrier as a switch between the workgroup's
 * SIMD groups; with the logits read from a texture copy instead, a step of
 * 224 rows (the default evaluate's generation) went from about 70 ms to a few.
 *
 * @module
 */
import {
  bindBuffers,
  cachedPipeline,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import { virtualWorkgroupSumWgsl } from "./elementwise.ts";
import {
  createInputTexture,
  encodeInputCopy,
  inputWgsl,
  textureInputFits,
} from "./texture_inputs.ts";

/** Sampling settings of a generation. */
export interface SamplingSettings {
  /** 0: greedy (arg-max). */
  temperature: number;
  /** 0: no top-k. */
  topK: number;
  /** 1: no top-p. */
  topP: number;
  /** Seed of the counter-based generator (a u32). */
  seed: number;
}

/** Dims of one sampling dispatch. */
export interface SampleDims {
  /** Rows. */
  R: number;
  /** Position in `out` to write (0-based). */
  pos: number;
  /** Generation step (the generator's counter). */
  step: number;
}

const WG = 64;
const BISECT_STEPS = 32;

/** WGSL: `uniformOf(seed, row, step)`, a uniform f32 in [0, 1) (24 bits). */
export const COUNTER_RNG_WGSL = /* wgsl */ `
fn pcgHash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn uniformOf(seed: u32, row: u32, step: u32) -> f32 {
  let h = pcgHash(pcgHash(pcgHash(seed) ^ row) ^ step);
  return f32(h >> 8u) * (1.0 / 16777216.0);
}
`;

/** The uniforms of both forms (48 bytes; the workgroup form does not read `R`). */
const UNIFORMS_WGSL = /* wgsl */ `
struct Uniforms {
  V: u32,
  pos: u32,
  step: u32,
  seed: u32,
  temperature: f32,  // 0: greedy
  topK: u32,         // 0: off
  topP: f32,         // >= 1: off
  maxLen: u32,       // columns of out
  endId: u32,
  R: u32,            // rows (the row form's dispatch covers whole workgroups)
}
@group(0) @binding(0) var<uniform> u: Uniforms;`;

/**
 * WGSL of both forms (each defines `u`, `NEG`, `logitAt` and the outTokens,
 * nextIds and done bindings): `emit`, which writes a row's token; `valueOf`,
 * the value sampling compares (the logit over the temperature; never ids 0
 * and 1); and `pickToken`, the sampled id: the first kept id in id order where
 * the running sum of the kept `exp(x - rowMax)` passes `goal`, else the last
 * kept id.
 */
const SHARED_WGSL = /* wgsl */ `
// The row's token (0 once it is done) into out and the next step's input;
// <|im_end|> marks the row done.
fn emit(row: u32, chosen: u32, isDone: bool) {
  var token = chosen;
  if (isDone) { token = 0u; }
  outTokens[row * u.maxLen + u.pos] = token;
  nextIds[row] = i32(token);
  if (token == u.endId) { done[row] = 1u; }
}

fn valueOf(base: u32, v: u32) -> f32 {
  if (v < 2u) { return NEG; }  // padding and <|im_start|> are never sampled
  let x = logitAt(base + v);
  if (u.temperature > 0.0) { return x / u.temperature; }
  return x;
}

fn pickToken(base: u32, rowMax: f32, kThreshold: f32, pThreshold: f32, goal: f32, argmax: u32) -> u32 {
  var acc = 0.0;
  var pick = argmax;
  var last = argmax;
  var found = false;
  for (var v = 2u; v < u.V; v++) {
    let x = valueOf(base, v);
    let e = exp(x - rowMax);
    if (x >= kThreshold && e >= pThreshold) {
      last = v;
      acc += e;
      if (!found && acc > goal) { pick = v; found = true; }
    }
  }
  return select(last, pick, found);
}
`;

/** The same generator on the host (tests and the CPU backend): a uniform in [0, 1). */
export function uniformOf(seed: number, row: number, step: number): number {
  const pcg = (x: number) => {
    const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
    const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
    return ((word >>> 22) ^ word) >>> 0;
  };
  const h = pcg((pcg((pcg(seed >>> 0) ^ row) >>> 0) ^ step) >>> 0);
  return (h >>> 8) / 16777216;
}

/**
 * The workgroup form's WGSL; with `figures`, each row's rowMax, top-k mass,
 * top-p threshold and kept mass also go to `figures [R, 4]` (binding 5; tests).
 */
function sampleWgsl(figures: boolean): string {
  return /* wgsl */ `
${UNIFORMS_WGSL}
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // read, [R, V]
@group(0) @binding(2) var<storage, read_write> outTokens: array<u32>;  // [R, maxLen]
@group(0) @binding(3) var<storage, read_write> nextIds: array<i32>;    // [R]
@group(0) @binding(4) var<storage, read_write> done: array<u32>;       // [R]
${FIGURES_DECL(figures, 5)}

${COUNTER_RNG_WGSL}

var<workgroup> redF: array<f32, ${WG}>;
var<workgroup> redI: array<u32, ${WG}>;
var<workgroup> chosen: u32;

const NEG = -3.4028235e38;

fn logitAt(i: u32) -> f32 { return logits[i]; }
${SHARED_WGSL}
fn sumAll(t: u32, value: f32) -> f32 {
  redF[t] = value;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { redF[t] = redF[t] + redF[t + s]; }
    workgroupBarrier();
  }
  let total = redF[0];
  workgroupBarrier();
  return total;
}

fn maxAll(t: u32, value: f32) -> f32 {
  redF[t] = value;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { redF[t] = max(redF[t], redF[t + s]); }
    workgroupBarrier();
  }
  let total = redF[0];
  workgroupBarrier();
  return total;
}

fn minAll(t: u32, value: f32) -> f32 {
  redF[t] = value;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { redF[t] = min(redF[t], redF[t + s]); }
    workgroupBarrier();
  }
  let total = redF[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.x;
  let t = lid.x;
  let V = u.V;
  let base = row * V;
  let isDone = done[row] != 0u;  // uniform across the workgroup

  // Max (and arg-max, lowest id on ties) of the values.
  var best = NEG;
  var bestId = 0xffffffffu;
  for (var v = t; v < V; v += ${WG}u) {
    let x = valueOf(base, v);
    if (v >= 2u && (bestId == 0xffffffffu || x > best)) { best = x; bestId = v; }
  }
  redF[t] = best;
  redI[t] = bestId;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      let ov = redF[t + s];
      let oi = redI[t + s];
      let mi = redI[t];
      if (oi != 0xffffffffu && (mi == 0xffffffffu || ov > redF[t] || (ov == redF[t] && oi < mi))) {
        redF[t] = ov;
        redI[t] = oi;
      }
    }
    workgroupBarrier();
  }
  let rowMax = redF[0];
  let argmax = redI[0];
  workgroupBarrier();

  if (t == 0u) { chosen = argmax; }
  var figures = vec4<f32>(rowMax, 0.0, 0.0, 0.0);
  if (u.temperature > 0.0) {
    // Top-k: the largest threshold with at least k values at or above it.
    var kThreshold = NEG;
    if (u.topK > 0u && u.topK < V - 2u) {
      var localMin = -NEG;
      for (var v = t; v < V; v += ${WG}u) {
        if (v >= 2u) { localMin = min(localMin, valueOf(base, v)); }
      }
      var lo = minAll(t, localMin);
      var hi = rowMax;
      for (var i = 0u; i < ${BISECT_STEPS}u; i++) {
        let mid = lo + (hi - lo) * 0.5;
        var count = 0.0;
        for (var v = t; v < V; v += ${WG}u) {
          if (v >= 2u && valueOf(base, v) >= mid) { count += 1.0; }
        }
        if (sumAll(t, count) >= f32(u.topK)) { lo = mid; } else { hi = mid; }
      }
      kThreshold = lo;
    }
    // Mass kept by top-k.
    var local = 0.0;
    for (var v = t; v < V; v += ${WG}u) {
      let x = valueOf(base, v);
      if (v >= 2u && x >= kThreshold) { local += exp(x - rowMax); }
    }
    let kMass = sumAll(t, local);
    // Top-p: the largest probability threshold whose kept mass is >= p of kMass.
    var pThreshold = 0.0;
    if (u.topP < 1.0) {
      var lo = 0.0;
      var hi = 1.0;
      for (var i = 0u; i < ${BISECT_STEPS}u; i++) {
        let mid = lo + (hi - lo) * 0.5;
        var mass = 0.0;
        for (var v = t; v < V; v += ${WG}u) {
          let x = valueOf(base, v);
          let e = exp(x - rowMax);
          if (v >= 2u && x >= kThreshold && e >= mid) { mass += e; }
        }
        if (sumAll(t, mass) >= u.topP * kMass) { lo = mid; } else { hi = mid; }
      }
      pThreshold = lo;
    }
    var keptLocal = 0.0;
    for (var v = t; v < V; v += ${WG}u) {
      let x = valueOf(base, v);
      let e = exp(x - rowMax);
      if (v >= 2u && x >= kThreshold && e >= pThreshold) { keptLocal += e; }
    }
    let kept = sumAll(t, keptLocal);
    figures = vec4<f32>(rowMax, kMass, pThreshold, kept);
    if (t == 0u) {
      let goal = uniformOf(u.seed, row, u.step) * kept;
      chosen = pickToken(base, rowMax, kThreshold, pThreshold, goal, argmax);
    }
  }
  workgroupBarrier();
  if (t == 0u) {
    emit(row, chosen, isDone);
    ${figures ? "figuresOut[row] = figures;" : ""}
  }
}
`;
}

/** WGSL declaring the test output of each row's figures at `binding`, when asked for. */
function FIGURES_DECL(figures: boolean, binding: number): string {
  return figures
    ? `@group(0) @binding(${binding}) var<storage, read_write> figuresOut: array<vec4<f32>>; // [R]`
    : "";
}

/** Rows per workgroup of the row form: one 8-lane SIMD group on llvmpipe. */
const ROW_FORM_WG = 8;

/**
 * The same sampling with one invocation per row (software adapters), the
 * logits read from a texture copy (`logitsIn`, binding 5). Every figure the
 * workgroup kernel reduces is computed here from the same values in the same
 * order: max and arg-max and the top-k minimum by a scan in id order (a
 * maximum, a minimum and the lowest id among tied maxima do not depend on the
 * grouping), the top-k counts as sums of ones (exact in any order), and each
 * sum of `exp` over the WG invocations' strided ranges (invocation t adds ids
 * t, t + WG, …) in 16 vec4 accumulators, one lane per invocation, added in
 * the workgroup's tree (`rowSum`). Terms left out are added as +0, which
 * changes no sum of non-negative terms that starts at +0.
 */
function sampleRowsWgsl(figures: boolean): string {
  return /* wgsl */ `
${UNIFORMS_WGSL}
@group(0) @binding(2) var<storage, read_write> outTokens: array<u32>;  // [R, maxLen]
@group(0) @binding(3) var<storage, read_write> nextIds: array<i32>;    // [R]
@group(0) @binding(4) var<storage, read_write> done: array<u32>;       // [R]
${inputWgsl(5, "logitsIn", "f32", "image")}
${FIGURES_DECL(figures, 6)}

${COUNTER_RNG_WGSL}

${virtualWorkgroupSumWgsl(WG, "rowSum")}

const NEG = -3.4028235e38;

fn logitAt(i: u32) -> f32 { return logitsInAt(i); }
${SHARED_WGSL}
// exp(x - rowMax) of id v when it is kept (v in [2, V), x >= kThreshold and
// exp >= pThreshold), else +0. Ids past V read the last one (and count +0).
fn keptExp(base: u32, v: u32, rowMax: f32, kThreshold: f32, pThreshold: f32) -> f32 {
  let V = u.V;
  let x = valueOf(base, min(v, V - 1u));
  let e = exp(x - rowMax);
  return select(0.0, e, v >= 2u && v < V && x >= kThreshold && e >= pThreshold);
}

// The workgroup kernel's sumAll of its invocations' keptExp sums.
fn keptMass(base: u32, rowMax: f32, kThreshold: f32, pThreshold: f32) -> f32 {
${Array.from({ length: WG / 4 }, (_, k) => `  var a${k} = vec4<f32>(0.0);`).join("\n")}
  for (var v0 = 0u; v0 < u.V; v0 += ${WG}u) {
${
    Array.from({ length: WG / 4 }, (_, k) =>
      `    a${k} += vec4<f32>(${
        [0, 1, 2, 3].map((c) =>
          `keptExp(base, v0 + ${4 * k + c}u, rowMax, kThreshold, pThreshold)`
        )
          .join(", ")
      });`).join("\n")
  }
  }
  return rowSum(${Array.from({ length: WG / 4 }, (_, k) => `a${k}`).join(", ")});
}

@compute @workgroup_size(${ROW_FORM_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x;
  if (row >= u.R) { return; }
  let V = u.V;
  let base = row * V;
  let isDone = done[row] != 0u;

  // Max and arg-max (lowest id on ties).
  var rowMax = NEG;
  var argmax = 0xffffffffu;
  for (var v = 2u; v < V; v++) {
    let x = valueOf(base, v);
    if (argmax == 0xffffffffu || x > rowMax) { rowMax = x; argmax = v; }
  }
  var chosen = argmax;
  var figures = vec4<f32>(rowMax, 0.0, 0.0, 0.0);
  if (u.temperature > 0.0) {
    // Top-k: the largest threshold with at least k values at or above it.
    var kThreshold = NEG;
    if (u.topK > 0u && u.topK < V - 2u) {
      var lo = -NEG;
      for (var v = 2u; v < V; v++) { lo = min(lo, valueOf(base, v)); }
      var hi = rowMax;
      for (var i = 0u; i < ${BISECT_STEPS}u; i++) {
        let mid = lo + (hi - lo) * 0.5;
        var count = 0.0;
        for (var v = 2u; v < V; v++) {
          if (valueOf(base, v) >= mid) { count += 1.0; }
        }
        if (count >= f32(u.topK)) { lo = mid; } else { hi = mid; }
      }
      kThreshold = lo;
    }
    // The kept masses the workgroup form sums in turn, through one call site
    // (each call inlines 64 exp terms): pass 0 the top-k mass (every p), passes
    // 1 … ${BISECT_STEPS} top-p's bisection (when on), the last the kept mass.
    let bisect = u.topP < 1.0;
    let lastPass = select(1u, ${BISECT_STEPS + 1}u, bisect);
    var kMass = 0.0;
    var lo = 0.0;
    var hi = 1.0;
    var kept = 0.0;
    for (var i = 0u; i <= lastPass; i++) {
      let mid = lo + (hi - lo) * 0.5;
      var threshold = mid;
      if (i == 0u) { threshold = 0.0; }
      if (i == lastPass) { threshold = select(0.0, lo, bisect); }
      let mass = keptMass(base, rowMax, kThreshold, threshold);
      if (i == 0u) {
        kMass = mass;
      } else if (i < lastPass) {
        // Top-p: the largest probability threshold whose kept mass is >= p of kMass.
        if (mass >= u.topP * kMass) { lo = mid; } else { hi = mid; }
      } else {
        kept = mass;
      }
    }
    let pThreshold = select(0.0, lo, bisect);
    figures = vec4<f32>(rowMax, kMass, pThreshold, kept);
    let goal = uniformOf(u.seed, row, u.step) * kept;
    chosen = pickToken(base, rowMax, kThreshold, pThreshold, goal, argmax);
  }
  emit(row, chosen, isDone);
  ${figures ? "figuresOut[row] = figures;" : ""}
}
`;
}

/** Buffers of a sampling step. */
export interface SampleBuffers {
  /** `[R, V]` f32. */
  logits: GPUBuffer;
  /** `[R, maxLen]` u32 generated tokens. */
  out: GPUBuffer;
  /** `[R]` i32: the sampled token, the next step's input. */
  next: GPUBuffer;
  /** `[R]` u32: 1 once a row emitted `<|im_end|>`. */
  done: GPUBuffer;
  V: number;
  maxLen: number;
  endId: number;
  settings: SamplingSettings;
}

/** Options of {@link createSampleStep}. */
export interface SampleOptions {
  /**
   * Give the step the row form (`encodeCommands`: a copy of the logits into a
   * texture, then one invocation per row). Default: on software adapters,
   * when the logits fit a texture. `encode` (a pass only) always records the
   * workgroup form; both give the same tokens.
   */
  rowForm?: boolean;
  /** Tests: each row's rowMax, top-k mass, top-p threshold and kept mass, `[R, 4]` f32. */
  figures?: GPUBuffer;
}

/** Texels of the logits' texture copy, `[R, V]` floats four to a texel. */
function logitTexels(R: number, V: number): number {
  return Math.ceil(R * V / 4);
}

/**
 * One sampling dispatch per row (see the module doc). `encode` records the
 * workgroup form; on software adapters the step also has `encodeCommands`,
 * the row form (for `maxRows` rows at most), which needs the logits buffer
 * to hold whole texels (`ceil(R V / 4) * 16` bytes).
 */
export function createSampleStep(
  gpu: Gpu,
  b: SampleBuffers & { maxRows?: number },
  opts: SampleOptions = {},
): GpuStep<SampleDims> {
  const fig = opts.figures !== undefined;
  const pipeline = cachedPipeline(gpu, `sample${fig ? ".figures" : ""}`, sampleWgsl(fig), "main");
  const uniform = createUniformBuffer(gpu, 48, "sample:uniforms");
  const group = bindBuffers(
    gpu,
    pipeline,
    [uniform, b.logits, b.out, b.next, b.done, ...(opts.figures ? [opts.figures] : [])],
    "sample",
  );
  const data = new ArrayBuffer(48);
  const words = new Uint32Array(data);
  const floats = new Float32Array(data);
  const s = b.settings;
  const write = (dims: SampleDims) => {
    words[0] = b.V;
    words[1] = dims.pos;
    words[2] = dims.step;
    words[3] = s.seed >>> 0;
    floats[4] = s.temperature;
    words[5] = s.topK;
    floats[6] = s.topP;
    words[7] = b.maxLen;
    words[8] = b.endId;
    words[9] = dims.R;
    gpu.device.queue.writeBuffer(uniform, 0, data);
  };
  const maxRows = b.maxRows ?? Math.floor(b.logits.size / (4 * b.V));
  const texels = logitTexels(maxRows, b.V);
  const rowForm = (opts.rowForm ?? isSoftwareAdapter(gpu)) && maxRows > 0 &&
    textureInputFits(gpu, texels) && b.logits.size >= texels * 16;
  let texture: GPUTexture | undefined;
  let rowsGroup: GPUBindGroup | undefined;
  let rowsPipeline: GPUComputePipeline | undefined;
  if (rowForm) {
    rowsPipeline = cachedPipeline(
      gpu,
      `sample.rows${fig ? ".figures" : ""}`,
      sampleRowsWgsl(fig),
      "main",
    );
    texture = createInputTexture(gpu, texels, "sample:logits");
    rowsGroup = gpu.device.createBindGroup({
      label: "sample.rows",
      layout: rowsPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 2, resource: { buffer: b.out } },
        { binding: 3, resource: { buffer: b.next } },
        { binding: 4, resource: { buffer: b.done } },
        { binding: 5, resource: texture.createView() },
        ...(opts.figures ? [{ binding: 6, resource: { buffer: opts.figures } }] : []),
      ],
    });
  }
  const step: GpuStep<SampleDims> = {
    encode(pass, dims) {
      write(dims);
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(dims.R);
    },
    destroy() {
      uniform.destroy();
      texture?.destroy();
    },
  };
  if (rowForm) {
    step.encodeCommands = (enc, dims) => {
      if (dims.R > maxRows) {
        throw new RangeError(`sample: ${dims.R} rows, the step was made for ${maxRows}`);
      }
      write(dims);
      encodeInputCopy(enc, b.logits, texture!, logitTexels(dims.R, b.V));
      const pass = enc.beginComputePass({ label: "sample.rows" });
      pass.setPipeline(rowsPipeline!);
      pass.setBindGroup(0, rowsGroup!);
      pass.dispatchWorkgroups(Math.ceil(dims.R / ROW_FORM_WG));
      pass.end();
    };
  }
  return step;
}
