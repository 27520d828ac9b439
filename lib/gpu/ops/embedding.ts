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
  channelGroups,
  checkedRows,
  checkSize,
  createElementStep,
  createKernelSequence,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  ELEMENT_WORKGROUP_SIZE,
  type ElementType,
} from "./elementwise.ts";
import type { EmbeddingGradientPlan } from "./embedding_plan.ts";
import { type InputMode, inputWgsl, textureInputMode } from "./texture_inputs.ts";

/**
 * Forward: `out[r, c] = table[ids[r], c]`; one invocation per (row, channel),
 * or with `vec4<f32>` per 4 channels (d % 4 == 0: a quarter of the
 * invocations, the same values). sizes = (rows, d in elements of T, V). An id
 * outside [0, V) (rejected on the host by planEmbeddingGradient) gives a zero
 * row rather than a read past the table; the read is not inside a branch
 * (llvmpipe compiles a load in a branch into a loop over the lanes there).
 */
const embeddingForwardWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;    // read, [B*S]
@group(0) @binding(2) var<storage, read_write> table: array<${t}>;  // read, Em [V, d]
@group(0) @binding(3) var<storage, read_write> out: array<${t}>;    // h [B*S, d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;
  if (i >= sizes.x * d) { return; }
  let id = ids[i / d];
  let valid = id >= 0 && u32(id) < sizes.z;
  let value = table[select(0u, u32(id), valid) * d + i % d];
  out[i] = select(${t}(0.0), value, valid);
}
`;

/** Rows summed by one invocation of the first backward kernel. */
export const EMBEDDING_SEGMENT_ROWS = 32;

/**
 * Backward, part 1: the plan's rows are cut into segments of at most
 * {@link EMBEDDING_SEGMENT_ROWS} consecutive entries of one token; one
 * invocation per (segment s, channel c) writes
 * `partials[s, c] = sum of dOut[positions[p], c]` over
 * p = segStart[s] .. segStart[s+1]-1 in order. Bounding each invocation's loop
 * keeps a frequent token (silence, say) from serialising the step.
 * sizes = (n distinct tokens, d, segments).
 */
const embeddingSegmentsWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dOut", t, mode)} // dh [B*S, d]
@group(0) @binding(2) var<storage, read_write> positions: array<u32>;  // read, plan rows
@group(0) @binding(3) var<storage, read_write> segStart: array<u32>;   // read, [segments + 1]
@group(0) @binding(4) var<storage, read_write> partials: array<${t}>;  // [segments, d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;  // in elements of ${t}
  if (i >= sizes.z * d) { return; }
  let segment = i / d;
  let c = i % d;
  var sum = ${t}(0.0);
  for (var p = segStart[segment]; p < segStart[segment + 1u]; p++) {
    sum += dOutAt(positions[p] * d + c);
  }
  partials[i] = sum;
}
`;

/**
 * Backward, part 2: one invocation per (distinct token k, channel c) adds its
 * segments' partials, in order, into the table:
 * `dTable[tokens[k], c] += sum of partials[s, c]` over
 * s = tokenSeg[k] .. tokenSeg[k+1]-1. Rows of tokens absent from the batch, and
 * the padding row 0, are not touched. sizes = (n, d, segments).
 */
const embeddingTokensWgsl = (t: ElementType) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<${t}>;  // read, [segments, d]
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;    // read, [n]
@group(0) @binding(3) var<storage, read_write> tokenSeg: array<u32>;  // read, [n + 1]
@group(0) @binding(4) var<storage, read_write> dTable: array<${t}>;   // dEm [V, d], accumulated
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;  // in elements of ${t}
  if (i >= sizes.x * d) { return; }
  let k = i / d;
  let c = i % d;
  var sum = ${t}(0.0);
  for (var segment = tokenSeg[k]; segment < tokenSeg[k + 1u]; segment++) {
    sum += partials[segment * d + c];
  }
  let at = tokens[k] * d + c;
  dTable[at] = dTable[at] + sum;
}
`;

/**
 * Segments of at most {@link EMBEDDING_SEGMENT_ROWS} plan entries, never
 * spanning two tokens: `segStart [segments + 1]` (entry indices into
 * `positions`) and `tokenSeg [n + 1]` (each token's first segment).
 */
function planSegments(
  plan: EmbeddingGradientPlan,
): { segStart: Uint32Array<ArrayBuffer>; tokenSeg: Uint32Array<ArrayBuffer> } {
  const n = plan.tokens.length;
  const tokenSeg = new Uint32Array(n + 1);
  let segments = 0;
  for (let k = 0; k < n; k++) {
    tokenSeg[k] = segments;
    segments += Math.ceil((plan.offsets[k + 1] - plan.offsets[k]) / EMBEDDING_SEGMENT_ROWS);
  }
  tokenSeg[n] = segments;
  const segStart = new Uint32Array(segments + 1);
  let j = 0;
  for (let k = 0; k < n; k++) {
    for (let p = plan.offsets[k]; p < plan.offsets[k + 1]; p += EMBEDDING_SEGMENT_ROWS) {
      segStart[j++] = p;
    }
  }
  segStart[segments] = plan.offsets[n];
  return { segStart, tokenSeg };
}

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
  const [t, width] = channelGroups(d); // width: the row's length in elements of t
  return createElementStep(gpu, {
    label,
    cacheKey: `${label}:${t}`,
    code: embeddingForwardWgsl(t),
    buffers: [buffers.ids, buffers.table, buffers.out],
    count: (dims) => checkedRows(label, dims, maxRows) * width,
    sizes: (dims) => [dims.B * dims.S, width, V],
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
 * `dTable[v, :] += sum over the rows r with ids[r] = v of dOut[r, :]` for every
 * non-padding token v of the batch, in a fixed order: rows ascending within
 * segments of {@link EMBEDDING_SEGMENT_ROWS}, then the segments in order.
 * `encode` checks the plan, cuts it into segments and uploads both
 * (queue.writeBuffer into buffers this step owns), then records two
 * dispatches.
 */
export function createEmbeddingBackward(
  gpu: Gpu,
  buffers: EmbeddingBackwardBuffers,
): GpuStep<EmbeddingBackwardDims> {
  const label = "embedding.backward";
  const { V, d, maxRows } = buffers;
  const maxTokens = Math.min(V, maxRows);
  // Each token's last segment may be short: at most one extra segment per token.
  const maxSegments = Math.min(maxRows, maxTokens + Math.ceil(maxRows / EMBEDDING_SEGMENT_ROWS));
  const owned = {
    tokens: createStorageBuffer(gpu, maxTokens * 4, `${label}:tokens`),
    positions: createStorageBuffer(gpu, maxRows * 4, `${label}:positions`),
    segStart: createStorageBuffer(gpu, (maxSegments + 1) * 4, `${label}:segStart`),
    tokenSeg: createStorageBuffer(gpu, (maxTokens + 1) * 4, `${label}:tokenSeg`),
    partials: createStorageBuffer(gpu, maxSegments * d * 4, `${label}:partials`),
  };
  // Four channels per invocation where d allows: the same sums per channel, in the same order.
  const [t, w] = channelGroups(d);
  // Sizes of the plan being encoded, set by `check`.
  let current = { n: 0, segments: 0, rows: 0 };
  const inner = createKernelSequence<EmbeddingBackwardDims>(gpu, {
    label,
    check: ({ plan }) => {
      const n = plan.tokens.length;
      checkSize(label, "distinct tokens", n, maxTokens);
      checkSize(label, "plan rows", plan.positions.length, maxRows);
      if (plan.offsets.length !== n + 1 || plan.offsets[n] !== plan.positions.length) {
        throw new RangeError(`${label}: plan offsets do not match its tokens and positions`);
      }
      if (n > 0 && plan.tokens[n - 1] >= V) {
        throw new RangeError(`${label}: plan token ${plan.tokens[n - 1]} is not below V = ${V}`);
      }
      const { segStart, tokenSeg } = planSegments(plan);
      let rows = 0; // rows of dOut the plan reads
      for (const r of plan.positions) rows = Math.max(rows, r + 1);
      current = { n, segments: segStart.length - 1, rows };
      if (n === 0) return;
      const q = gpu.device.queue;
      q.writeBuffer(owned.tokens, 0, plan.tokens);
      q.writeBuffer(owned.positions, 0, plan.positions);
      q.writeBuffer(owned.segStart, 0, segStart);
      q.writeBuffer(owned.tokenSeg, 0, tokenSeg);
    },
    kernels: [
      {
        cacheKey: `${label}.segments:${t}`,
        code: embeddingSegmentsWgsl(t, "storage"),
        buffers: [buffers.dOut, owned.positions, owned.segStart, owned.partials],
        workgroups: () => Math.ceil(current.segments * w / ELEMENT_WORKGROUP_SIZE),
        ...(t === "vec4<f32>" && {
          textureCode: embeddingSegmentsWgsl(t, textureInputMode(gpu)),
          textureInputs: [{
            index: 0,
            type: t,
            count: () => current.rows * w,
            maxCount: maxRows * w,
          }],
        }),
      },
      {
        cacheKey: `${label}.tokens:${t}`,
        code: embeddingTokensWgsl(t),
        buffers: [owned.partials, owned.tokens, owned.tokenSeg, buffers.dTable],
        workgroups: () => Math.ceil(current.n * w / ELEMENT_WORKGROUP_SIZE),
      },
    ],
    sizes: () => [current.n, w, current.segments],
  });
  return {
    encode: inner.encode,
    ...(inner.encodeCommands && { encodeCommands: inner.encodeCommands }),
    destroy() {
      inner.destroy();
      for (const b of Object.values(owned)) b.destroy();
    },
  };
}
