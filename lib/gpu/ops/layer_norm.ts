/**
 * LayerNorm over the last axis, `y = (x - mean) * rstd * gamma + beta` with
 * the biased variance and `rstd = 1 / sqrt(var + eps)` (PyTorch), forward and
 * backward. Every sum runs in a fixed order:
 *
 * - forward: one workgroup per row: each invocation sums channels lid,
 *   lid + WG, … in order, then a fixed tree across the workgroup; mean first,
 *   then the variance around it (two passes over the row, for accuracy).
 * - backward `dx`: the same per-row scheme for `sum(g)` and `sum(g xhat)`,
 *   `g = dy gamma`.
 * - backward `dgamma`, `dbeta`: per block of {@link LAYER_NORM_ROWS_PER_BLOCK}
 *   rows, one invocation per channel sums the block's rows in order into a
 *   partial; then one invocation per channel sums the partials in block order
 *   and ADDS the total into the gradient slot.
 *
 * @module
 */
import { createStorageBuffer, type Gpu, type GpuStep } from "../device.ts";
import {
  type BatchDims,
  type Binding,
  checkedRows,
  createKernelSequence,
  ELEMENT_INDEX_WGSL,
  ELEMENT_WORKGROUP_SIZE,
  entryWgsl,
  virtualWorkgroupSumWgsl,
  workgroupSumWgsl,
} from "./elementwise.ts";
import {
  type InputMode,
  inputWgsl,
  type TextureInput,
  textureInputMode,
} from "./texture_inputs.ts";

/**
 * Invocations per workgroup of the per-row kernels (one workgroup per row):
 * 64 on a hardware GPU; 16 on a software adapter, where llvmpipe runs a
 * workgroup as 8-wide SIMD coroutines and every barrier of the reduction
 * switches all of them (16 measured ~3x faster than 64 at d = 128).
 */
export function layerNormRowWorkgroupSize(gpu: Gpu): number {
  return gpu.isFallback ? 16 : 64;
}

/** Rows per partial of the dgamma/dbeta reduction. */
export const LAYER_NORM_ROWS_PER_BLOCK = 64;

/** PyTorch's default epsilon, SamOut's value. */
export const LAYER_NORM_EPS = 1e-5;

// sizes = (R rows, d, row blocks, f32 bits of eps) in every kernel.

/** Forward, one workgroup of `wg` invocations per row: x → y, mean, rstd. */
const layerNormForwardWgsl = (wg: number) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;      // read, [R, d]
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;  // read, [d]
@group(0) @binding(3) var<storage, read_write> beta: array<f32>;   // read, [d]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;      // [R, d]
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;   // [R]
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;   // [R]
${ELEMENT_INDEX_WGSL}
${workgroupSumWgsl("f32", wg)}
${entryWgsl(wg)} {
  let row = flatWorkgroup(wid, nwg);
  let d = sizes.y;
  if (row >= sizes.x) { return; }
  let base = row * d;
  var local = 0.0;
  for (var c = lid; c < d; c += ${wg}u) { local += x[base + c]; }
  let mu = workgroupSum(lid, local) / f32(d);
  local = 0.0;
  for (var c = lid; c < d; c += ${wg}u) {
    let centred = x[base + c] - mu;
    local += centred * centred;
  }
  let rs = 1.0 / sqrt(workgroupSum(lid, local) / f32(d) + bitcast<f32>(sizes.w));
  for (var c = lid; c < d; c += ${wg}u) {
    y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c];
  }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}
`;

/**
 * Backward dx, one workgroup of `wg` invocations per row:
 * `dx = rstd (g - mean(g) - xhat mean(g xhat))`, `g = dy gamma`,
 * `xhat = (x - mean) rstd`.
 */
const layerNormBackwardDxWgsl = (wg: number) => /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> dy: array<f32>;     // read, [R, d]
@group(0) @binding(2) var<storage, read_write> x: array<f32>;      // read, [R, d]
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;  // read, [d]
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;   // read, [R]
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;   // read, [R]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;     // [R, d], overwritten
${ELEMENT_INDEX_WGSL}
${workgroupSumWgsl("vec2<f32>", wg)}
${entryWgsl(wg)} {
  let row = flatWorkgroup(wid, nwg);
  let d = sizes.y;
  if (row >= sizes.x) { return; }
  let base = row * d;
  let mu = mean[row];
  let rs = rstd[row];
  // (sum g, sum g xhat) over this invocation's channels.
  var local = vec2<f32>(0.0, 0.0);
  for (var c = lid; c < d; c += ${wg}u) {
    let g = dy[base + c] * gamma[c];
    local += vec2<f32>(g, g * (x[base + c] - mu) * rs);
  }
  let means = workgroupSum(lid, local) / f32(d);
  for (var c = lid; c < d; c += ${wg}u) {
    let xhat = (x[base + c] - mu) * rs;
    dx[base + c] = rs * (dy[base + c] * gamma[c] - means.x - xhat * means.y);
  }
}
`;

/** Rows (one per invocation) per workgroup of the row-per-invocation kernels. */
const ROW_INVOCATIONS_WG = 64;

/**
 * The accumulators of a row-per-invocation kernel standing in for `wg`
 * invocations (`ks` = 0 .. wg/4 - 1) and `each(body)`: the statements of one
 * step of the loop over channel blocks `c` (of `wg` channels), body(k) for the
 * vec4 at c + 4k, guarded where that may pass d.
 */
function virtualChannels(wg: number) {
  const ks = Array.from({ length: wg / 4 }, (_, k) => k);
  const each = (body: (k: number) => string) =>
    ks.map((k) => k === 0 ? `    ${body(k)}` : `    if (c + ${4 * k}u < d) { ${body(k)} }`)
      .join("\n");
  return { ks, each };
}

/**
 * The tree sum of `wg` virtual invocations and the entry point of a
 * row-per-invocation kernel, up to its row's `d` and first vec4 `base`.
 */
function rowEntryWgsl(wg: number): string {
  return `${virtualWorkgroupSumWgsl(wg, "tree")}
${entryWgsl(ROW_INVOCATIONS_WG)} {
  let row = (wid.y * nwg.x + wid.x) * ${ROW_INVOCATIONS_WG}u + lid;
  let d = sizes.y;
  if (row >= sizes.x) { return; }
  let base = row * d / 4u;`;
}

/**
 * Forward, one invocation per row (software adapters, d % 4 == 0): the bits
 * of {@link layerNormForwardWgsl}`(wg)` (see {@link virtualWorkgroupSumWgsl}).
 */
const layerNormForwardRowsWgsl = (wg: number, mode: InputMode = "storage") => {
  const { ks, each } = virtualChannels(wg);
  const accs = ks.map((k) => `a${k}`).join(", ");
  return /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "x", "vec4<f32>", mode)} // [R, d]
${inputWgsl(2, "gamma", "vec4<f32>", mode)} // [d]
${inputWgsl(3, "beta", "vec4<f32>", mode)} // [d]
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;      // [R, d]
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;         // [R]
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;         // [R]
${rowEntryWgsl(wg)}
  ${ks.map((k) => `var a${k} = vec4<f32>(0.0);`).join(" ")}
  for (var c = 0u; c < d; c += ${wg}u) {
${each((k) => `a${k} += xAt(base + (c + ${4 * k}u) / 4u);`)}
  }
  let mu = tree(${accs}) / f32(d);
  ${ks.map((k) => `a${k} = vec4<f32>(0.0);`).join(" ")}
  for (var c = 0u; c < d; c += ${wg}u) {
${
    each((k) =>
      `let c${k} = xAt(base + (c + ${4 * k}u) / 4u) - vec4<f32>(mu); a${k} += c${k} * c${k};`
    )
  }
  }
  let rs = 1.0 / sqrt(tree(${accs}) / f32(d) + bitcast<f32>(sizes.w));
  for (var q = 0u; q < d / 4u; q++) {
    y[base + q] = (xAt(base + q) - vec4<f32>(mu)) * rs * gammaAt(q) + betaAt(q);
  }
  mean[row] = mu;
  rstd[row] = rs;
}
`;
};

/**
 * Backward dx, one invocation per row (software adapters, d % 4 == 0): the
 * bits of {@link layerNormBackwardDxWgsl}`(wg)`; the vec2 sums as two sets of
 * accumulators.
 */
const layerNormBackwardDxRowsWgsl = (wg: number, mode: InputMode = "storage") => {
  const { ks, each } = virtualChannels(wg);
  return /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", "vec4<f32>", mode)} // [R, d]
${inputWgsl(2, "x", "vec4<f32>", mode)} // [R, d]
${inputWgsl(3, "gamma", "vec4<f32>", mode)} // [d]
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;         // read, [R]
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;         // read, [R]
@group(0) @binding(6) var<storage, read_write> dx: array<vec4<f32>>;     // [R, d], overwritten
${rowEntryWgsl(wg)}
  let mu = mean[row];
  let rs = rstd[row];
  ${ks.map((k) => `var g${k} = vec4<f32>(0.0); var h${k} = vec4<f32>(0.0);`).join(" ")}
  for (var c = 0u; c < d; c += ${wg}u) {
${
    each((k) =>
      `let q${k} = base + (c + ${4 * k}u) / 4u; let e${k} = dyAt(q${k}) * gammaAt((c + ${
        4 * k
      }u) / 4u); g${k} += e${k}; h${k} += e${k} * (xAt(q${k}) - vec4<f32>(mu)) * rs;`
    )
  }
  }
  let means = vec2<f32>(tree(${ks.map((k) => `g${k}`).join(", ")}), tree(${
    ks.map((k) => `h${k}`).join(", ")
  })) / f32(d);
  for (var q = 0u; q < d / 4u; q++) {
    let xhat = (xAt(base + q) - vec4<f32>(mu)) * rs;
    dx[base + q] = rs * (dyAt(base + q) * gammaAt(q) - vec4<f32>(means.x) - xhat * means.y);
  }
}
`;
};

/**
 * Backward partials, one invocation per (block, channel):
 * `partials[block, 0, c] = sum over the block's rows (in order) of dy xhat`,
 * `partials[block, 1, c] = ... of dy`. With `vec4` (d % 4 == 0) an invocation
 * takes four neighbouring channels: the same sums per channel, in the same order.
 */
const layerNormPartialsWgsl = (vec4: boolean, mode: InputMode = "storage") => {
  const t = vec4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
${inputWgsl(1, "dy", t, mode)} // [R, d]
${inputWgsl(2, "x", t, mode)} // [R, d]
${inputWgsl(3, "mean", "f32", mode)} // [R]
${inputWgsl(4, "rstd", "f32", mode)} // [R]
@group(0) @binding(5) var<storage, read_write> partials: array<${t}>;  // [blocks, 2, d]
${ELEMENT_INDEX_WGSL}
${entryWgsl(ELEMENT_WORKGROUP_SIZE)} {
  let i = elementIndex(wid, nwg, lid);
  let R = sizes.x;
  let d = sizes.y / ${vec4 ? 4 : 1}u;  // elements of ${t} per row
  if (i >= sizes.z * d) { return; }
  let block = i / d;
  let c = i % d;
  let first = block * ${LAYER_NORM_ROWS_PER_BLOCK}u;
  let last = min(first + ${LAYER_NORM_ROWS_PER_BLOCK}u, R);
  var dgamma = ${t}(0.0);
  var dbeta = ${t}(0.0);
  for (var r = first; r < last; r++) {
    let g = dyAt(r * d + c);
    dgamma += g * (xAt(r * d + c) - meanAt(r)) * rstdAt(r);
    dbeta += g;
  }
  partials[(block * 2u) * d + c] = dgamma;
  partials[(block * 2u + 1u) * d + c] = dbeta;
}
`;
};

/**
 * Backward reduce, one invocation per (parameter, channel), summing the
 * partials in block order: `dgamma[c] += sum_block partials[block, 0, c]`,
 * `dbeta[c] += sum_block partials[block, 1, c]`.
 */
const LAYER_NORM_REDUCE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<uniform> sizes: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;  // read, [blocks, 2, d]
@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;    // [d], accumulated
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;     // [d], accumulated
${ELEMENT_INDEX_WGSL}
${entryWgsl(ELEMENT_WORKGROUP_SIZE)} {
  let i = elementIndex(wid, nwg, lid);
  let d = sizes.y;
  if (i >= 2u * d) { return; }
  let which = i / d;
  let c = i % d;
  var sum = 0.0;
  for (var block = 0u; block < sizes.z; block++) {
    sum += partials[(block * 2u + which) * d + c];
  }
  if (which == 0u) {
    dgamma[c] = dgamma[c] + sum;
  } else {
    dbeta[c] = dbeta[c] + sum;
  }
}
`;

function sizesOf(rows: number, d: number, eps: number): number[] {
  const epsBits = new Uint32Array(new Float32Array([eps]).buffer)[0];
  return [rows, d, Math.ceil(rows / LAYER_NORM_ROWS_PER_BLOCK), epsBits];
}

/** Buffers and sizes of {@link createLayerNormForward}. */
export interface LayerNormForwardBuffers {
  /** Input `[B*S, d]` f32. */
  x: Binding;
  /** Scale `[d]` f32 (`layer_norm.weight`, a slice of the parameter buffer). */
  gamma: Binding;
  /** Shift `[d]` f32 (`layer_norm.bias`). */
  beta: Binding;
  /** Output `[B*S, d]` f32. */
  y: Binding;
  /** Row means `[B*S]` f32, kept for the backward pass. */
  mean: Binding;
  /** Row `1 / sqrt(var + eps)` `[B*S]` f32, kept for the backward pass. */
  rstd: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Default {@link LAYER_NORM_EPS}. */
  eps?: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
  /** See {@link rowPerInvocation}; default: where it applies. */
  rowPerInvocation?: boolean;
  /** Read the inputs through texture copies (texture_inputs.ts); default: on software adapters. */
  textureReads?: boolean;
}

/**
 * Whether the per-row kernels run one invocation per row, reading four
 * channels at a time, instead of one workgroup per row: on software adapters
 * (16 invocations per row, where llvmpipe pays for every barrier of the
 * workgroup sum and a vec4 load costs about what a scalar one does) when
 * d % 4 == 0. Same bits either way (layer_norm_test.ts compares them).
 */
function rowPerInvocation(gpu: Gpu, d: number, requested?: boolean): boolean {
  const wg = layerNormRowWorkgroupSize(gpu);
  return (requested ?? wg === 16) && d % 4 === 0 && wg % 4 === 0;
}

/** A `[R, d]` input (d % 4 == 0) read through a texture copy (texture_inputs.ts). */
function rowsInput(index: number, d: number, maxRows: number): TextureInput<BatchDims> {
  return {
    index,
    type: "vec4<f32>",
    count: (dims) => dims.B * dims.S * d / 4,
    maxCount: maxRows * d / 4,
  };
}

/**
 * A `[d]` parameter (d % 4 == 0) read through a texture copy: every invocation
 * reads the same element in the same step, which llvmpipe serves from a
 * storage buffer one lane at a time (about 800 cycles a SIMD group, against
 * about 40 for a texel gather of the copy).
 */
function vectorInput(index: number, d: number): TextureInput<BatchDims> {
  return { index, type: "vec4<f32>", count: () => d / 4, maxCount: d / 4 };
}

/**
 * A `[R]` row statistic (mean, rstd) read through a texture copy, four rows a
 * texel: its buffer must hold a multiple of 4 floats (see
 * {@link LayerNormBackwardBuffers.mean}).
 */
function rowStatInput(index: number, maxRows: number): TextureInput<BatchDims> {
  return {
    index,
    type: "f32",
    count: (dims) => Math.ceil(dims.B * dims.S / 4),
    maxCount: Math.ceil(maxRows / 4),
  };
}

/** LayerNorm forward over rows of `x` (see the module doc). */
export function createLayerNormForward(
  gpu: Gpu,
  buffers: LayerNormForwardBuffers,
): GpuStep<BatchDims> {
  const label = "layer_norm.forward";
  const { d, maxRows } = buffers;
  const eps = buffers.eps ?? LAYER_NORM_EPS;
  const wg = layerNormRowWorkgroupSize(gpu);
  const perRow = rowPerInvocation(gpu, d, buffers.rowPerInvocation);
  return createKernelSequence<BatchDims>(gpu, {
    label,
    kernels: [{
      cacheKey: `${label}.wg${wg}${perRow ? ".rows" : ""}`,
      code: perRow ? layerNormForwardRowsWgsl(wg) : layerNormForwardWgsl(wg),
      buffers: [buffers.x, buffers.gamma, buffers.beta, buffers.y, buffers.mean, buffers.rstd],
      ...(perRow && {
        textureCode: layerNormForwardRowsWgsl(wg, textureInputMode(gpu)),
        textureInputs: [rowsInput(0, d, maxRows), vectorInput(1, d), vectorInput(2, d)],
      }),
      workgroups: (dims) => {
        const rows = checkedRows(label, dims, maxRows);
        return perRow ? Math.ceil(rows / ROW_INVOCATIONS_WG) : rows;
      },
    }],
    sizes: (dims) => sizesOf(dims.B * dims.S, d, eps),
    textureReads: buffers.textureReads,
  });
}

/** Buffers and sizes of {@link createLayerNormBackward}. */
export interface LayerNormBackwardBuffers {
  /** Gradient of y `[B*S, d]` f32. */
  dy: Binding;
  /** The forward's input `[B*S, d]` f32. */
  x: Binding;
  /** Scale `[d]` f32. */
  gamma: Binding;
  /**
   * The forward's `mean [B*S]` f32, in a buffer of a multiple of 4 floats (at
   * least `maxRows`): the texture form copies whole texels of 4 rows.
   */
  mean: Binding;
  /** The forward's `rstd [B*S]` f32, sized like `mean`. */
  rstd: Binding;
  /** Gradient of x `[B*S, d]` f32, overwritten. */
  dx: Binding;
  /** Gradient of gamma `[d]` f32 (gradient buffer slice), ADDED to. */
  dgamma: Binding;
  /** Gradient of beta `[d]` f32 (gradient buffer slice), ADDED to. */
  dbeta: Binding;
  /** Hidden size d (channels per row). */
  d: number;
  /** Largest B*S this step will be encoded with. */
  maxRows: number;
  /** See {@link rowPerInvocation}; default: where it applies. */
  rowPerInvocation?: boolean;
  /** Read the inputs through texture copies (texture_inputs.ts); default: on software adapters. */
  textureReads?: boolean;
}

/**
 * LayerNorm backward: dx (overwritten), and dgamma, dbeta added into their
 * slots. Owns a partials buffer of `ceil(maxRows / 64) * 2 * d` f32.
 */
export function createLayerNormBackward(
  gpu: Gpu,
  buffers: LayerNormBackwardBuffers,
): GpuStep<BatchDims> {
  const label = "layer_norm.backward";
  const { d, maxRows } = buffers;
  const wg = layerNormRowWorkgroupSize(gpu);
  const maxBlocks = Math.max(1, Math.ceil(maxRows / LAYER_NORM_ROWS_PER_BLOCK));
  const partials = createStorageBuffer(gpu, maxBlocks * 2 * d * 4, `${label}:partials`);
  const vec4 = d % 4 === 0;
  const perRow = rowPerInvocation(gpu, d, buffers.rowPerInvocation);
  const blocks = (dims: BatchDims) => Math.ceil(dims.B * dims.S / LAYER_NORM_ROWS_PER_BLOCK);
  const inner = createKernelSequence<BatchDims>(gpu, {
    label,
    check: (dims) => checkedRows(label, dims, maxRows),
    kernels: [
      {
        cacheKey: `${label}.dx.wg${wg}${perRow ? ".rows" : ""}`,
        code: perRow ? layerNormBackwardDxRowsWgsl(wg) : layerNormBackwardDxWgsl(wg),
        buffers: [buffers.dy, buffers.x, buffers.gamma, buffers.mean, buffers.rstd, buffers.dx],
        ...(perRow && {
          textureCode: layerNormBackwardDxRowsWgsl(wg, textureInputMode(gpu)),
          textureInputs: [rowsInput(0, d, maxRows), rowsInput(1, d, maxRows), vectorInput(2, d)],
        }),
        workgroups: (dims) =>
          perRow ? Math.ceil(dims.B * dims.S / ROW_INVOCATIONS_WG) : dims.B * dims.S,
      },
      {
        cacheKey: `${label}.partials.${vec4 ? "v4" : "s"}`,
        code: layerNormPartialsWgsl(vec4),
        buffers: [buffers.dy, buffers.x, buffers.mean, buffers.rstd, partials],
        ...(vec4 && {
          textureCode: layerNormPartialsWgsl(vec4, textureInputMode(gpu)),
          textureInputs: [
            rowsInput(0, d, maxRows),
            rowsInput(1, d, maxRows),
            rowStatInput(2, maxRows),
            rowStatInput(3, maxRows),
          ],
        }),
        workgroups: (dims) => Math.ceil(blocks(dims) * (vec4 ? d / 4 : d) / ELEMENT_WORKGROUP_SIZE),
      },
      {
        cacheKey: `${label}.reduce`,
        code: LAYER_NORM_REDUCE_WGSL,
        buffers: [partials, buffers.dgamma, buffers.dbeta],
        workgroups: (dims) => dims.B * dims.S === 0 ? 0 : Math.ceil(2 * d / ELEMENT_WORKGROUP_SIZE),
      },
    ],
    sizes: (dims) => sizesOf(dims.B * dims.S, d, LAYER_NORM_EPS),
    textureReads: buffers.textureReads,
  });
  return {
    encode: inner.encode,
    ...(inner.encodeCommands && { encodeCommands: inner.encodeCommands }),
    destroy() {
      inner.destroy();
      partials.destroy();
    },
  };
}
