/**
 * SamOut's backward pass on the GPU: the forward (`forward.ts`) walked back,
 * head first, then the layers from the last to the first, then the
 * embedding. Each stage's gradient kernel sits beside the op it inverts in
 * `lib/gpu/ops/`. Activation gradients are overwritten; parameter gradients
 * are written into one flat gradient buffer, several of them ADDED to (em,
 * pos, LayerNorm, the weight-gradient row blocks), so a step clears that
 * buffer before the pass.
 *
 * The input is dL/dlogits `[N, V]` (the fused cross-entropy writes it in
 * place of the logits).
 *
 * Products that share an input and add into one gradient run joined: head0..2
 * as one input-gradient product of reduction 3d over `[da | db | dc]` rows and
 * their three weights stacked `[3d, d]`, Ffn1 and Gate as one of reduction 4d
 * over `[df1 | dg]` rows (the widest activation buffer, `[N, 4d]`), each with
 * one weight-gradient product (and one bias column sum) for the stack
 * ({@link stackedTensors}). The same sums in another fixed order.
 *
 * @module
 */
import type { BufferSlice, GpuStep } from "../gpu/device.ts";
import { createAlphaMixBackward } from "../gpu/ops/alpha_mix.ts";
import { createColumnSum } from "../gpu/ops/column_sum.ts";
import { createEmbeddingBackward } from "../gpu/ops/embedding.ts";
import type { EmbeddingGradientPlan } from "../gpu/ops/embedding_plan.ts";
import { createGatedBackward } from "../gpu/ops/gated.ts";
import { createLayerNormBackward } from "../gpu/ops/layer_norm.ts";
import {
  createMatmulNN,
  createMatmulTN,
  createOperandPack,
  type MatmulDims,
  type MatmulTile,
  type MatmulTiles,
  type OperandPack,
  type PackedOperand,
} from "../gpu/ops/matmul.ts";
import { createMaxStateBackward } from "../gpu/ops/max_state.ts";
import { createBatchSum, createDownMerge } from "../gpu/ops/position.ts";
import type { SamOutConfig } from "./config.ts";
import { type Forward, resolveTiles } from "./forward.ts";
import type { ParameterLayout } from "./layout.ts";
import { type GraphResources, type Stage, type StepDims, tensorSlice } from "./resources.ts";

/**
 * Rows per block of the weight-gradient products (a multiple of 64, so every
 * block's byte offset is 256-byte aligned).
 */
export const WEIGHT_GRAD_ROWS = 512;

/** What the backward pass reads and writes. */
export interface BackwardOptions {
  config: SamOutConfig;
  layout: ParameterLayout;
  /** Largest B*S it will be encoded with. */
  maxRows: number;
  /** The forward pass whose activations it reads. */
  forward: Forward;
  /** Slices of the parameter and gradient buffers by tensor name. */
  weight: (name: string) => BufferSlice;
  grad: (name: string) => BufferSlice;
  /** The flat gradient buffer. */
  grads: GPUBuffer;
  /** dL/dlogits `[N, V]`. */
  dLogits: GPUBuffer;
  /** The embedding-gradient plan of the batch being encoded. */
  plan: () => EmbeddingGradientPlan;
  /** The matrix-product kernels to run (default: the adapter's defaults). */
  tiles?: Partial<MatmulTiles>;
}

/** Builds the backward pass into `res` (see the module doc). */
export function buildBackward(res: GraphResources, o: BackwardOptions): Stage[] {
  const gpu = res.gpu;
  // Scratch buffers of stackedTensors by size, shared by the layers.
  const scratch = new Map<string, GPUBuffer>();
  const stack = (names: string[], floats: number, label: string, withWeights = true) =>
    stackedTensors(res, o, scratch, names, floats, label, withWeights);
  const tiles = resolveTiles(gpu, o.tiles);
  const NN = (b: Parameters<typeof createMatmulNN>[1]) => createMatmulNN(gpu, b, tiles.NN);
  // With texture-form products, each output gradient is packed once, after
  // it is written, for its input-gradient (NN) and weight-gradient (TN)
  // products; the weight gradients read the layer inputs the forward packed.
  // One pack per gradient buffer, encoded once per layer with the same sizes.
  const packing = tiles.NN.texture || tiles.TN.texture;
  const packs = new Map<GPUBuffer, OperandPack | undefined>();
  const pack = (buf: GPUBuffer, cols: number, name: string): [Stage[], PackedOperand?] => {
    if (!packing) return [[]];
    let step = packs.get(buf);
    if (!packs.has(buf)) {
      step = createOperandPack(gpu, buf, cols, `pack.${name}`, o.maxRows);
      if (step) res.own(step);
      packs.set(buf, step);
    }
    if (!step) return [[]];
    const shared = step;
    const stage: Stage = {
      name: `pack.${name}`,
      encode: (pass, s) => shared.encode(pass, { rows: s.rows }),
    };
    const copy = shared.encodeCommands?.bind(shared);
    if (copy) stage.commands = (enc, s) => copy(enc, { rows: s.rows });
    return [[stage], shared.operand];
  };
  const fwd = o.forward.packs;
  const WG = (
    dY: GPUBuffer,
    x: GPUBuffer,
    name: string,
    dYPack?: PackedOperand,
    xPack?: PackedOperand,
  ) => weightGradient(res, tiles.TN, dY, x, tensorSlice(o.layout, o.grads, name), dYPack, xPack);
  const { vocabSize: V, hidden: d, heads, layers: L, maxPositions: P } = o.config;
  const N = o.maxRows;
  const d2 = 2 * d;
  const W = o.weight;
  const G = o.grad;
  const h = o.forward.h;
  const layer = o.forward.layers;
  const batch = (s: StepDims) => ({ B: s.B, S: s.S });
  const mm = (n: number, k: number) => (s: StepDims) => ({ M: s.rows, N: n, K: k });
  const dh = [res.buffer(N * d, "grad.h.0"), res.buffer(N * d, "grad.h.1")]; // [N, d]
  const drin = res.buffer(N * d, "grad.mix"); // [N, d]
  const du = res.buffer(N * d, "grad.u"); // [N, d]
  const df = res.buffer(N * d, "grad.ffn2"); // [N, d]
  const dy = res.buffer(N * d2, "grad.gated"); // [N, 2d]
  const dfg = res.buffer(N * 2 * d2, "grad.ffn1_gate"); // [N, 4d]: rows [df1 | dg]
  const ds = res.buffer(N * d, "grad.s"); // [N, d]
  const dabc = res.buffer(N * 3 * d, "grad.abc"); // [N, 3d]: rows [da | db | dc]
  const duSum = res.buffer(Math.min(P, N) * d, "grad.u.batch_sum"); // [S, d]
  const dDownP = res.buffer(d * d, "grad.down.position"); // [d, d]
  const dDownH = res.buffer(d * d, "grad.down.hidden"); // [d, d]

  const bwd: Stage[] = [];
  // Several kernels ADD into their gradient (em, pos, LayerNorm): the step
  // clears the whole gradient buffer before the pass (see #encode).
  const [packLogits, dLogits] = pack(o.dLogits, V, "dlogits");
  bwd.push(
    ...packLogits,
    res.stage(
      "head.dx",
      NN({ a: o.dLogits, packedA: dLogits, b: W("head.weight"), c: dh[L % 2] }),
      mm(V, d),
    ),
    res.stage(
      "head.dw",
      WG(o.dLogits, h[L], "head.weight", dLogits, fwd.head),
      mm(V, d),
    ),
  );
  for (let l = L - 1; l >= 0; l--) {
    const x = layer[l];
    const p = `decoder_layers.${l}`;
    const dOut = dh[(l + 1) % 2]; // gradient of h[l + 1]
    const dIn = dh[l % 2]; // gradient of h[l]
    const xp = fwd.layers[l];
    const [packDf, dfP] = pack(df, d, "grad.ffn2");
    const [packDfg, dfgP] = pack(dfg, 2 * d2, "grad.ffn1_gate");
    const ffn = [`${p}.ffn.ffn1`, `${p}.ffn.gate`];
    const ffnWeights = stack(ffn.map((n) => `${n}.weight`), d2 * d, `ffn1_gate.${l}`);
    const ffnBiases = stack(ffn.map((n) => `${n}.bias`), d2, `ffn1_gate.${l}.bias`, false);
    const [packDu, duP] = pack(du, d, "grad.u");
    bwd.push(
      res.stage(
        `layer_norm.${l}.backward`,
        createLayerNormBackward(gpu, {
          dy: dOut,
          x: x.rin,
          gamma: W(`${p}.layer_norm.weight`),
          mean: x.mean,
          rstd: x.rstd,
          dx: drin,
          dgamma: G(`${p}.layer_norm.weight`),
          dbeta: G(`${p}.layer_norm.bias`),
          d,
          maxRows: N,
        }),
        batch,
      ),
      res.stage(
        `alpha_mix.${l}.backward`,
        createAlphaMixBackward(gpu, {
          dy: drin,
          f: x.f,
          u: x.u,
          alpha: W(`${p}.alpha`),
          df,
          du,
          // h = r + u: dOut reaches u around the mix too.
          residual: dOut,
          dalpha: G(`${p}.alpha`),
          d,
          maxRows: N,
        }),
        batch,
      ),
      ...packDf,
      res.stage(
        `ffn2.${l}.dx`,
        NN({ a: df, packedA: dfP, b: W(`${p}.ffn.ffn2.weight`), c: dy }),
        mm(d, d2),
      ),
      res.stage(
        `ffn2.${l}.dw`,
        WG(df, x.y, `${p}.ffn.ffn2.weight`, dfP, xp.y),
        mm(d, d2),
      ),
      res.stage(
        `ffn2.${l}.db`,
        createColumnSum(gpu, {
          dy: df,
          db: G(`${p}.ffn.ffn2.bias`),
          maxCount: N * d,
          packed: dfP,
        }),
        mm(d, d2),
      ),
      res.stage(
        `gated.${l}.backward`,
        createGatedBackward(gpu, { dy, f1: x.f1, g: x.g, grad: dfg, width: d2, maxRows: N }),
        batch,
      ),
      // Ffn1 and Gate together: [df1 | dg] [N, 4d] times their weights
      // stacked [4d, d] (one product adds both to ds), their weight and bias
      // gradients as one [4d, d] product and one column sum.
      ...packDfg,
      ...ffnWeights.before,
      res.stage(
        `ffn1_gate.${l}.dx`,
        NN({ a: dfg, packedA: dfgP, b: ffnWeights.weights, c: ds }),
        mm(2 * d2, d),
      ),
      res.stage(
        `ffn1_gate.${l}.dw`,
        weightGradient(res, tiles.TN, dfg, x.s, ffnWeights.grads, dfgP, xp.s),
        mm(2 * d2, d),
      ),
      res.stage(
        `ffn1_gate.${l}.db`,
        createColumnSum(gpu, {
          dy: dfg,
          db: ffnBiases.grads,
          maxCount: N * 2 * d2,
          packed: dfgP,
        }),
        mm(2 * d2, d),
      ),
      ...ffnWeights.after,
      ...ffnBiases.after,
      res.stage(
        `max_state.${l}.backward`,
        createMaxStateBackward(gpu, {
          ds,
          m: x.m,
          c: x.c,
          argmax: x.argmax,
          grad: dabc,
          d,
          heads,
          maxRows: N,
        }),
        batch,
      ),
    );
    // head0..2 together: [da | db | dc] [N, 3d] times their weights stacked
    // [3d, d] (one product of reduction 3d adds all three to du, one store of
    // du instead of three), and their weight gradients as one [3d, d] product.
    const stacked = stack(
      [0, 1, 2].map((i) => `${p}.self_attention.head${i}.weight`),
      d * d,
      `heads.${l}`,
    );
    const [packAbc, abcP] = pack(dabc, 3 * d, "grad.abc");
    bwd.push(
      ...stacked.before,
      ...packAbc,
      res.stage(
        `heads.${l}.dx`,
        NN({ a: dabc, packedA: abcP, b: stacked.weights, c: du, accumulate: true }),
        mm(3 * d, d),
      ),
      res.stage(
        `heads.${l}.dw`,
        weightGradient(res, tiles.TN, dabc, x.u, stacked.grads, abcP, xp.u),
        mm(3 * d, d),
      ),
      ...stacked.after,
    );
    bwd.push(
      ...packDu,
      // u = h Down_h^T + pp[t], pp = Pos[0:S] Down_p^T (forward.ts): h's
      // share directly, the position's through the batch's sum per position.
      res.stage(
        `down.${l}.dx`,
        NN({ a: du, packedA: duP, b: x.downH, c: dIn }),
        mm(d, d),
      ),
      res.stage(
        `down.${l}.dw`,
        weightGradient(res, tiles.TN, du, h[l], dDownH, duP, xp.h),
        mm(d, d),
      ),
      res.stage(
        `position.batch_sum.${l}`,
        createBatchSum(gpu, { g: du, sum: duSum, d, P, maxRows: N }),
        batch,
      ),
      res.stage(
        `down.position.${l}.dx`,
        NN({ a: duSum, b: x.downP, c: G("pos.weight"), accumulate: true }),
        (s) => ({ M: s.S, N: d, K: d }),
      ),
      res.stage(
        `down.position.${l}.dw`,
        createMatmulTN(gpu, { a: duSum, b: W("pos.weight"), c: dDownP }, tiles.TN),
        (s) => ({ M: s.S, N: d, K: d }),
      ),
      res.stage(
        `down_merge.${l}`,
        createDownMerge(gpu, {
          position: dDownP,
          hidden: dDownH,
          grad: G(`down.${l}.weight`),
          d,
        }),
        batch,
      ),
    );
  }
  bwd.push(res.stage(
    "embedding.backward",
    createEmbeddingBackward(gpu, { dOut: dh[0], dTable: G("em.weight"), V, d, maxRows: N }),
    () => ({ plan: o.plan() }),
  ));
  return bwd;
}

/**
 * The tensors `names` (`floats` each, in that order) as one matrix of their
 * rows stacked: slices of the flat parameter and gradient buffers where they
 * lie back to back (head0..2: their layout offsets are 256-byte aligned, so
 * whenever `d` is a multiple of 8), else scratch copies (one buffer per size
 * in `shared`, for every layer: the stages run one after another): the
 * weights copied in before the products (unless `withWeights` is false:
 * gradients only), the gradient (which the products overwrite) copied out
 * after them.
 */
function stackedTensors(
  res: GraphResources,
  o: BackwardOptions,
  shared: Map<string, GPUBuffer>,
  names: string[],
  floats: number,
  label: string,
  withWeights = true,
): { weights: BufferSlice; grads: BufferSlice; before: Stage[]; after: Stage[] } {
  const bytes = floats * F32_BYTES;
  const w = names.map(o.weight);
  const g = names.map(o.grad);
  const adjacent = (s: BufferSlice[]) =>
    s.every((x, i) =>
      x.buffer === s[0].buffer && (x.offset ?? 0) === (s[0].offset ?? 0) + i * bytes
    );
  if (adjacent(w) && adjacent(g)) {
    const size = names.length * bytes;
    return { weights: { ...w[0], size }, grads: { ...g[0], size }, before: [], after: [] };
  }
  // Scratch shared by every layer's stack of this size: stages run one after another.
  const scratch = (floats: number, what: string) => {
    const key = `${what}:${floats}`;
    let buffer = shared.get(key);
    if (!buffer) {
      buffer = res.buffer(floats, `stacked.${what}.${floats}`);
      shared.set(key, buffer);
    }
    return buffer;
  };
  const weights = scratch(withWeights ? names.length * floats : 0, "weights");
  const grads = scratch(names.length * floats, "grads");
  const copies = (name: string, run: (enc: GPUCommandEncoder, i: number) => void): Stage => ({
    name,
    encode: () => {
      throw new Error(`${name}: buffer copies, recorded with the command encoder only`);
    },
    commands: (enc) => names.forEach((_, i) => run(enc, i)),
  });
  return {
    weights: { buffer: weights },
    grads: { buffer: grads },
    before: withWeights
      ? [copies(`${label}.stack`, (enc, i) => {
        enc.copyBufferToBuffer(w[i].buffer, w[i].offset ?? 0, weights, i * bytes, bytes);
      })]
      : [],
    after: [copies(`${label}.unstack`, (enc, i) => {
      enc.copyBufferToBuffer(grads, i * bytes, g[i].buffer, g[i].offset ?? 0, bytes);
    })],
  };
}

const F32_BYTES = 4;

/**
 * `dW[n, k] = dY[rows, n]^T X[rows, k]` summed over blocks of
 * {@link WEIGHT_GRAD_ROWS} rows, each block from zero and added to the total
 * in row-block order (deterministic; matmul.ts's `blockRows`): the texture
 * form in one dispatch, the storage form as a chain of block products. Short
 * reductions kept the storage kernel's operands in cache (measured on
 * llvmpipe with the scalar 16x8 kernel, GFLOP per CPU second: dW [128, 256]
 * over 2048 rows 4.0-4.8, over 256 rows 7.9; dW [1100, 128] 6.0-6.7 against
 * 8.0-8.4). One dispatch instead of the chain made the texture form's bench
 * step about 5% faster (fewer dispatches, no re-reads of dW), same bits.
 */
function weightGradient(
  res: GraphResources,
  tile: MatmulTile,
  dY: GPUBuffer,
  x: GPUBuffer,
  dW: BufferSlice | GPUBuffer,
  // dY and X as packed for the other products (texture form).
  dYPack?: PackedOperand,
  xPack?: PackedOperand,
): GpuStep<MatmulDims> {
  return createMatmulTN(res.gpu, {
    a: dY, // [rows, n]
    b: x, // [rows, k]
    c: dW, // [n, k]
    packedA: dYPack,
    packedB: xPack,
    blockRows: WEIGHT_GRAD_ROWS,
  }, tile);
}
