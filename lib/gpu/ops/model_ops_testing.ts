/**
 * Test support for the SamOut op kernels: seeded random inputs, tensors packed
 * as 256-byte-aligned slices of one buffer (with sentinel-filled gaps, to catch
 * writes outside a slice), one-submission runs, readback and bit-identity
 * checks (tolerance checks: `assertClose` in tests/assert.ts). Used only by the `*_test.ts` files beside the ops.
 *
 * @module
 */
import { assert } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import {
  type BufferSlice,
  createStorageBuffer,
  type Gpu,
  readBuffer,
  requestGpu,
} from "../device.ts";

/** The shared test device (Mesa llvmpipe in CI). */
export function testGpu(): Promise<Gpu> {
  return requestGpu();
}

/** `n` draws from N(0, scale^2), rounded to f32. */
export function randomNormal(rng: Random, n: number, scale = 1): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal(0, scale);
  return out;
}

/** Value written into the gaps around packed slices; no kernel produces it. */
export const SENTINEL = -12345.5;

/** Tensors packed into one storage buffer, each at a non-zero multiple of 256 bytes. */
export interface Packed {
  buffer: GPUBuffer;
  /** One slice per packed array, in order. */
  slices: BufferSlice[];
  /** Element counts of the packed arrays. */
  counts: number[];
}

/**
 * Packs `arrays` (f32, or u32/i32 stored bit-for-bit) into one buffer: array i
 * sits at a 256-byte-aligned offset after a gap of at least 256 bytes, the gaps
 * and tails hold {@link SENTINEL}. The slices are sized exactly.
 */
export function pack(
  gpu: Gpu,
  arrays: (Float32Array | Uint32Array | Int32Array)[],
  label: string,
): Packed {
  const offsets: number[] = [];
  let end = 0;
  for (const a of arrays) {
    const offset = Math.ceil((end + 256) / 256) * 256;
    offsets.push(offset);
    end = offset + a.byteLength;
  }
  const total = Math.ceil((end + 256) / 256) * 256;
  const host = new Float32Array(total / 4).fill(SENTINEL);
  arrays.forEach((a, i) => {
    new Uint8Array(host.buffer, offsets[i], a.byteLength).set(
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
    );
  });
  const buffer = createStorageBuffer(gpu, total, label);
  gpu.device.queue.writeBuffer(buffer, 0, host);
  return {
    buffer,
    slices: arrays.map((a, i) => ({ buffer, offset: offsets[i], size: Math.max(4, a.byteLength) })),
    counts: arrays.map((a) => a.length),
  };
}

/** Shared with the other kernel tests. */
export { recordSteps, runSteps } from "./test_helpers.ts";

/** Reads the whole packed buffer back once; returns a reader per slice and a gap check. */
export async function readPacked(gpu: Gpu, packed: Packed): Promise<{
  f32(i: number): Float32Array;
  u32(i: number): Uint32Array;
  /** Asserts that every byte outside the slices still holds the sentinel. */
  assertGapsIntact(): void;
}> {
  const bytes = await readBuffer(gpu, packed.buffer);
  const all = new Float32Array(bytes);
  return {
    f32: (i) => new Float32Array(bytes, packed.slices[i].offset, packed.counts[i]),
    u32: (i) => new Uint32Array(bytes, packed.slices[i].offset, packed.counts[i]),
    assertGapsIntact() {
      const inside = new Uint8Array(all.length);
      packed.slices.forEach((s, i) => {
        inside.fill(1, (s.offset ?? 0) / 4, (s.offset ?? 0) / 4 + packed.counts[i]);
      });
      for (let k = 0; k < all.length; k++) {
        if (!inside[k] && all[k] !== SENTINEL) {
          assert(false, `a kernel wrote ${all[k]} at float ${k}, outside every slice`);
        }
      }
    },
  };
}

/** Asserts two arrays are bit-identical (as bytes). */
export function assertBitIdentical(
  a: Float32Array | Uint32Array,
  b: Float32Array | Uint32Array,
  what: string,
): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert(x.length === y.length, `${what}: lengths ${x.length} and ${y.length} differ`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      assert(false, `${what}: runs differ at element ${i} (${a[i]} vs ${b[i]})`);
    }
  }
}
