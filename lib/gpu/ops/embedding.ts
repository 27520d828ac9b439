/**
 * Token embedding `h = Em[x]`, forward (gather) and backward (a per-token sum
 * in a fixed order, driven by the host's {@link EmbeddingGradientPlan}).
 *
 * @module
 */
import { createStorageBuffer, type Gpu, type GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  checkSize,
  createElementStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
} from "./elementwise.ts";
import type { EmbeddingGradientPlan } from "./embedding_plan.ts";

/**
 * Forward: `out[r, c] = table[ids[r], c]`; one invocation per (row, channel).
 * sizes = (rows, d, V). An id outside [0, V) (rejected on the host by
 * planEmbeddingGradient) gives a zero row rather than a read past the table.
 */
const EMBEDDING_FORWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;    // read, [B*S]
@group(0) @binding(2) var<storage, read_write> table: array<f32>;  // read, Em [V, d]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // h [B*S, d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;
  if (i >= sizes.x * d) { return; }
  let id = ids[i / d];
  var value = 0.0;
  if (id >= 0 && u32(id) < sizes.z) { value = table[u32(id) * d + i % d]; }
  out[i] = value;
}
`;

/**
 * Backward: for each distinct token k of the plan and channel c,
 * `dTable[tokens[k], c] += sum of dOut[positions[p], c]` over
 * p = offsets[k] .. offsets[k+1]-1 in that (ascending row) order; one
 * invocation per (k, c). Rows of tokens absent from the batch, and the padding
 * row 0, are not touched. sizes = (n distinct tokens, d).
 */
const EMBEDDING_BACKWARD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> dOut: array<f32>;       // read, dh [B*S, d]
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;     // read, [n]
@group(0) @binding(3) var<storage, read_write> offsets: array<u32>;    // read, [n + 1]
@group(0) @binding(4) var<storage, read_write> positions: array<u32>;  // read, [offsets[n]]
@group(0) @binding(5) var<storage, read_write> dTable: array<f32>;     // dEm [V, d], accumulated
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;
  if (i >= sizes.x * d) { return; }
  let k = i / d;
  let c = i % d;
  var sum = 0.0;
  for (var p = offsets[k]; p < offsets[k + 1u]; p++) {
    sum += dOut[positions[p] * d + c];
  }
  let at = tokens[k] * d + c;
  dTable[at] = dTable[at] + sum;
}
`;

/** Buffers and sizes of {@link createEmbeddingForward}. */
export interface EmbeddingForwardBuffers {
  /** Token ids `[B*S]` i32. */
  ids: Binding;
  /** `em.weight` `[V, d]` f32 (a slice of the parameter buffer). */
  table: Binding;
  /** `h` `[B*S, d]` f32. */
  out: Binding;
  /** Vocabulary size V (rows of the table). */
  V: number;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `out[b, t, :] = table[ids[b, t], :]`. */
export function createEmbeddingForward(
  gpu: Gpu,
  buffers: EmbeddingForwardBuffers,
): GpuStep<BatchDims> {
  const label = "embedding.forward";
  const { V, d, maxRows } = buffers;
  return createElementStep(gpu, {
    label,
    cacheKey: label,
    code: EMBEDDING_FORWARD_WGSL,
    buffers: [buffers.ids, buffers.table, buffers.out],
    count: (dims) => checkedRows(label, dims, maxRows) * d,
    sizes: (dims) => [dims.B * dims.S, d, V],
  });
}

/** Buffers and sizes of {@link createEmbeddingBackward}. */
export interface EmbeddingBackwardBuffers {
  /** `dh` `[B*S, d]` f32, the gradient of the embedding output. */
  dOut: Binding;
  /**
   * `d em.weight` `[V, d]` f32 (a slice of the gradient buffer). The step ADDS
   * each batch token's sum into its row and leaves the other rows alone, so
   * zero the gradients before the step.
   */
  dTable: Binding;
  /** Vocabulary size V (rows of the table). */
  V: number;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** Dims of {@link createEmbeddingBackward}: the plan of this batch's ids. */
export interface EmbeddingBackwardDims {
  /** This batch's plan from `planEmbeddingGradient(ids, V)`. */
  plan: EmbeddingGradientPlan;
}

/**
 * `dTable[v, :] += sum over the rows r with ids[r] = v (ascending) of dOut[r, :]`
 * for every non-padding token v of the batch. `encode` uploads the plan
 * (queue.writeBuffer into buffers this step owns) and records one dispatch.
 */
export function createEmbeddingBackward(
  gpu: Gpu,
  buffers: EmbeddingBackwardBuffers,
): GpuStep<EmbeddingBackwardDims> {
  const label = "embedding.backward";
  const { V, d, maxRows } = buffers;
  const maxTokens = Math.min(V, maxRows);
  const tokens = createStorageBuffer(gpu, maxTokens * 4, `${label}:tokens`);
  const offsets = createStorageBuffer(gpu, (maxTokens + 1) * 4, `${label}:offsets`);
  const positions = createStorageBuffer(gpu, maxRows * 4, `${label}:positions`);
  const inner = createElementStep<EmbeddingBackwardDims>(gpu, {
    label,
    cacheKey: label,
    code: EMBEDDING_BACKWARD_WGSL,
    buffers: [buffers.dOut, tokens, offsets, positions, buffers.dTable],
    count: ({ plan }) => {
      const n = plan.tokens.length;
      checkSize(label, "distinct tokens", n, maxTokens);
      checkSize(label, "plan rows", plan.positions.length, maxRows);
      if (plan.offsets.length !== n + 1 || plan.offsets[n] !== plan.positions.length) {
        throw new RangeError(`${label}: plan offsets do not match its tokens and positions`);
      }
      if (n > 0 && plan.tokens[n - 1] >= V) {
        throw new RangeError(`${label}: plan token ${plan.tokens[n - 1]} is not below V = ${V}`);
      }
      if (n > 0) {
        const q = gpu.device.queue;
        q.writeBuffer(tokens, 0, plan.tokens);
        q.writeBuffer(offsets, 0, plan.offsets);
        q.writeBuffer(positions, 0, plan.positions);
      }
      return n * d;
    },
    sizes: ({ plan }) => [plan.tokens.length, d],
  });
  return {
    encode: inner.encode,
    destroy() {
      inner.destroy();
      tokens.destroy();
      offsets.destroy();
      positions.destroy();
    },
  };
}
