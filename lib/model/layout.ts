/**
 * The flat parameter layout of the WebGPU training graph: parameters,
 * gradients and Adam's m and v each live in ONE f32 buffer, every tensor at a
 * 256-byte-aligned offset so that kernels can bind it as a buffer slice
 * (`minStorageBufferOffsetAlignment` is 256 on every adapter we know).
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import type { SamOutConfig } from "./config.ts";
import { parameterTable } from "./params.ts";

/** Floats per alignment unit: 256 bytes / 4. */
export const ALIGN_FLOATS = 64;

/** One tensor's place in the flat buffers. */
export interface LayoutEntry {
  /** Parameter name as in SAMOUT.md, e.g. `decoder_layers.0.ffn.ffn1.weight`. */
  name: string;
  /** Shape, `[]` for the scalar `alpha`. */
  shape: number[];
  /** Offset in floats (a multiple of {@link ALIGN_FLOATS}). */
  offset: number;
  /** Number of floats (product of `shape`, 1 for a scalar). */
  size: number;
}

/** All tensors in params.ts' canonical order and the total (padded) length. */
export interface ParameterLayout {
  entries: LayoutEntry[];
  /** Floats in each flat buffer, including alignment padding (a multiple of 64). */
  totalFloats: number;
  /** Entry by name. */
  byName: Map<string, LayoutEntry>;
}

/** Lays out every parameter of `cfg` in canonical order, each at a 256-byte-aligned offset. */
export function parameterLayout(cfg: SamOutConfig): ParameterLayout {
  const entries: LayoutEntry[] = [];
  let offset = 0;
  for (const { name, shape } of parameterTable(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape: [...shape], offset, size });
    offset += Math.ceil(size / ALIGN_FLOATS) * ALIGN_FLOATS;
  }
  return { entries, totalFloats: offset, byName: new Map(entries.map((e) => [e.name, e])) };
}

/**
 * Packs named tensors into one flat array laid out by `layout` (padding stays
 * zero). Throws a `UserError` naming the tensor if one is missing or has the
 * wrong number of elements.
 */
export function packFlat(
  layout: ParameterLayout,
  tensors: Map<string, ArrayLike<number>>,
  what = "weights",
): Float32Array<ArrayBuffer> {
  const flat = new Float32Array(layout.totalFloats);
  for (const e of layout.entries) {
    const t = tensors.get(e.name);
    if (!t) {
      throw new UserError(`${what}: tensor ${e.name} is missing`, {
        field: e.name,
        expected: `a tensor of shape [${e.shape.join(", ")}]`,
      });
    }
    if (t.length !== e.size) {
      throw new UserError(`${what}: tensor ${e.name} has the wrong size`, {
        field: e.name,
        expected: `${e.size} values (shape [${e.shape.join(", ")}])`,
        found: `${t.length} values`,
      });
    }
    flat.set(t, e.offset);
  }
  return flat;
}

/** Splits a flat array laid out by `layout` into named tensors (copies). */
export function unpackFlat(
  layout: ParameterLayout,
  flat: Float32Array,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const e of layout.entries) out.set(e.name, flat.slice(e.offset, e.offset + e.size));
  return out;
}
