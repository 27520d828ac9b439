/**
 * The inference model's weights, packed once per upload for its texture-form
 * products (software adapters; lib/gpu/ops/matmul_texture.ts) instead of once
 * per product call.
 *
 * A texture-form forward product `x W^T` reads its weight `W [out, in]`
 * through a texture holding `W^T [in, out]`, which a small kernel fills on
 * every call. Training needs that (the weights change every step); inference
 * does not, and a generation step of a few rows spent more time packing its
 * weights than multiplying by them. Here every weight is packed in the first
 * submission after an upload ({@link WeightPacks.invalidate}) and the products
 * read those packs (`packedB`) from then on: the same texels, so the same
 * bits. On hardware adapters the products read the weights' buffers and
 * nothing is packed.
 *
 * @module
 */
import type { BufferSlice, Gpu } from "../gpu/device.ts";
import { defaultTile, type PackedOperand } from "../gpu/ops/matmul.ts";
import { createPack } from "../gpu/ops/matmul_texture.ts";
import type { SamOutConfig } from "./config.ts";
import type { ParameterLayout } from "./layout.ts";
import { type Stage, tensorSlice } from "./resources.ts";

/**
 * The weights the forward products multiply by, `[out, in]` each: every
 * layer's Down (the step form multiplies by it whole), head0..2, Ffn1, Gate
 * and Ffn2, and the head.
 */
export function forwardWeightNames(config: SamOutConfig): string[] {
  const names: string[] = [];
  for (let l = 0; l < config.layers; l++) {
    const p = `decoder_layers.${l}`;
    names.push(
      `down.${l}.weight`,
      ...[0, 1, 2].map((i) => `${p}.self_attention.head${i}.weight`),
      ...["ffn1", "gate", "ffn2"].map((f) => `${p}.ffn.${f}.weight`),
    );
  }
  names.push("head.weight");
  return names;
}

/** One weight's pack and the logical `[in, out]` matrix it holds. */
interface WeightPack {
  operand: PackedOperand;
  rows: number;
  cols: number;
}

/** The weights of a model packed once per upload (see the module doc). */
export class WeightPacks {
  readonly #packs = new Map<string, WeightPack>();
  readonly #layout: ParameterLayout;
  readonly #params: GPUBuffer;
  #stale = true;
  /** Packs the weights if they changed since the last pack; first in a submission. */
  readonly stage: Stage;

  /**
   * Packs for the weights `names` (matrices `[out, in]` of `layout`, in
   * `params`), where `gpu`'s default forward products read textures and the
   * weight fits in one; none elsewhere.
   */
  constructor(gpu: Gpu, layout: ParameterLayout, params: GPUBuffer, names: readonly string[]) {
    this.#layout = layout;
    this.#params = params;
    this.stage = { name: "pack.weights", encode: (pass) => this.encode(pass) };
    const matrices = names.map((name) => {
      const entry = layout.byName.get(name);
      if (entry?.shape.length !== 2) {
        throw new Error(`weight packs: ${name} is not a matrix of the model's layout`);
      }
      return { name, out: entry.shape[0], inputs: entry.shape[1] };
    });
    if (!defaultTile(gpu, "NT").texture) return;
    for (const { name, out, inputs } of matrices) {
      const operand = createPack(gpu, tensorSlice(layout, params, name), true, `weights.${name}`);
      // The rows a forward product reads: its reduction rounded up to whole texels.
      if (!operand.fits(Math.ceil(inputs / 4) * 4, out)) {
        operand.destroy();
        continue;
      }
      this.#packs.set(name, { operand, rows: inputs, cols: out });
    }
  }

  /** The pack of weight `name`, for a forward product's `packedB`; undefined where it has none. */
  get(name: string): PackedOperand | undefined {
    return this.#packs.get(name)?.operand;
  }

  /**
   * Weight `name` as a forward product's second operand: its slice of the
   * parameters, and its pack where it has one.
   */
  operand(name: string): { b: BufferSlice; packedB?: PackedOperand } {
    return { b: tensorSlice(this.#layout, this.#params, name), packedB: this.get(name) };
  }

  /** The weights changed (an upload): the next {@link encode} packs them again. */
  invalidate(): void {
    this.#stale = true;
  }

  /**
   * Records the packs if the weights changed since the last recording, before
   * the products that read them. The caller submits what it records (a
   * recording that is dropped would leave the packs stale).
   */
  encode(pass: GPUComputePassEncoder): void {
    if (!this.#stale) return;
    for (const { operand, rows, cols } of this.#packs.values()) {
      operand.encode(pass, { rows, cols, padRows: Math.ceil(rows / 4) * 4 });
    }
    this.#stale = false;
  }

  /** Destroys the packs' textures. */
  destroy(): void {
    for (const { operand } of this.#packs.values()) operand.destroy();
    this.#packs.clear();
  }
}
