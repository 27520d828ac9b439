/**
 * SamOut as ONNX graphs, in the order docs/SAMOUT.md states the model:
 *
 * - {@link samoutOnnx}: the full sequence, `ids [batch, length]` int64 →
 *   `logits [batch, length, V]` f32, both dimensions dynamic;
 * - {@link samoutStepOnnx}: the recurrent form, one token per row with each
 *   layer's running-maximum state and the position → the logits and the new
 *   state.
 *
 * Weights are initializers under SAMOUT.md's names (`em.weight`,
 * `decoder_layers.0.ffn.ffn1.weight`, …) and shapes, so the ONNX file and the
 * safetensors file hold the same tensors.
 *
 * ONNX has no cumulative maximum. The running maximum along time is built
 * from Pad, Slice and Max by log-step doubling ({@link runningMax}); all
 * operators used are ones onnxruntime-web's WebGPU backend runs, so the whole
 * graph stays on the GPU there (tests/export_webgpu_test.ts checks the
 * session's node placement).
 *
 * @module
 */
import { type SamOutConfig, validateConfig } from "../model/config.ts";
import { parameterTable } from "../model/params.ts";
import { attr, floatTensor, type OnnxElementType, OnnxGraph } from "../onnx/mod.ts";

/** Opset of both graphs (LayerNormalization needs 17). */
export const SAMOUT_OPSET = 17;

/**
 * What the shifted-in positions of the running maximum hold: the lowest
 * finite float32. `max(x, LOWEST) = x` for every finite `x`, so it acts as
 * minus infinity; a real `-inf` would work in IEEE arithmetic too, but a
 * finite value keeps infinities out of the graph's constants, which WGSL
 * cannot even write as a literal and fast-math shader compilers may assume
 * away.
 */
export const RUNNING_MAX_FILL = -3.4028234663852886e38;

/** `TensorProto.DataType.INT32`, for Cast. */
const ONNX_INT32 = 6;

/** Names and shapes of the full model's graph input and output. */
export const FULL_IO = {
  ids: { name: "ids", type: "int64", shape: ["batch", "length"] },
  logits: { name: "logits", type: "float32", shape: ["batch", "length", "vocab"] },
} as const;

/** Names of the step model's inputs and outputs (shapes in {@link samoutStepOnnx}). */
export const STEP_IO = {
  token: "token",
  state: "state",
  position: "position",
  logits: "logits",
  newState: "new_state",
} as const;

/**
 * Doubling steps for sequences up to `maxPositions`: after steps shifting by
 * 1, 2, …, 2^(n-1), position t holds the maximum over the 2^n positions up
 * to t, so n = ceil(log2(P)) covers every length the model accepts.
 */
export function runningMaxSteps(maxPositions: number): number {
  return Math.ceil(Math.log2(Math.max(1, maxPositions)));
}

/** The weights {@link samoutOnnx} needs, checked against the parameter table. */
function addWeights(
  g: OnnxGraph,
  cfg: SamOutConfig,
  params: ReadonlyMap<string, ArrayLike<number>>,
): void {
  for (const spec of parameterTable(cfg)) {
    const data = params.get(spec.name);
    if (!data) throw new RangeError(`samout onnx: tensor ${spec.name} is missing`);
    g.initializer(floatTensor(spec.name, spec.shape, data));
  }
}

/** `x @ W^T (+ bias)` for a Linear weight stored `[out, in]` (the Transpose folds at load). */
function linear(g: OnnxGraph, x: string, weight: string, bias?: string, output?: string): string {
  const wT = g.op("Transpose", [weight], { attributes: { perm: attr.ints([1, 0]) } });
  if (!bias) return g.op("MatMul", [x, wT], { output });
  return g.op("Add", [g.op("MatMul", [x, wT]), bias], { output });
}

/**
 * `concat(p, h) @ Down^T`, computed as `p @ Down[:, :d]^T + h @ Down[:, d:]^T`:
 * the same sum, without copying `p [1, length, d]` to every row first (the Add
 * broadcasts it), so the full graph needs no Shape, Expand or Concat.
 */
function downProjection(g: OnnxGraph, l: number, d: number, p: string, h: string): string {
  const downT = g.op("Transpose", [`down.${l}.weight`], {
    attributes: { perm: attr.ints([1, 0]) },
  });
  const axis0 = g.int64s([0]);
  const downP = g.op("Slice", [downT, g.int64s([0]), g.int64s([d]), axis0]);
  const downH = g.op("Slice", [downT, g.int64s([d]), g.int64s([2 * d]), axis0]);
  return g.op("Add", [g.op("MatMul", [p, downP]), g.op("MatMul", [h, downH])], {
    output: `layer${l}.u`,
  });
}

/**
 * `m[b, t, j] = max over tau <= t of z[b, tau, j]` for `z [batch, length, d]`:
 * `m = z`, then for k = 1, 2, 4, …: `m = max(m, m shifted right by k along
 * time)`, the shift being Pad (k fill values in front) then Slice (drop the
 * last k). The step count is fixed by `maxPositions` ({@link runningMaxSteps});
 * for a short sequence the late shifts bring in only fill values.
 */
function runningMax(g: OnnxGraph, z: string, maxPositions: number, output: string): string {
  const steps = runningMaxSteps(maxPositions);
  if (steps === 0) return z; // P = 1: a single position is its own maximum
  const fill = g.floats([], [RUNNING_MAX_FILL]);
  let m = z;
  for (let i = 0; i < steps; i++) {
    const k = 2 ** i;
    // pads: [begin b, begin t, begin j, end b, end t, end j]
    const padded = g.op("Pad", [m, g.int64s([0, k, 0, 0, 0, 0]), fill], {
      attributes: { mode: attr.string("constant") },
    });
    const shifted = g.op("Slice", [padded, g.int64s([0]), g.int64s([-k]), g.int64s([1])]);
    m = g.op("Max", [m, shifted], { output: i === steps - 1 ? output : undefined });
  }
  return m;
}

/**
 * One decoder layer after the Down projection, given `u` and the mixer that
 * turns `z` into the running maximum `m` (over time for the full graph, with
 * the carried state for the step graph). Returns `h = r + u`.
 */
function decoderLayer(
  g: OnnxGraph,
  cfg: SamOutConfig,
  l: number,
  u: string,
  runningMaxOf: (z: string) => string,
): string {
  const p = `decoder_layers.${l}`;
  const name = (what: string) => `layer${l}.${what}`;
  // MaxState mixer
  const a = linear(g, u, `${p}.self_attention.head0.weight`, undefined, name("a"));
  const b = linear(g, u, `${p}.self_attention.head1.weight`, undefined, name("b"));
  const c = linear(g, u, `${p}.self_attention.head2.weight`, undefined, name("c"));
  const sqrtHs = g.floats([], [Math.sqrt(cfg.hidden / cfg.heads)]);
  const z = g.op("Div", [g.op("Add", [a, b]), sqrtHs], { output: name("z") });
  const m = runningMaxOf(z);
  const s = g.op("Add", [g.op("Mul", [g.op("Add", [m, c]), m]), b], { output: name("s") });
  // Gated feed-forward: Ffn2(Ffn1(s) * relu(Gate(s)))
  const f1 = linear(g, s, `${p}.ffn.ffn1.weight`, `${p}.ffn.ffn1.bias`);
  const gate = g.op("Relu", [linear(g, s, `${p}.ffn.gate.weight`, `${p}.ffn.gate.bias`)]);
  const f = linear(g, g.op("Mul", [f1, gate]), `${p}.ffn.ffn2.weight`, `${p}.ffn.ffn2.bias`);
  // r = LayerNorm(alpha f + (1 - alpha) u); h = r + u
  const alpha = `${p}.alpha`;
  const oneMinusAlpha = g.op("Sub", [g.floats([], [1]), alpha]);
  const mix = g.op("Add", [g.op("Mul", [alpha, f]), g.op("Mul", [oneMinusAlpha, u])]);
  const r = g.op("LayerNormalization", [mix, `${p}.layer_norm.weight`, `${p}.layer_norm.bias`], {
    attributes: { axis: attr.int(-1), epsilon: attr.float(1e-5) },
    output: name("r"),
  });
  return g.op("Add", [r, u], { output: name("h") });
}

function docString(cfg: SamOutConfig, form: string): string {
  return `SamOut (docs/SAMOUT.md) ${form}: V=${cfg.vocabSize} d=${cfg.hidden} H=${cfg.heads} ` +
    `L=${cfg.layers} P=${cfg.maxPositions}; running maximum by ${
      runningMaxSteps(cfg.maxPositions)
    } Pad/Slice/Max doubling steps`;
}

/**
 * The full model: `ids [batch, length]` int64 (0 <= id < V, length <= P) →
 * `logits [batch, length, V]` f32. Position t's logits predict token t + 1.
 */
export function samoutOnnx(
  config: SamOutConfig,
  params: ReadonlyMap<string, ArrayLike<number>>,
): Uint8Array {
  const cfg = validateConfig(config);
  const { hidden: d } = cfg;
  const g = new OnnxGraph();
  addWeights(g, cfg, params);
  const ids = g.declare(FULL_IO.ids.name);
  // 1. h = Em[x]                                               [batch, length, d]
  let h = g.op("Gather", ["em.weight", ids], { attributes: { axis: attr.int(0) }, output: "h" });
  // 2. p[t] = Pos[t] for t < length                            [1, length, d]
  //    ONNX Runtime computes values derived from Shape on the CPU, so the
  //    positions are counted on the device instead: a 1 for each token of row 0
  //    (gathered from a table of ones), summed along time exclusively.
  const onesTable = g.floats([cfg.vocabSize], new Float32Array(cfg.vocabSize).fill(1), "ones");
  const ones = g.op("Gather", [onesTable, ids], { attributes: { axis: attr.int(0) } });
  const firstRow = g.op("Slice", [ones, g.int64s([0]), g.int64s([1]), g.int64s([0])]);
  const t = g.op("CumSum", [firstRow, g.int64Scalar(1)], {
    attributes: { exclusive: attr.int(1) },
    output: "t", // [1, length] f32: 0, 1, …, length - 1 (exact below 2^24)
  });
  const positions = g.op("Cast", [t], { attributes: { to: attr.int(ONNX_INT32) } });
  const p = g.op("Gather", ["pos.weight", positions], {
    attributes: { axis: attr.int(0) },
    output: "p",
  });
  // 3. the decoder layers
  for (let l = 0; l < cfg.layers; l++) {
    const u = downProjection(g, l, d, p, h);
    h = decoderLayer(g, cfg, l, u, (z) => runningMax(g, z, cfg.maxPositions, `layer${l}.m`));
  }
  // 4. logits = h @ Head^T                                     [batch, length, V]
  linear(g, h, "head.weight", undefined, FULL_IO.logits.name);
  return g.build({
    inputs: [{ ...FULL_IO.ids, shape: [...FULL_IO.ids.shape] }],
    outputs: [{ ...FULL_IO.logits, shape: ["batch", "length", cfg.vocabSize] }],
    opset: SAMOUT_OPSET,
    graphName: "samout",
    doc: docString(cfg, "full sequence"),
  });
}

/**
 * The step model (SAMOUT.md "Recurrent (step) form"):
 * - inputs `token [batch]` int64, `state [L, batch, d]` f32 (each layer's
 *   running maximum; before the first token every value is -inf, or any
 *   value at or below {@link RUNNING_MAX_FILL}), `position [batch]` int64
 *   (the position of `token`, < P);
 * - outputs `logits [batch, V]` f32 and `new_state [L, batch, d]` f32.
 *
 * Feeding a sequence one token at a time (position 0, 1, …, passing each
 * `new_state` back as `state`) gives the full model's logits.
 */
export function samoutStepOnnx(
  config: SamOutConfig,
  params: ReadonlyMap<string, ArrayLike<number>>,
): Uint8Array {
  const cfg = validateConfig(config);
  const { hidden: d, layers: L } = cfg;
  const g = new OnnxGraph();
  addWeights(g, cfg, params);
  const token = g.declare(STEP_IO.token);
  const state = g.declare(STEP_IO.state);
  const position = g.declare(STEP_IO.position);
  const gather0 = { axis: attr.int(0) };
  // 1. h = Em[token]                                           [batch, d]
  let h = g.op("Gather", ["em.weight", token], { attributes: gather0, output: "h" });
  // 2. p = Pos[position]                                       [batch, d]
  const p = g.op("Gather", ["pos.weight", position], { attributes: gather0, output: "p" });
  // 3. the decoder layers, each carrying m = max(m, z)         [batch, d]
  const newStates: string[] = [];
  for (let l = 0; l < L; l++) {
    const u = downProjection(g, l, d, p, h);
    h = decoderLayer(g, cfg, l, u, (z) => {
      const previous = g.op("Gather", [state, g.int64Scalar(l)], { attributes: gather0 });
      const m = g.op("Max", [previous, z], { output: `layer${l}.m` });
      newStates.push(g.op("Unsqueeze", [m, g.int64s([0])]));
      return m;
    });
  }
  // 4. logits = h @ Head^T                                     [batch, V]
  linear(g, h, "head.weight", undefined, STEP_IO.logits);
  g.op("Concat", newStates, { attributes: { axis: attr.int(0) }, output: STEP_IO.newState });
  const f32: OnnxElementType = "float32";
  return g.build({
    inputs: [
      { name: token, type: "int64", shape: ["batch"] },
      { name: state, type: f32, shape: [L, "batch", d] },
      { name: position, type: "int64", shape: ["batch"] },
    ],
    outputs: [
      { name: STEP_IO.logits, type: f32, shape: ["batch", cfg.vocabSize] },
      { name: STEP_IO.newState, type: f32, shape: [L, "batch", d] },
    ],
    opset: SAMOUT_OPSET,
    graphName: "samout_step",
    doc: docString(cfg, "step form"),
  });
}
