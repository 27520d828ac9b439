/**
 * SamOut's parameters: names, shapes and initialisation exactly as the table in
 * docs/SAMOUT.md, in one canonical order that every flat layout,
 * checkpoint and test follows.
 *
 * @module
 */
import type { SamOutConfig } from "./config.ts";
import { Random } from "../random/mod.ts";

/** How a tensor is initialised (PyTorch's defaults for Embedding, Linear, LayerNorm). */
export type ParameterInit =
  /** N(mean 0, std); `zeroRow0` zeroes row 0 (the padding embedding). */
  | { kind: "normal"; std: number; zeroRow0: boolean }
  /** U(-bound, bound). */
  | { kind: "uniform"; bound: number }
  /** Every element `value` (LayerNorm ones/zeros, alpha 0.5). */
  | { kind: "constant"; value: number };

/** One row of the parameter table. */
export interface ParameterSpec {
  /** PyTorch state-dict name, e.g. `decoder_layers.0.ffn.ffn1.weight`. */
  name: string;
  /** Shape; `[]` for a scalar (`alpha`). Linear weights are `[out, in]`. */
  shape: number[];
  /** How its initial values are drawn. */
  init: ParameterInit;
}

/**
 * Every parameter of the model in canonical order: `em`, `pos`, `down.0..L-1`,
 * then per layer `head0, head1, head2, ffn1 w/b, gate w/b, ffn2 w/b,
 * layer_norm w/b, alpha`, then `head`.
 */
export function parameterTable(cfg: SamOutConfig): ParameterSpec[] {
  const { vocabSize: V, hidden: d, layers: L, maxPositions: P } = cfg;
  const kD = 1 / Math.sqrt(d);
  const k2D = 1 / Math.sqrt(2 * d);
  const uD: ParameterInit = { kind: "uniform", bound: kD };
  const u2D: ParameterInit = { kind: "uniform", bound: k2D };
  const table: ParameterSpec[] = [
    { name: "em.weight", shape: [V, d], init: { kind: "normal", std: 1, zeroRow0: true } },
    { name: "pos.weight", shape: [P, d], init: { kind: "normal", std: 1, zeroRow0: false } },
  ];
  for (let l = 0; l < L; l++) {
    table.push({ name: `down.${l}.weight`, shape: [d, 2 * d], init: u2D });
  }
  for (let l = 0; l < L; l++) {
    const p = `decoder_layers.${l}`;
    table.push(
      { name: `${p}.self_attention.head0.weight`, shape: [d, d], init: uD },
      { name: `${p}.self_attention.head1.weight`, shape: [d, d], init: uD },
      { name: `${p}.self_attention.head2.weight`, shape: [d, d], init: uD },
      { name: `${p}.ffn.ffn1.weight`, shape: [2 * d, d], init: uD },
      { name: `${p}.ffn.ffn1.bias`, shape: [2 * d], init: uD },
      { name: `${p}.ffn.gate.weight`, shape: [2 * d, d], init: uD },
      { name: `${p}.ffn.gate.bias`, shape: [2 * d], init: uD },
      { name: `${p}.ffn.ffn2.weight`, shape: [d, 2 * d], init: u2D },
      { name: `${p}.ffn.ffn2.bias`, shape: [d], init: u2D },
      { name: `${p}.layer_norm.weight`, shape: [d], init: { kind: "constant", value: 1 } },
      { name: `${p}.layer_norm.bias`, shape: [d], init: { kind: "constant", value: 0 } },
      { name: `${p}.alpha`, shape: [], init: { kind: "constant", value: 0.5 } },
    );
  }
  table.push({ name: "head.weight", shape: [V, d], init: uD });
  return table;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Total number of scalar parameters. */
export function parameterCount(cfg: SamOutConfig): number {
  let n = 0;
  for (const p of parameterTable(cfg)) n += shapeSize(p.shape);
  return n;
}

/** Fills a new f32 tensor per `spec.init`, drawing from `rng` in element order. */
function initTensor(spec: ParameterSpec, rng: Random): Float32Array {
  const data = new Float32Array(shapeSize(spec.shape));
  const init = spec.init;
  switch (init.kind) {
    case "normal":
      for (let i = 0; i < data.length; i++) data[i] = rng.normal(0, init.std);
      if (init.zeroRow0) data.fill(0, 0, spec.shape[1]);
      break;
    case "uniform":
      for (let i = 0; i < data.length; i++) data[i] = rng.range(-init.bound, init.bound);
      break;
    case "constant":
      data.fill(init.value);
      break;
  }
  return data;
}

/**
 * Initial weights for `cfg` from `seed`. Each tensor draws from its own stream
 * `new Random(seed, "init/" + name)`, so one tensor's values do not depend on
 * the others (or on the layer count). Map order is the canonical order.
 */
export function initParameters(cfg: SamOutConfig, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const spec of parameterTable(cfg)) {
    out.set(spec.name, initTensor(spec, new Random(seed, "init/" + spec.name)));
  }
  return out;
}
