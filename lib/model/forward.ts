/**
 * The SamOut forward pass on the GPU, as SAMOUT.md writes it: embedding, then
 * per layer Down (of concat(position, h), its position half computed once
 * per position: lib/gpu/ops/position.ts) → MaxState (three projections,
 * running maximum) → gated FFN → alpha mix → LayerNorm → residual, then the
 * head.
 *
 * One builder, {@link buildForward}, serves the inference model
 * (`inference.ts`) and the training graph (`graph.ts`): the training graph
 * walks the activations it returns back for the backward pass. Every
 * activation is `[rows, width]` f32 row-major with `rows = B * S`.
 *
 * @module
 */
import type { BufferSlice, Gpu } from "../gpu/device.ts";
import { createAdd } from "../gpu/ops/elementwise.ts";
import { createEmbeddingForward } from "../gpu/ops/embedding.ts";
import { createGatedForward } from "../gpu/ops/gated.ts";
import { createLayerNormForward } from "../gpu/ops/layer_norm.ts";
import {
  createMatmulNT,
  createOperandPack,
  defaultTile,
  type MatmulTiles,
  type PackedOperand,
} from "../gpu/ops/matmul.ts";
import { createMaxStateForward } from "../gpu/ops/max_state.ts";
import { createDownHalves, createPositionBroadcast } from "../gpu/ops/position.ts";
import { createAlphaMixForward } from "../gpu/ops/alpha_mix.ts";
import type { SamOutConfig } from "./config.ts";
import type { GraphResources, Stage, StepDims } from "./resources.ts";

/** Activations of one layer that the backward pass reads. */
export interface LayerActivations {
  /** `[d, d]` Down's columns that read the position (Down_p), copied from the weight. */
  downP: GPUBuffer;
  /** `[d, d]` Down's columns that read h (Down_h), copied from the weight. */
  downH: GPUBuffer;
  /** `[N, d]` Down output. */
  u: GPUBuffer;
  /** `[N, d]` u W2^T. */
  c: GPUBuffer;
  /** `[N, d]` running max of z. */
  m: GPUBuffer;
  /** `[N, d]` u32 position of the running max. */
  argmax: GPUBuffer;
  /** `[N, d]` MaxState output. */
  s: GPUBuffer;
  /** `[N, 2d]` Ffn1(s). */
  f1: GPUBuffer;
  /** `[N, 2d]` Gate(s). */
  g: GPUBuffer;
  /** `[N, 2d]` f1 * relu(g). */
  y: GPUBuffer;
  /** `[N, d]` Ffn2(y). */
  f: GPUBuffer;
  /** `[N, d]` alpha f + (1 - alpha) u. */
  rin: GPUBuffer;
  /** `[N]` LayerNorm mean. */
  mean: GPUBuffer;
  /** `[N]` LayerNorm 1/std. */
  rstd: GPUBuffer;
}

/** What {@link buildForward} returns. */
export interface Forward {
  /** The stages in order: embedding, the layers, and the head when logits were given. */
  stages: Stage[];
  /** `h[l]` `[N, d]`: input of layer l; `h[L]` is the head's input. */
  h: GPUBuffer[];
  layers: LayerActivations[];
  /**
   * The linear layers' inputs as packed by the forward pass (texture-form
   * products only; undefined otherwise): the weight gradients read them.
   */
  packs: { layers: LayerPacks[]; head?: PackedOperand };
}

/** A layer's packed linear-layer inputs (see {@link Forward.packs}). */
export interface LayerPacks {
  /** h `[N, d]`: input of Down_h. */
  h?: PackedOperand;
  /** u `[N, d]`: input of head0..2. */
  u?: PackedOperand;
  /** s `[N, d]`: input of ffn1 and gate. */
  s?: PackedOperand;
  /** gated `[N, 2d]`: input of ffn2. */
  y?: PackedOperand;
}

/** Every product's tiling: the given ones, else the adapter's defaults. */
export function resolveTiles(gpu: Gpu, tiles?: Partial<MatmulTiles>): MatmulTiles {
  return {
    NT: tiles?.NT ?? defaultTile(gpu, "NT"),
    NN: tiles?.NN ?? defaultTile(gpu, "NN"),
    TN: tiles?.TN ?? defaultTile(gpu, "TN"),
  };
}

/** What the forward pass reads and writes. */
export interface ForwardOptions {
  config: SamOutConfig;
  /** Largest B*S it will be encoded with. */
  maxRows: number;
  /** The slice of the parameter buffer holding tensor `name`. */
  weight: (name: string) => BufferSlice;
  /** Input ids `[B, S]` i32. */
  ids: GPUBuffer;
  /** Logits `[B*S, V]` f32; null: stop at `h[L]` (the caller runs the head on the rows it needs). */
  logits: GPUBuffer | null;
  /** The matrix-product kernels to run (default: the adapter's defaults, {@link defaultTile}). */
  tiles?: Partial<MatmulTiles>;
  /**
   * Packs of the weights that the caller keeps fresh (inference,
   * weight_packs.ts): the forward products read a weight's pack instead of
   * packing it on every call. Training leaves it out.
   */
  weightPacks?: { get(name: string): PackedOperand | undefined };
}

/** Builds the forward pass into `res` (see the module doc). */
export function buildForward(res: GraphResources, o: ForwardOptions): Forward {
  const gpu = res.gpu;
  const tiles = resolveTiles(gpu, o.tiles);
  const NT = (b: Parameters<typeof createMatmulNT>[1]) => createMatmulNT(gpu, b, tiles.NT);
  // With texture-form products, each layer input is packed once, after it is
  // written, for every product that reads it: here, and its weight gradient
  // in the backward pass (Forward.packs).
  const packing = tiles.NT.texture || tiles.TN.texture;
  const pack = (name: string, buf: GPUBuffer, cols: number): [Stage[], PackedOperand?] => {
    if (!packing) return [[]];
    const step = createOperandPack(gpu, buf, cols, `pack.${name}`, o.maxRows);
    if (!step) return [[]];
    return [[res.stage(`pack.${name}`, step, (s) => ({ rows: s.rows }))], step.operand];
  };
  const { vocabSize: V, hidden: d, heads, layers: L, maxPositions: P } = o.config;
  const N = o.maxRows;
  const d2 = 2 * d;
  const W = o.weight;
  // A forward product's weight operand, with its pack where the caller keeps one.
  const weight = (name: string) => ({ b: W(name), packedB: o.weightPacks?.get(name) });
  const batch = (s: StepDims) => ({ B: s.B, S: s.S });
  const mm = (n: number, k: number) => (s: StepDims) => ({ M: s.rows, N: n, K: k });

  const h = Array.from({ length: L + 1 }, (_, l) => res.buffer(N * d, `h.${l}`));
  const layers: LayerActivations[] = Array.from({ length: L }, (_, l) => ({
    downP: res.buffer(d * d, `l${l}.down.position`),
    downH: res.buffer(d * d, `l${l}.down.hidden`),
    u: res.buffer(N * d, `l${l}.u`),
    c: res.buffer(N * d, `l${l}.c`),
    m: res.buffer(N * d, `l${l}.m`),
    argmax: res.buffer(N * d, `l${l}.argmax`),
    s: res.buffer(N * d, `l${l}.s`),
    f1: res.buffer(N * d2, `l${l}.ffn1`),
    g: res.buffer(N * d2, `l${l}.gate`),
    y: res.buffer(N * d2, `l${l}.gated`),
    f: res.buffer(N * d, `l${l}.ffn2`),
    rin: res.buffer(N * d, `l${l}.mix`),
    // Whole texels of 4 rows: the LayerNorm backward reads them through texture copies.
    mean: res.buffer(Math.ceil(N / 4) * 4, `l${l}.ln.mean`),
    rstd: res.buffer(Math.ceil(N / 4) * 4, `l${l}.ln.rstd`),
  }));
  // Scratch shared by all layers.
  const pp = res.buffer(Math.min(P, N) * d, "scratch.position"); // [S, d] Pos[0:S] Down_p^T
  const aBuf = res.buffer(N * d, "scratch.a"); // [N, d] u W0^T
  const bBuf = res.buffer(N * d, "scratch.b"); // [N, d] u W1^T
  const rBuf = res.buffer(N * d, "scratch.ln"); // [N, d] LayerNorm output

  // 1. h = Em[x]
  const stages: Stage[] = [res.stage(
    "embedding",
    createEmbeddingForward(gpu, { ids: o.ids, table: W("em.weight"), out: h[0], V, d, maxRows: N }),
    batch,
  )];
  // 3. the layers
  const layerPacks: LayerPacks[] = [];
  for (let l = 0; l < L; l++) {
    const x = layers[l];
    const p = `decoder_layers.${l}`;
    const [packH, hIn] = pack(`h.${l}`, h[l], d);
    const [packU, u] = pack(`u.${l}`, x.u, d);
    const [packS, sIn] = pack(`s.${l}`, x.s, d);
    const [packY, y] = pack(`gated.${l}`, x.y, d2);
    layerPacks.push({ h: hIn, u, s: sIn, y });
    stages.push(
      // u = concat(p, h) @ Down^T = h @ Down_h^T + pp[t], pp = Pos[0:S] @ Down_p^T
      res.stage(
        `down_halves.${l}`,
        createDownHalves(gpu, {
          weight: W(`down.${l}.weight`),
          position: x.downP,
          hidden: x.downH,
          d,
        }),
        () => undefined,
      ),
      res.stage(
        `down.position.${l}`,
        NT({ a: W("pos.weight"), b: x.downP, c: pp }),
        (s) => ({ M: s.S, N: d, K: d }),
      ),
      res.stage(
        `position.broadcast.${l}`,
        createPositionBroadcast(gpu, { pp, out: x.u, d, P, maxRows: N }),
        batch,
      ),
      ...packH,
      res.stage(
        `down.${l}`,
        NT({ a: h[l], packedA: hIn, b: x.downH, c: x.u, accumulate: true }),
        mm(d, d),
      ),
      ...packU,
      // MaxState: a, b, c; z = (a + b) / sqrt(hs); m = running max of z; s = (m + c) m + b
      res.stage(
        `head0.${l}`,
        NT({ a: x.u, packedA: u, ...weight(`${p}.self_attention.head0.weight`), c: aBuf }),
        mm(d, d),
      ),
      res.stage(
        `head1.${l}`,
        NT({ a: x.u, packedA: u, ...weight(`${p}.self_attention.head1.weight`), c: bBuf }),
        mm(d, d),
      ),
      res.stage(
        `head2.${l}`,
        NT({ a: x.u, packedA: u, ...weight(`${p}.self_attention.head2.weight`), c: x.c }),
        mm(d, d),
      ),
      res.stage(
        `max_state.${l}`,
        createMaxStateForward(gpu, {
          a: aBuf,
          b: bBuf,
          c: x.c,
          m: x.m,
          argmax: x.argmax,
          s: x.s,
          d,
          heads,
          maxRows: N,
        }),
        batch,
      ),
      ...packS,
      // f = Ffn2(Ffn1(s) * relu(Gate(s)))
      res.stage(
        `ffn1.${l}`,
        NT({
          a: x.s,
          packedA: sIn,
          ...weight(`${p}.ffn.ffn1.weight`),
          bias: W(`${p}.ffn.ffn1.bias`),
          c: x.f1,
        }),
        mm(d2, d),
      ),
      res.stage(
        `gate.${l}`,
        NT({
          a: x.s,
          packedA: sIn,
          ...weight(`${p}.ffn.gate.weight`),
          bias: W(`${p}.ffn.gate.bias`),
          c: x.g,
        }),
        mm(d2, d),
      ),
      res.stage(
        `gated.${l}`,
        createGatedForward(gpu, { f1: x.f1, g: x.g, y: x.y, width: d2, maxRows: N }),
        batch,
      ),
      ...packY,
      res.stage(
        `ffn2.${l}`,
        NT({
          a: x.y,
          packedA: y,
          ...weight(`${p}.ffn.ffn2.weight`),
          bias: W(`${p}.ffn.ffn2.bias`),
          c: x.f,
        }),
        mm(d, d2),
      ),
      // r = LayerNorm(alpha f + (1 - alpha) u); h = r + u
      res.stage(
        `alpha_mix.${l}`,
        createAlphaMixForward(gpu, {
          f: x.f,
          u: x.u,
          alpha: W(`${p}.alpha`),
          y: x.rin,
          d,
          maxRows: N,
        }),
        batch,
      ),
      res.stage(
        `layer_norm.${l}`,
        createLayerNormForward(gpu, {
          x: x.rin,
          gamma: W(`${p}.layer_norm.weight`),
          beta: W(`${p}.layer_norm.bias`),
          y: rBuf,
          mean: x.mean,
          rstd: x.rstd,
          d,
          maxRows: N,
        }),
        batch,
      ),
      res.stage(
        `residual.${l}`,
        createAdd(gpu, { a: rBuf, b: x.u, out: h[l + 1], maxCount: N * d }),
        (s) => ({ count: s.rows * d }),
      ),
    );
  }
  // 4. logits = h @ Head^T
  let head: PackedOperand | undefined;
  if (o.logits) {
    const [packH, hL] = pack("h", h[L], d);
    head = hL;
    stages.push(
      ...packH,
      res.stage(
        "head",
        NT({ a: h[L], packedA: hL, ...weight("head.weight"), c: o.logits }),
        mm(V, d),
      ),
    );
  }
  return { stages, h, layers, packs: { layers: layerPacks, head } };
}
