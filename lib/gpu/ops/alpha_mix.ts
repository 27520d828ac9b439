/**
 * The learned residual mix before each layer's LayerNorm,
 * `r_in = alpha * f + (1 - alpha) * u` with one scalar `alpha` per layer, read
 * from the parameter buffer; forward and backward.
 *
 * The backward pass is three dispatches: an element-wise one writes
 * `df = alpha dy` and `du = (1 - alpha) dy` (vec4 stores when the count
 * allows: on llvmpipe a storage store is a loop over the SIMD lanes whatever
 * its width, and this kernel with scalar stores was the dearest element-wise
 * op of a step); the next sums `(f - u) dy` per chunk of
 * {@link ALPHA_MIX_CHUNK} elements (each invocation in element order, then a
 * fixed tree across the workgroup) and stores only the partial; the last, one
 * workgroup, sums the chunk partials in a fixed order and ADDS the total into
 * the alpha gradient slot.
 *
 * @module
 */
import { createStorageBuffer, encodeOutsidePass, type Gpu, type GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  createKernelSequence,
  createVectorizedStep,
  ELEMENT_ENTRY_WGSL,
  ELEMENT_INDEX_WGSL,
  ELEMENT_WORKGROUP_SIZE,
  type ElementType,
  entryWgsl,
  virtualWorkgroupSumWgsl,
  workgroupSumWgsl,
} from "./elementwise.ts";
import { type InputMode, inputWgsl, textureInputMode } from "./texture_inputs.ts";

/** Elements per invocation in the first backward dispatch. */
const ELEMENTS_PER_INVOCATION = 16;

/** Elements per partial sum of the alpha gradient (one workgroup's share). */
export const ALPHA_MIX_CHUNK = ELEMENT_WORKGROUP_SIZE * ELEMENTS_PER_INVOCATION;

/** Forward: sizes.x = n = B*S*d (in elements of T). */
const alphaMixForwardWgsl = (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "f", t, mode)} // [B, S, d]
${inputWgsl(2, "u", t, mode)} // [B, S, d]
@group(0) @binding(3) var<storage, read_write> alpha: array<f32>;  // read, [1]
@group(0) @binding(4) var<storage, read_write> y: array<${t}>;     // [B, S, d]
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let a = alpha[0];
  y[i] = a * fAt(i) + (1.0 - a) * uAt(i);
}
`;

/**
 * Backward, the element-wise part: sizes.x = n (in elements of T). With
 * `residual`, du also takes the gradient that reaches u around the mix
 * (`h = r + u`): `du = (1 - alpha) dy + residual`, the bits of adding it
 * afterwards.
 */
const alphaMixGradWgsl = (residual: boolean) => (t: ElementType, mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", t, mode)} // [B, S, d]
@group(0) @binding(2) var<storage, read_write> alpha: array<f32>;  // read, [1]
@group(0) @binding(3) var<storage, read_write> df: array<${t}>;   // [B, S, d], overwritten
@group(0) @binding(4) var<storage, read_write> du: array<${t}>;   // [B, S, d], overwritten
${residual ? `${inputWgsl(5, "residual", t, mode)} // [B, S, d]` : ""}
${ELEMENT_INDEX_WGSL}
${ELEMENT_ENTRY_WGSL} {
  let i = elementIndex(wid, nwg, lid);
  if (i >= sizes.x) { return; }
  let a = alpha[0];
  let g = dyAt(i);
  df[i] = a * g;
  du[i] = (1.0 - a) * g${residual ? " + residualAt(i)" : ""};
}
`;

/**
 * The bindings both forms of the alpha gradient's partial sums share (sizes =
 * (n, chunks); dy, f, u read as `type`; the partials) and the index helpers.
 */
const alphaSumBindingsWgsl = (type: "f32" | "vec4<f32>", mode: InputMode) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", type, mode)} // [B, S, d]
${inputWgsl(2, "f", type, mode)} // [B, S, d]
${inputWgsl(3, "u", type, mode)} // [B, S, d]
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;  // [chunks]
${ELEMENT_INDEX_WGSL}`;

/**
 * Backward, part 1 of the alpha gradient: one workgroup per chunk; invocation
 * lid sums elements chunk * CHUNK + k * WG + lid for k = 0, 1, … in order.
 * sizes = (n, chunks).
 */
const alphaMixBackwardWgsl = (mode: InputMode) => /* wgsl */ `
${alphaSumBindingsWgsl("f32", mode)}
${workgroupSumWgsl("f32", ELEMENT_WORKGROUP_SIZE)}
${ELEMENT_ENTRY_WGSL} {
  let chunk = flatWorkgroup(wid, nwg);
  if (chunk >= sizes.y) { return; }
  var sum = 0.0;
  for (var k = 0u; k < ${ELEMENTS_PER_INVOCATION}u; k++) {
    let i = chunk * ${ALPHA_MIX_CHUNK}u + k * ${ELEMENT_WORKGROUP_SIZE}u + lid;
    if (i < sizes.x) {
      sum += (fAt(i) - uAt(i)) * dyAt(i);
    }
  }
  let total = workgroupSum(lid, sum);
  if (lid == 0u) { partials[chunk] = total; }
}
`;

/** Chunks (invocations) per workgroup of {@link alphaMixChunksWgsl}: one SIMD group on llvmpipe. */
const CHUNKS_PER_WORKGROUP = 8;

/**
 * Backward, part 1 of the alpha gradient with one invocation per chunk
 * (texture form, n % 4 == 0): the sums of {@link alphaMixBackwardWgsl} in
 * the same order, hence the same bits. Accumulator `a{k}` holds the sums of
 * the workgroup's "virtual invocations" 4k .. 4k+3, which read neighbouring
 * elements, so each step reads one vec4 of dy, f and u per accumulator
 * instead of a texel per element; the tree is the workgroup's
 * ({@link virtualWorkgroupSumWgsl}), with no barriers. sizes = (n, chunks).
 */
const alphaMixChunksWgsl = (mode: InputMode) => {
  const ks = Array.from({ length: ELEMENT_WORKGROUP_SIZE / 4 }, (_, k) => k);
  const term = (k: number) => `a${k} += (fAt(q + ${k}u) - uAt(q + ${k}u)) * dyAt(q + ${k}u);`;
  return /* wgsl */ `
${alphaSumBindingsWgsl("vec4<f32>", mode)}
${virtualWorkgroupSumWgsl(ELEMENT_WORKGROUP_SIZE, "tree")}
${entryWgsl(CHUNKS_PER_WORKGROUP)} {
  let chunk = flatWorkgroup(wid, nwg) * ${CHUNKS_PER_WORKGROUP}u + lid;
  if (chunk >= sizes.y) { return; }
  let n4 = sizes.x / 4u;
  ${ks.map((k) => `var a${k} = vec4<f32>(0.0);`).join(" ")}
  for (var step = 0u; step < ${ELEMENTS_PER_INVOCATION}u; step++) {
    let q = (chunk * ${ALPHA_MIX_CHUNK}u + step * ${ELEMENT_WORKGROUP_SIZE}u) / 4u;
    if (q >= n4) { break; }
    if (q + ${ks.length}u <= n4) {
${ks.map((k) => `      ${term(k)}`).join("\n")}
    } else {
${ks.map((k) => `      if (q + ${k}u < n4) { ${term(k)} }`).join("\n")}
    }
  }
  partials[chunk] = tree(${ks.map((k) => `a${k}`).join(", ")});
}
`;
};

/** Backward, part 2: one workgroup; invocation lid sums chunks lid, lid + WG, … */
const ALPHA_MIX_REDUCE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;  // read, [chunks]
@group(0) @binding(2) var<storage, read_write> dalpha: array<f32>;    // [1], accumulated
${workgroupSumWgsl("f32", ELEMENT_WORKGROUP_SIZE)}
${ELEMENT_ENTRY_WGSL} {
  var sum = 0.0;
  for (var chunk = lid; chunk < sizes.y; chunk += ${ELEMENT_WORKGROUP_SIZE}u) {
    sum += partials[chunk];
  }
  let total = workgroupSum(lid, sum);
  if (lid == 0u) { dalpha[0] = dalpha[0] + total; }
}
`;

/** Buffers and sizes of {@link createAlphaMixForward}. */
export interface AlphaMixForwardBuffers {
  /** Feed-forward output `[B, S, d]` f32. */
  f: Binding;
  /** Layer input `u` `[B, S, d]` f32. */
  u: Binding;
  /** `alpha` `[1]` f32 (a slice of the parameter buffer). */
  alpha: Binding;
  /** `alpha f + (1 - alpha) u` `[B, S, d]` f32. */
  y: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/** `y = alpha f + (1 - alpha) u`. */
export function createAlphaMixForward(
  gpu: Gpu,
  buffers: AlphaMixForwardBuffers,
): GpuStep<BatchDims> {
  const label = "alpha_mix.forward";
  const { d, maxRows } = buffers;
  return createVectorizedStep(gpu, {
    label,
    code: alphaMixForwardWgsl,
    buffers: [buffers.f, buffers.u, buffers.alpha, buffers.y],
    count: (dims) => checkedRows(label, dims, maxRows) * d,
    textureInputs: [0, 1],
    maxCount: maxRows * d,
  });
}

/** Buffers and sizes of {@link createAlphaMixBackward}. */
export interface AlphaMixBackwardBuffers {
  /** Gradient of y `[B, S, d]` f32. */
  dy: Binding;
  /** The forward's f `[B, S, d]` f32. */
  f: Binding;
  /** The forward's u `[B, S, d]` f32. */
  u: Binding;
  /** `alpha` `[1]` f32 (parameter buffer slice). */
  alpha: Binding;
  /** Gradient of f `[B, S, d]` f32, overwritten. */
  df: Binding;
  /** Gradient of u through the mix (plus `residual`) `[B, S, d]` f32, overwritten. */
  du: Binding;
  /**
   * The gradient that reaches u around the mix, added to du (the layer's
   * `h = r + u`: the gradient of h) `[B, S, d]` f32; none: du is the mix's
   * share alone.
   */
  residual?: Binding;
  /** Gradient of alpha `[1]` f32 (gradient buffer slice), ADDED to. */
  dalpha: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
}

/**
 * `df = alpha dy`, `du = (1 - alpha) dy (+ residual)`, `dalpha += sum (f - u) dy`. Owns a
 * partials buffer of `ceil(maxRows * d / 4096)` f32.
 */
export function createAlphaMixBackward(
  gpu: Gpu,
  buffers: AlphaMixBackwardBuffers,
): GpuStep<BatchDims> {
  const label = "alpha_mix.backward";
  const { d, maxRows } = buffers;
  const chunks = (dims: BatchDims) => Math.ceil(dims.B * dims.S * d / ALPHA_MIX_CHUNK);
  const partials = createStorageBuffer(
    gpu,
    Math.max(1, Math.ceil(maxRows * d / ALPHA_MIX_CHUNK)) * 4,
    `${label}:partials`,
  );
  const inner = createKernelSequence<BatchDims>(gpu, {
    label,
    check: (dims) => checkedRows(label, dims, maxRows),
    kernels: [
      {
        cacheKey: label,
        code: alphaMixBackwardWgsl("storage"),
        buffers: [buffers.dy, buffers.f, buffers.u, partials],
        workgroups: chunks,
        // Texture form: dy, f and u read from texture copies (whole texels:
        // d % 4 == 0), one invocation per chunk.
        ...(d % 4 === 0 && {
          textureCode: alphaMixChunksWgsl(textureInputMode(gpu)),
          textureWorkgroups: (dims: BatchDims) => Math.ceil(chunks(dims) / CHUNKS_PER_WORKGROUP),
          textureInputs: [0, 1, 2].map((index) => ({
            index,
            type: "vec4<f32>" as const,
            count: (dims: BatchDims) => dims.B * dims.S * d / 4,
            maxCount: maxRows * d / 4,
          })),
        }),
      },
      {
        cacheKey: `${label}.reduce`,
        code: ALPHA_MIX_REDUCE_WGSL,
        buffers: [partials, buffers.dalpha],
        workgroups: (dims) => chunks(dims) === 0 ? 0 : 1,
      },
    ],
    sizes: (dims) => [dims.B * dims.S * d, chunks(dims)],
  });
  const residual = buffers.residual !== undefined;
  const grads = createVectorizedStep<BatchDims>(gpu, {
    label: `${label}.grads${residual ? ".residual" : ""}`,
    code: alphaMixGradWgsl(residual),
    buffers: [
      buffers.dy,
      buffers.alpha,
      buffers.df,
      buffers.du,
      ...(residual ? [buffers.residual!] : []),
    ],
    count: (dims) => checkedRows(label, dims, maxRows) * d,
    textureInputs: residual ? [0, 4] : [0],
    maxCount: maxRows * d,
  });
  const parts = [grads, inner];
  const step: GpuStep<BatchDims> = {
    encode(pass, dims) {
      for (const p of parts) p.encode(pass, dims);
    },
    destroy() {
      for (const p of parts) p.destroy();
      partials.destroy();
    },
  };
  if (parts.some((p) => p.encodeCommands)) {
    step.encodeCommands = (enc, dims) => {
      for (const p of parts) encodeOutsidePass(p, enc, dims, label);
    };
  }
  return step;
}
