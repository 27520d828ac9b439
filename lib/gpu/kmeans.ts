/**
 * k-means on WebGPU: the codebook of the mel-vq tokenizer.
 *
 * - Initialisation is k-means++ on the host, seeded from `lib/random`. For
 *   large inputs it runs over a seeded subsample of `max(4096, 4 K)` frames
 *   (the Lloyd iterations that follow use every frame, so the subsample only
 *   affects the starting point). Each new centre's distances skip the frames
 *   that the triangle inequality shows cannot move to it (exact: the same
 *   picks as the plain loop).
 * - The Lloyd iterations run on the GPU without the host: per iteration
 *   `update_centroids` (member means, f32 sums in frame order; one workgroup),
 *   `reseed_empty` (a cluster left empty takes the frame farthest from its own
 *   centroid, ties to the lowest frame index; that frame then counts as
 *   distance 0, so several empty clusters take distinct frames),
 *   `scan_nearest` (squared Euclidean distance summed in a fixed order, ties to
 *   the lowest index) and `lloyd_step` (inertia and changed assignments summed
 *   in a fixed order by one workgroup; it decides whether to stop). Once it
 *   stops it zeroes the indirect dispatch sizes of the next iterations'
 *   kernels, so the iterations already encoded do nothing. The host encodes
 *   {@link ITERATIONS_PER_SUBMIT} iterations per submit and reads the state,
 *   codebook and assignment back after each: a GPU round trip costs >= 10 ms
 *   on llvmpipe, about an iteration's kernels (at K = 256, N = 4369, D = 40
 *   on the 2-core Zen 3 development machine: ~6 ms the scan, ~4.5 ms the
 *   centroid update, ~2 ms the rest).
 * - On software adapters the scan reads frames and centroids as images
 *   (texture copies, as the training graph's inputs are): llvmpipe turns
 *   each storage-buffer load into a loop over the SIMD lanes, which made the
 *   scan ~42 ms there. The frames are written into their texture once, the
 *   codebook copied into its texture before each scan; the values read are
 *   the same, so the bytes are ({@link ScanReads}).
 * - No float atomics anywhere and every sum in a fixed order, so the same
 *   input and seed give the same bytes.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import {
  bindBuffers,
  cachedPipeline,
  createStorageBuffer,
  createStorageBufferFrom,
  createUniformBuffer,
  type Gpu,
} from "./device.ts";
import { isSoftwareAdapter } from "./device.ts";
import {
  createInputTexture,
  encodeInputCopy,
  inputWgsl,
  TEXTURE_INPUT_WIDTH,
  textureInputFits,
  writeInputTexture,
} from "./ops/texture_inputs.ts";

/** Options of {@link fitKMeans}. */
export interface KMeansOptions {
  /** Seed of the k-means++ initialisation (and its subsample). */
  seed: number;
  /** Maximum number of Lloyd iterations (each = a centroid update and a full assignment). */
  iterations: number;
  /**
   * Stop when an iteration lowers the inertia by less than this fraction of
   * it (e.g. 1e-4), or when no assignment changes.
   */
  tolerance: number;
  /** Starting `[K, D]` codebook instead of k-means++ (a warm start); `seed` is then unused. */
  initialCodebook?: Float32Array;
  /**
   * `[M, D]` f32 frames outside the fit to assign to the final codebook as
   * well ({@link KMeansResult.extraAssignment}): scanned in the fit's last
   * submit, which saves a GPU round trip over a later {@link assignNearest}.
   */
  assignAlso?: Float32Array;
  /**
   * How the nearest-centroid scan reads frames and centroids (default
   * {@link defaultScanReads}); the same values either way, so the same bytes.
   */
  reads?: ScanReads;
}

/**
 * How the nearest-centroid scan reads its frames and centroids: from their
 * storage buffers, or from texture copies read as images ("image", as the
 * training graph's inputs are on software adapters: lib/gpu/ops/texture_inputs.ts).
 * The values read are the same, so the result is the same bytes.
 */
export type ScanReads = "storage" | "image";

/**
 * "image" on software adapters, where llvmpipe (Mesa 22.3) runs every
 * storage-buffer load as a loop over the SIMD lanes and a texel fetch as a
 * straight-line gather: on the 2-core Zen 3 development machine a scan at K
 * = 256, D = 40 over 4,369 frames took ~42 ms from storage and ~6 ms from
 * images. "storage" on GPUs (not timed there yet).
 */
export function defaultScanReads(gpu: Gpu): ScanReads {
  return isSoftwareAdapter(gpu) ? "image" : "storage";
}

/** The result of {@link fitKMeans}. */
export interface KMeansResult {
  /** `[K, D]` f32 row-major centroids. */
  codebook: Float32Array;
  /** `[N]` u32: each frame's nearest entry of `codebook` (the GPU's last assignment). */
  assignment: Uint32Array;
  /** `[M]` u32: the nearest entry of `codebook` for each of `options.assignAlso` (empty without). */
  extraAssignment: Uint32Array;
  /** Sum over frames of the squared distance to their entry of `codebook` (f64 on the host). */
  inertia: number;
  /** Lloyd iterations run. */
  iterations: number;
  /** How the scan read its operands (images unless one of them did not fit a texture). */
  reads: ScanReads;
}

/**
 * Lloyd iterations encoded per GPU submit; the host reads the stop flag
 * between submits. Iterations encoded after the stop cost nothing measurable
 * (dispatches of 0 workgroups), while each extra submit costs a >= 10 ms round
 * trip; the synth set stops after ~10 at the default tolerance.
 */
export const ITERATIONS_PER_SUBMIT = 16;

/**
 * Register tiling of the nearest-centroid scan: an invocation scores `rows`
 * frames against `cols` centroids per pass over the frame width, a workgroup
 * is `workgroup` invocations. llvmpipe runs a workgroup as 8-lane SIMD groups
 * and turns every storage load into a per-lane loop, so its run time follows
 * the loads per distance term, `(rows + cols) / (rows * cols)`; GPUs want
 * small blocks and wide workgroups.
 */
interface ScanTile {
  rows: number;
  cols: number;
  workgroup: number;
}

/**
 * llvmpipe: 8 x 8 blocks, one SIMD group per workgroup. Measured on 2 shared
 * cores at K = 256, D = 40: ~1.1 ms per 1000 frames scanned (~9 G distance
 * terms/s; the earlier one-frame-per-invocation kernel with the codebook
 * staged in workgroup memory did ~0.5 G/s) on top of ~11 ms per GPU round
 * trip, on an earlier development host; on the Zen 3 one, ~9.6 ms from
 * storage buffers and ~1.3 ms from images. 16 x 8, 8 x 16 and 16 x 16 blocks
 * were no faster and took 0.4-0.7 s to compile instead of 0.05 s (with
 * images, 4 x 8, 8 x 4, 16 x 8 and 8 x 16 were within the noise of 8 x 8);
 * the FMA-only matrix form (`x·c` against precomputed norms) was no faster
 * either, so the exact difference form stays.
 */
const SOFTWARE_SCAN_TILE: ScanTile = { rows: 8, cols: 8, workgroup: 8 };
/** Hardware GPUs: small blocks, 64-invocation workgroups (not tuned: no GPU on the test machines). */
const HARDWARE_SCAN_TILE: ScanTile = { rows: 2, cols: 4, workgroup: 64 };

/** Frames one workgroup scans. */
function framesPerWorkgroup(t: ScanTile): number {
  return t.rows * t.workgroup;
}

/**
 * Each invocation takes `rows` consecutive frames and finds the nearest
 * centroid of each. The distance is summed as `Σ_q dot(x_q - c_q, x_q - c_q)`
 * over the frame's vec4s in order 0, 1, 2, … (the difference form: no
 * `||x||² - 2 x·c + ||c||²` cancellation); centroids are visited in index
 * order and only a strictly smaller distance wins, so ties go to the lowest
 * index. The block is unrolled into scalar accumulators (`a_i_j`). Rows are
 * zero-padded to `D4` vec4s on the host; frames and centroids past the end are
 * clamped to the last one (and their scores discarded).
 *
 * dims     (m = frames, k = centroids, d4 = vec4s per row)
 * frames   [m, D4] vec4f
 * codebook [k, D4] vec4f
 * out      [m] vec2u   (nearest index, bits of its squared distance f32)
 */
function scanWgsl(t: ScanTile, reads: ScanReads): string {
  const R = t.rows, C = t.cols;
  const frame = (i: string) => reads === "image" ? `framesAt(${i})` : `frames[${i}]`;
  const centroid = (i: string) => reads === "image" ? `codebookAt(${i})` : `codebook[${i}]`;
  const L: string[] = [];
  for (let i = 0; i < R; i++) {
    L.push(`  let xb${i} = min(j0 + ${i}u, M - 1u) * D4;`);
    L.push(`  var best${i} = 0u;\n  var n1_${i} = BIG;`);
  }
  L.push(`  for (var k0 = 0u; k0 < K; k0 += ${C}u) {`);
  for (let j = 0; j < C; j++) L.push(`    let cb${j} = min(k0 + ${j}u, K - 1u) * D4;`);
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < C; j++) L.push(`    var a_${i}_${j} = 0.0;`);
  }
  L.push(`    for (var q = 0u; q < D4; q++) {`);
  for (let j = 0; j < C; j++) L.push(`      let c${j} = ${centroid(`cb${j} + q`)};`);
  for (let i = 0; i < R; i++) {
    L.push(`      let x${i} = ${frame(`xb${i} + q`)};`);
    for (let j = 0; j < C; j++) {
      L.push(`      let e_${i}_${j} = x${i} - c${j};`);
      L.push(`      a_${i}_${j} += dot(e_${i}_${j}, e_${i}_${j});`);
    }
  }
  L.push(`    }`);
  // Branch-free running minimum: SIMD lanes never diverge.
  for (let j = 0; j < C; j++) L.push(`    let live${j} = k0 + ${j}u < K;`);
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < C; j++) {
      L.push(`    {`);
      L.push(`      let lt = live${j} && a_${i}_${j} < n1_${i};`);
      L.push(`      best${i} = select(best${i}, k0 + ${j}u, lt);`);
      L.push(`      n1_${i} = select(n1_${i}, a_${i}_${j}, lt);`);
      L.push(`    }`);
    }
  }
  L.push(`  }`);
  for (let i = 0; i < R; i++) {
    L.push(
      `  if (j0 + ${i}u < M) { out[j0 + ${i}u] = vec2u(best${i}, bitcast<u32>(n1_${i})); }`,
    );
  }
  return /* wgsl */ `
const BIG: f32 = 3.0e38;
@group(0) @binding(0) var<uniform> dims: Dims;
${
    reads === "image"
      ? `${inputWgsl(1, "frames", "vec4<f32>", "image")}
${inputWgsl(2, "codebook", "vec4<f32>", "image")}`
      : `@group(0) @binding(1) var<storage, read> frames: array<vec4f>;
@group(0) @binding(2) var<storage, read> codebook: array<vec4f>;`
  }
@group(0) @binding(3) var<storage, read_write> out: array<vec2u>;

@compute @workgroup_size(${t.workgroup})
fn scan_nearest(@builtin(global_invocation_id) gid: vec3u) {
  let M = dims.n;
  let K = dims.k;
  let D4 = dims.d4;
  let j0 = gid.x * ${R}u;
  if (j0 >= M) { return; }
${L.join("\n")}
}
`;
}

/** `[n, d]` rows zero-padded to `[n, d4 * 4]` (no copy when `d` is a multiple of 4). */
function padRows(x: Float32Array, d: number, d4: number): Float32Array<ArrayBuffer> {
  if (d === d4 * 4) return Float32Array.from(x);
  const n = x.length / d;
  const out = new Float32Array(n * d4 * 4);
  for (let i = 0; i < n; i++) out.set(x.subarray(i * d, (i + 1) * d), i * d4 * 4);
  return out;
}

/** Uniforms shared by every kernel of this module (32 bytes). */
const DIMS_WGSL = /* wgsl */ `
struct Dims { n: u32, k: u32, d4: u32, max_iterations: u32, tolerance: f32, _p0: u32, _p1: u32, _p2: u32 }
`;

/** `[n, k, d4, maxIterations, tolerance]` as the 32 bytes of `Dims`. */
function dimsBytes(n: number, k: number, d4: number, maxIterations = 0, tolerance = 0) {
  const b = new ArrayBuffer(32);
  new Uint32Array(b, 0, 4).set([n, k, d4, maxIterations]);
  new Float32Array(b, 16, 1)[0] = tolerance;
  return b;
}

/** Invocations of the single-workgroup kernels (`update_centroids`, `reseed_empty`, `lloyd_step`). */
const REDUCE_LANES = 64;

/**
 * New centroids = member means under `assign`, in one workgroup: lane `q`
 * owns vec4 column `q` of every centroid and walks the frames in index order,
 * adding frame `i`'s column to its centroid's (f32, so each sum runs in frame
 * order and no two lanes touch one element); then every centroid is divided
 * by its member count. `O(N D)` work, where one invocation per cluster testing
 * every frame for membership costs `O(N K)` (3.5 ms at K = 256, N = 4887 on
 * llvmpipe, most of an iteration). An empty cluster's row is left at zero for
 * `reseed_empty`.
 *
 * frames   [n, D4] vec4f
 * assign   [n] u32
 * codebook [k, D4] vec4f   (written)
 * counts   [k] u32         (members per cluster, written)
 */
const UPDATE_WGSL = DIMS_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> frames: array<vec4f>;
@group(0) @binding(2) var<storage, read> assign: array<u32>;
@group(0) @binding(3) var<storage, read_write> codebook: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> counts: array<u32>;

@compute @workgroup_size(${REDUCE_LANES})
fn update_centroids(@builtin(local_invocation_index) lid: u32) {
  let D4 = dims.d4;
  let K = dims.k;
  for (var t = lid; t < K * D4; t += ${REDUCE_LANES}u) { codebook[t] = vec4f(0.0); }
  for (var k = lid; k < K; k += ${REDUCE_LANES}u) { counts[k] = 0u; }
  workgroupBarrier();
  storageBarrier();
  for (var q = lid; q < D4; q += ${REDUCE_LANES}u) {
    for (var i = 0u; i < dims.n; i++) {
      let a = assign[i];
      codebook[a * D4 + q] += frames[i * D4 + q];
      if (q == 0u) { counts[a] += 1u; }
    }
  }
  workgroupBarrier();
  storageBarrier();
  for (var t = lid; t < K * D4; t += ${REDUCE_LANES}u) {
    let c = counts[t / D4];
    if (c > 0u) { codebook[t] = codebook[t] / f32(c); }
  }
}
`;

/**
 * Empty clusters, in index order, take the frame farthest from its nearest
 * centroid of the last scan (ties to the lowest frame index); the frame's
 * distance is then set to 0 so the next empty cluster takes another. One
 * workgroup; the per-lane maxima are combined in a fixed tree order.
 *
 * frames   [n, D4] vec4f
 * counts   [k] u32
 * codebook [k, D4] vec4f   (rows of empty clusters written)
 * out      [n] vec2u       (the last scan: nearest, bits of d²; d² of taken frames set to 0)
 */
const RESEED_WGSL = DIMS_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> frames: array<vec4f>;
@group(0) @binding(2) var<storage, read> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> codebook: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<vec2u>;
var<workgroup> members: u32;
var<workgroup> any_empty: atomic<u32>;
var<workgroup> far_d: array<f32, ${REDUCE_LANES}>;
var<workgroup> far_i: array<u32, ${REDUCE_LANES}>;

@compute @workgroup_size(${REDUCE_LANES})
fn reseed_empty(@builtin(local_invocation_index) lid: u32) {
  let D4 = dims.d4;
  // Most iterations leave no cluster empty: two barriers to find that out
  // (workgroup variables start at zero; integer atomics are order-independent).
  var empty = 0u;
  for (var k = lid; k < dims.k; k += ${REDUCE_LANES}u) { empty |= select(0u, 1u, counts[k] == 0u); }
  atomicOr(&any_empty, empty);
  workgroupBarrier();
  if (lid == 0u) { members = atomicLoad(&any_empty); }
  if (workgroupUniformLoad(&members) == 0u) { return; }
  for (var k = 0u; k < dims.k; k++) {
    if (lid == 0u) { members = counts[k]; }
    if (workgroupUniformLoad(&members) != 0u) { continue; }
    var bd = -1.0;
    var bi = 0u;
    for (var i = lid; i < dims.n; i += ${REDUCE_LANES}u) {
      let d = bitcast<f32>(out[i].y);
      if (d > bd) { bd = d; bi = i; }
    }
    far_d[lid] = bd;
    far_i[lid] = bi;
    for (var s = ${REDUCE_LANES / 2}u; s > 0u; s >>= 1u) {
      workgroupBarrier();
      if (lid < s) {
        let od = far_d[lid + s];
        let oi = far_i[lid + s];
        if (od > far_d[lid] || (od == far_d[lid] && oi < far_i[lid])) {
          far_d[lid] = od;
          far_i[lid] = oi;
        }
      }
    }
    let far = workgroupUniformLoad(&far_i[0]);
    for (var q = lid; q < D4; q += ${REDUCE_LANES}u) { codebook[k * D4 + q] = frames[far * D4 + q]; }
    if (lid == 0u) { out[far].y = 0u; }
    storageBarrier();
  }
}
`;

/**
 * Ends a Lloyd iteration: copies the scan's nearest indices into `assign`,
 * sums the inertia (f32) and the changed assignments in a fixed order (lane
 * partials over a strided range, then a fixed tree), and stops the fit when
 * nothing changed, the inertia fell by less than `tolerance` of itself, or
 * `max_iterations` ran; stopping zeroes the indirect dispatch sizes of the
 * other kernels. The first call (state.started = 0) only records the initial
 * assignment. One workgroup.
 *
 * out    [n] vec2u   (the scan: nearest, bits of d²)
 * assign [n] u32     (written)
 * state  {started, done, iterations, changed, inertia f32}
 * args   [3 x 3] u32 (workgroup counts of update, reseed, scan; x zeroed when done)
 */
const STEP_WGSL = DIMS_WGSL + /* wgsl */ `
struct State { started: u32, done: u32, iterations: u32, changed: u32, inertia: f32 }
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> out: array<vec2u>;
@group(0) @binding(2) var<storage, read_write> assign: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: State;
@group(0) @binding(4) var<storage, read_write> args: array<u32>;
var<workgroup> stopped: u32;
var<workgroup> part_d: array<f32, ${REDUCE_LANES}>;
var<workgroup> part_c: array<u32, ${REDUCE_LANES}>;

@compute @workgroup_size(${REDUCE_LANES})
fn lloyd_step(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { stopped = state.done; }
  if (workgroupUniformLoad(&stopped) != 0u) { return; }
  var acc = 0.0;
  var changed = 0u;
  for (var i = lid; i < dims.n; i += ${REDUCE_LANES}u) {
    let o = out[i];
    acc += bitcast<f32>(o.y);
    changed += select(0u, 1u, o.x != assign[i]);
    assign[i] = o.x;
  }
  part_d[lid] = acc;
  part_c[lid] = changed;
  for (var s = ${REDUCE_LANES / 2}u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      part_d[lid] += part_d[lid + s];
      part_c[lid] += part_c[lid + s];
    }
  }
  workgroupBarrier();
  if (lid == 0u) {
    let inertia = part_d[0];
    if (state.started == 0u) {
      state.started = 1u;
    } else {
      state.iterations += 1u;
      let gain = state.inertia - inertia;
      if (part_c[0] == 0u || gain < dims.tolerance * inertia ||
          state.iterations >= dims.max_iterations) {
        state.done = 1u;
        args[0] = 0u;
        args[3] = 0u;
        args[6] = 0u;
      }
    }
    state.inertia = inertia;
    state.changed = part_c[0];
  }
}
`;

function scanTile(gpu: Gpu): ScanTile {
  return isSoftwareAdapter(gpu) ? SOFTWARE_SCAN_TILE : HARDWARE_SCAN_TILE;
}

function scanPipeline(gpu: Gpu, t: ScanTile, reads: ScanReads): GPUComputePipeline {
  return cachedPipeline(
    gpu,
    `kmeans.scan_nearest.${t.rows}x${t.cols}x${t.workgroup}.${reads}`,
    DIMS_WGSL + scanWgsl(t, reads),
    "scan_nearest",
  );
}

/** `data` (whole vec4s) as the scan reads it: a texture written from the host, or a storage buffer. */
function scanOperand(
  gpu: Gpu,
  reads: ScanReads,
  data: Float32Array<ArrayBuffer>,
  label: string,
): GPUBuffer | GPUTexture {
  if (reads === "storage") return createStorageBufferFrom(gpu, data, label);
  const texture = createInputTexture(gpu, data.length / 4, label);
  writeInputTexture(gpu, texture, data);
  return texture;
}

/** The scan's bind group: dims, frames and codebook (buffers or textures), out. */
function bindScan(
  gpu: Gpu,
  pipeline: GPUComputePipeline,
  dims: { buffer: GPUBuffer; offset: number; size: number },
  frames: GPUBuffer | GPUTexture,
  codebook: GPUBuffer | GPUTexture,
  out: GPUBuffer,
  label: string,
): GPUBindGroup {
  const resource = (r: GPUBuffer | GPUTexture) =>
    r instanceof GPUTexture ? r.createView() : { buffer: r };
  return gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: dims },
      { binding: 1, resource: resource(frames) },
      { binding: 2, resource: resource(codebook) },
      { binding: 3, resource: { buffer: out } },
    ],
  });
}

/** Largest storage binding in bytes. */
function maxBinding(gpu: Gpu): number {
  return Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
}

function checkShapes(frames: Float32Array, d: number, k: number, what: string): void {
  if (!Number.isInteger(d) || d <= 0 || frames.length % d !== 0) {
    throw new RangeError(`${what}: frames.length ${frames.length} is not a multiple of D = ${d}`);
  }
  if (!Number.isInteger(k) || k <= 0) throw new RangeError(`${what}: K must be positive, got ${k}`);
}

function checkCodebookFits(gpu: Gpu, k: number, d: number): void {
  const d4 = Math.ceil(d / 4);
  if (k * d4 * 16 > maxBinding(gpu)) {
    throw new UserError("k-means: the codebook does not fit one GPU storage binding", {
      expected: `K * D * 4 <= ${maxBinding(gpu)} bytes`,
      found: `${k} * ${d} * 4 = ${k * d * 4}`,
    });
  }
}

/** Options of {@link assignNearest}. */
export interface AssignOptions {
  /** Frames per chunk at most (default: as many as one storage binding holds); for tests. */
  chunkRows?: number;
  /** How the scan reads (default {@link defaultScanReads}). */
  reads?: ScanReads;
}

/**
 * Nearest codebook entry of every frame, computed on the GPU: `[N]` u32 for
 * `frames` `[N, D]` f32 and `codebook` `[K, D]` f32 (squared Euclidean
 * distance, ties to the lowest index). One GPU round trip (>= 10 ms): batch
 * many files' frames into one call. Frames go up in chunks of at most one
 * storage binding (and one texture, when read as images).
 */
export async function assignNearest(
  gpu: Gpu,
  frames: Float32Array,
  codebook: Float32Array,
  D: number,
  K: number,
  options: AssignOptions = {},
): Promise<Uint32Array> {
  checkShapes(frames, D, K, "assignNearest");
  if (codebook.length !== K * D) {
    throw new RangeError(`assignNearest: codebook has ${codebook.length} floats, expected K*D`);
  }
  checkCodebookFits(gpu, K, D);
  const n = frames.length / D;
  const result = new Uint32Array(n);
  if (n === 0) return result;
  const d4 = Math.ceil(D / 4);
  const t = scanTile(gpu);
  // A codebook too large for one texture is read from its buffer.
  const reads = textureInputFits(gpu, K * d4) ? options.reads ?? defaultScanReads(gpu) : "storage";
  const rowsPerChunk = Math.min(
    Math.floor(maxBinding(gpu) / (d4 * 16)),
    reads === "image"
      ? Math.floor(gpu.limits.maxTextureDimension2D * TEXTURE_INPUT_WIDTH / d4)
      : Infinity,
    gpu.limits.maxComputeWorkgroupsPerDimension * framesPerWorkgroup(t),
    options.chunkRows ?? Infinity,
  );
  const chunks = Math.ceil(n / rowsPerChunk);
  const q = gpu.device.queue;
  const owned: (GPUBuffer | GPUTexture)[] = [];
  const track = <T extends GPUBuffer | GPUTexture>(b: T) => (owned.push(b), b);
  try {
    const pipeline = scanPipeline(gpu, t, reads);
    const cb = track(scanOperand(gpu, reads, padRows(codebook, D, d4), "kmeans codebook"));
    const dims = track(createUniformBuffer(gpu, 256 * chunks, "kmeans dims"));
    const staging = track(gpu.device.createBuffer({
      label: "kmeans assign readback",
      size: n * 8,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    }));
    const enc = gpu.device.createCommandEncoder({ label: "kmeans assign" });
    const outs: { out: GPUBuffer; start: number; rows: number }[] = [];
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (let c = 0; c < chunks; c++) {
      const start = c * rowsPerChunk, rows = Math.min(rowsPerChunk, n - start);
      const slice = padRows(frames.subarray(start * D, (start + rows) * D), D, d4);
      const fb = track(scanOperand(gpu, reads, slice, "kmeans frames"));
      const out = track(createStorageBuffer(gpu, rows * 8, "kmeans nearest"));
      q.writeBuffer(dims, c * 256, dimsBytes(rows, K, d4));
      const slot = { buffer: dims, offset: c * 256, size: 32 };
      pass.setBindGroup(0, bindScan(gpu, pipeline, slot, fb, cb, out, "kmeans assign"));
      pass.dispatchWorkgroups(Math.ceil(rows / framesPerWorkgroup(t)));
      outs.push({ out, start, rows });
    }
    pass.end();
    for (const o of outs) enc.copyBufferToBuffer(o.out, 0, staging, o.start * 8, o.rows * 8);
    q.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const u = new Uint32Array(staging.getMappedRange());
    for (let i = 0; i < n; i++) result[i] = u[2 * i];
    staging.unmap();
    return result;
  } finally {
    for (const b of owned) b.destroy();
  }
}

/** Squared distance from frame `i` to centroid `k`, in f64. */
function sqDist(
  frames: Float32Array,
  i: number,
  centroids: Float32Array | Float64Array,
  k: number,
  d: number,
): number {
  let s = 0;
  const a = i * d, b = k * d;
  for (let j = 0; j < d; j++) {
    const diff = frames[a + j] - centroids[b + j];
    s += diff * diff;
  }
  return s;
}

/**
 * k-means++ seeding over `sample` (frame indices), D² sampling with `rng`;
 * `[K, D]` f32. A sample whose current centre `a` lies at least twice its
 * distance from the new centre `c` keeps its distance (`|x - c| >= |c - a| -
 * |x - a| >= |x - a|`), so it is not measured; the bound carries a margin, so
 * the picks are exactly those of measuring every sample.
 */
function kmeansPlusPlus(
  frames: Float32Array,
  sample: Int32Array,
  d: number,
  k: number,
  rng: Random,
): Float32Array {
  const m = sample.length;
  const centroids = new Float32Array(k * d);
  const minDist = new Float64Array(m).fill(Infinity);
  /** Index of each sample's nearest centre so far. */
  const owner = new Int32Array(m);
  /** Squared distance from the newest centre to each earlier one. */
  const centreDist = new Float64Array(k);
  let chosen = sample[rng.int(m)];
  for (let c = 0; c < k; c++) {
    centroids.set(frames.subarray(chosen * d, (chosen + 1) * d), c * d);
    if (c === k - 1) break;
    for (let j = 0; j < c; j++) centreDist[j] = sqDist(centroids, c, centroids, j, d);
    let total = 0;
    for (let s = 0; s < m; s++) {
      // |c - a|² >= 4 |x - a|² (with margin) means |x - c| >= |x - a|: nothing to update.
      if (c === 0 || centreDist[owner[s]] < 4.0001 * minDist[s]) {
        const dist = sqDist(frames, sample[s], centroids, c, d);
        if (dist < minDist[s]) {
          minDist[s] = dist;
          owner[s] = c;
        }
      }
      total += minDist[s];
    }
    if (total > 0) {
      let target = rng.uniform() * total;
      let pick = m - 1;
      for (let s = 0; s < m; s++) {
        target -= minDist[s];
        if (target < 0) {
          pick = s;
          break;
        }
      }
      // Guard against rounding landing on an already-chosen point.
      while (minDist[pick] === 0 && pick > 0) pick--;
      chosen = sample[pick];
    } else {
      // Fewer distinct frames than K: duplicates become empty clusters, re-seeded later.
      chosen = sample[rng.int(m)];
    }
  }
  return centroids;
}

/** Seeded subsample of `size` distinct indices of `[0, n)`, ascending (partial Fisher-Yates); all of them when `size >= n`. */
export function seededSubsample(n: number, size: number, rng: Random): Int32Array {
  if (size >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < size; i++) {
    const j = i + rng.int(n - i);
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx.slice(0, size).sort();
}

function inertiaOf(frames: Float32Array, assign: Uint32Array, codebook: Float32Array, d: number) {
  let s = 0;
  for (let i = 0; i < assign.length; i++) s += sqDist(frames, i, codebook, assign[i], d);
  return s;
}

/** Bytes of the state the Lloyd kernels share (`State` in {@link STEP_WGSL}, padded). */
const STATE_BYTES = 32;

/**
 * Fits a `K`-entry codebook to `frames` (`[N, D]` f32): seeded k-means++
 * initialisation, then up to `iterations` Lloyd iterations on the GPU (see the
 * module notes). Deterministic: the same frames and options give the same
 * bytes. Throws a `UserError` when there are fewer frames than codebook
 * entries, or when the frames do not fit one GPU storage binding.
 */
export async function fitKMeans(
  gpu: Gpu,
  frames: Float32Array,
  D: number,
  K: number,
  options: KMeansOptions,
): Promise<KMeansResult> {
  const n = checkFitInputs(gpu, frames, D, K);
  const initial = initialCodebook(frames, n, D, K, options);
  const extra = options.assignAlso ?? new Float32Array(0);
  checkShapes(extra, D, K, "fitKMeans assignAlso");
  const fit = new LloydFit(gpu, frames, initial, extra, D, K, options);
  try {
    let encoded = 0;
    let read: LloydRead;
    do {
      const batch = Math.min(ITERATIONS_PER_SUBMIT, options.iterations - encoded);
      const first = encoded === 0;
      encoded += Math.max(0, batch);
      read = await fit.submit(first, batch, encoded >= options.iterations);
    } while (!read.final);
    const { codebook, assignment } = read.final;
    const extraAssignment = extra.length > 0 && !fit.extraInline
      ? await assignNearest(gpu, extra, codebook, D, K)
      : read.final.extraAssignment;
    return {
      codebook,
      assignment,
      extraAssignment,
      inertia: inertiaOf(frames, assignment, codebook, D),
      iterations: read.iterations,
      reads: fit.reads,
    };
  } finally {
    fit.destroy();
  }
}

/**
 * The frame count of a fit's input, after the checks: at least `K` frames,
 * a codebook and frames that each fit one storage binding (`UserError`s that
 * say what to change), and dispatches within the adapter's limits.
 */
function checkFitInputs(gpu: Gpu, frames: Float32Array, D: number, K: number): number {
  checkShapes(frames, D, K, "fitKMeans");
  const n = frames.length / D;
  if (n < K) {
    throw new UserError(`k-means needs at least as many frames as codebook entries`, {
      expected: `at least ${K} frames (the codebook size)`,
      found: `${n} frames`,
      hint: "use more or longer audio, or a smaller codebook_size",
    });
  }
  checkCodebookFits(gpu, K, D);
  const d4 = Math.ceil(D / 4);
  const scanGroups = Math.ceil(n / framesPerWorkgroup(scanTile(gpu)));
  if (n * d4 * 16 > maxBinding(gpu) || scanGroups > gpu.limits.maxComputeWorkgroupsPerDimension) {
    throw new UserError("k-means: the frames to fit do not fit one GPU storage binding", {
      expected: `N * ceil(D / 4) * 16 <= ${maxBinding(gpu)} bytes`,
      found: `${n} frames of ${D} dimensions`,
      hint: "fit on fewer frames (the tokenize step's kmeans_max_frames)",
    });
  }
  return n;
}

/** The starting codebook: the options' warm start, or seeded k-means++ over a subsample. */
function initialCodebook(
  frames: Float32Array,
  n: number,
  D: number,
  K: number,
  options: KMeansOptions,
): Float32Array {
  if (options.initialCodebook) {
    if (options.initialCodebook.length !== K * D) {
      throw new RangeError(
        `fitKMeans: initialCodebook has ${options.initialCodebook.length} floats`,
      );
    }
    return options.initialCodebook;
  }
  const rng = new Random(options.seed, "kmeans++");
  const sample = seededSubsample(n, Math.max(4096, 4 * K), rng);
  return kmeansPlusPlus(frames, sample, D, K, rng);
}

/** What one submission of a fit read back. */
interface LloydRead {
  /** Lloyd iterations the GPU has run so far. */
  iterations: number;
  /** When the fit is over (the GPU stopped it, or no iterations are left): its outcome. */
  final?: { codebook: Float32Array; assignment: Uint32Array; extraAssignment: Uint32Array };
}

/**
 * One fit's GPU side: its buffers, pipelines and bind groups, and the
 * submissions of Lloyd iterations, each followed by a readback of the state
 * (and the codebook and assignment with it).
 */
class LloydFit {
  /** How the scan reads its operands. */
  readonly reads: ScanReads;
  /** The extra frames are scanned in the fit's submissions (they fit one binding). */
  readonly extraInline: boolean;
  readonly #gpu: Gpu;
  readonly #n: number;
  readonly #m: number;
  readonly #D: number;
  readonly #K: number;
  readonly #d4: number;
  readonly #scanGroups: number;
  readonly #extraGroups: number;
  readonly #extraAt: number;
  readonly #owned: (GPUBuffer | GPUTexture)[] = [];
  readonly #buffers: Record<
    "codebook" | "assign" | "state" | "args" | "staging",
    GPUBuffer
  >;
  readonly #extraOut?: GPUBuffer;
  readonly #codebookTexture?: GPUTexture;
  readonly #pipelines: Record<"scan" | "update" | "reseed" | "step", GPUComputePipeline>;
  readonly #groups: Record<"scan" | "update" | "reseed" | "step", GPUBindGroup>;
  readonly #extraGroup?: GPUBindGroup;

  constructor(
    gpu: Gpu,
    frames: Float32Array,
    initial: Float32Array,
    extra: Float32Array,
    D: number,
    K: number,
    options: KMeansOptions,
  ) {
    this.#gpu = gpu;
    const n = this.#n = frames.length / D;
    const m = this.#m = extra.length / D;
    this.#D = D;
    this.#K = K;
    const d4 = this.#d4 = Math.ceil(D / 4);
    const t = scanTile(gpu);
    this.#scanGroups = Math.ceil(n / framesPerWorkgroup(t));
    // Images when every scan operand fits a texture; the buffers stay (the other kernels read them).
    const reads = this.reads = [n, K, m].every((rows) => textureInputFits(gpu, rows * d4))
      ? options.reads ?? defaultScanReads(gpu)
      : "storage";
    const device = gpu.device;
    const track = <T extends GPUBuffer | GPUTexture>(b: T) => (this.#owned.push(b), b);
    try {
      const dims = track(createUniformBuffer(gpu, 32, "kmeans dims"));
      device.queue.writeBuffer(
        dims,
        0,
        dimsBytes(n, K, d4, options.iterations, options.tolerance),
      );
      const paddedFrames = padRows(frames, D, d4);
      const framesBuf = track(createStorageBufferFrom(gpu, paddedFrames, "kmeans frames"));
      const codebook = track(
        createStorageBufferFrom(gpu, padRows(initial, D, d4), "kmeans codebook"),
      );
      const out = track(createStorageBuffer(gpu, n * 8, "kmeans nearest"));
      // 0xffffffff: no frame starts "unchanged".
      const assign = track(
        createStorageBufferFrom(gpu, new Uint32Array(n).fill(0xffffffff), "kmeans assign"),
      );
      const counts = track(createStorageBuffer(gpu, K * 4, "kmeans counts"));
      const state = track(createStorageBuffer(gpu, STATE_BYTES, "kmeans state"));
      const args = track(device.createBuffer({
        label: "kmeans dispatch sizes",
        size: 36,
        usage: GPUBufferUsage.INDIRECT | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      }));
      device.queue.writeBuffer(
        args,
        0,
        new Uint32Array([1, 1, 1, 1, 1, 1, this.#scanGroups, 1, 1]),
      );
      // Extra frames ride along in the fit's submits when they fit one binding.
      this.#extraGroups = Math.ceil(m / framesPerWorkgroup(t));
      this.extraInline = m > 0 && m * d4 * 16 <= maxBinding(gpu) &&
        this.#extraGroups <= gpu.limits.maxComputeWorkgroupsPerDimension;
      const extraDims = track(createUniformBuffer(gpu, 32, "kmeans extra dims"));
      device.queue.writeBuffer(extraDims, 0, dimsBytes(m, K, d4));
      // The scan's operands: the buffers, or textures the frames are written
      // into once and the codebook is copied into before each scan.
      let framesIn: GPUBuffer | GPUTexture = framesBuf;
      let codebookIn: GPUBuffer | GPUTexture = codebook;
      if (reads === "image") {
        framesIn = track(scanOperand(gpu, reads, paddedFrames, "kmeans frames"));
        codebookIn = this.#codebookTexture = track(
          createInputTexture(gpu, K * d4, "kmeans codebook"),
        );
      }
      const extraFrames = this.extraInline
        ? track(scanOperand(gpu, reads, padRows(extra, D, d4), "kmeans extra frames"))
        : undefined;
      this.#extraOut = this.extraInline
        ? track(createStorageBuffer(gpu, m * 8, "kmeans extra nearest"))
        : undefined;
      this.#extraAt = STATE_BYTES + K * d4 * 16 + n * 4;
      const staging = track(device.createBuffer({
        label: "kmeans readback",
        size: this.#extraAt + (this.extraInline ? m * 8 : 0),
        usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
      }));
      this.#buffers = { codebook, assign, state, args, staging };

      const scan = scanPipeline(gpu, t, reads);
      const update = cachedPipeline(
        gpu,
        "kmeans.update_centroids",
        UPDATE_WGSL,
        "update_centroids",
      );
      const reseed = cachedPipeline(gpu, "kmeans.reseed_empty", RESEED_WGSL, "reseed_empty");
      const step = cachedPipeline(gpu, "kmeans.lloyd_step", STEP_WGSL, "lloyd_step");
      this.#pipelines = { scan, update, reseed, step };
      const dimsSlice = { buffer: dims, offset: 0, size: 32 };
      this.#groups = {
        scan: bindScan(gpu, scan, dimsSlice, framesIn, codebookIn, out, "kmeans scan"),
        update: bindBuffers(
          gpu,
          update,
          [dimsSlice, framesBuf, assign, codebook, counts],
          "kmeans update",
        ),
        reseed: bindBuffers(
          gpu,
          reseed,
          [dimsSlice, framesBuf, counts, codebook, out],
          "kmeans reseed",
        ),
        step: bindBuffers(gpu, step, [dimsSlice, out, assign, state, args], "kmeans step"),
      };
      this.#extraGroup = extraFrames && this.#extraOut
        ? bindScan(
          gpu,
          scan,
          { buffer: extraDims, offset: 0, size: 32 },
          extraFrames,
          codebookIn,
          this.#extraOut,
          "kmeans extra scan",
        )
        : undefined;
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * Encodes the first full scan (with `first`), then `batch` iterations, then
   * (with extra frames inline) their scan against the codebook as it stands,
   * submits them and reads the state back; with the codebook and the
   * assignments once the GPU has stopped or `last` says no iterations are
   * left.
   */
  async submit(first: boolean, batch: number, last: boolean): Promise<LloydRead> {
    const { codebook, assign, state, args, staging } = this.#buffers;
    const { scan, update, reseed, step } = this.#pipelines;
    const groups = this.#groups;
    const K = this.#K, D = this.#D, d4 = this.#d4, n = this.#n, m = this.#m;
    const enc = this.#gpu.device.createCommandEncoder({ label: "kmeans lloyd" });
    let open: GPUComputePassEncoder | undefined;
    const pass = () => open ??= enc.beginComputePass();
    /** The scan, after the codebook's copy into its texture (a copy runs outside passes). */
    const scanPass = () => {
      if (this.#codebookTexture) {
        open?.end();
        open = undefined;
        encodeInputCopy(enc, codebook, this.#codebookTexture, K * d4);
      }
      const p = pass();
      p.setPipeline(scan);
      return p;
    };
    if (first) {
      const p = scanPass();
      p.setBindGroup(0, groups.scan);
      p.dispatchWorkgroups(this.#scanGroups);
      p.setPipeline(step);
      p.setBindGroup(0, groups.step);
      p.dispatchWorkgroups(1);
    }
    for (let it = 0; it < batch; it++) {
      const p = pass();
      p.setPipeline(update);
      p.setBindGroup(0, groups.update);
      p.dispatchWorkgroupsIndirect(args, 0);
      p.setPipeline(reseed);
      p.setBindGroup(0, groups.reseed);
      p.dispatchWorkgroupsIndirect(args, 12);
      const q = scanPass();
      q.setBindGroup(0, groups.scan);
      q.dispatchWorkgroupsIndirect(args, 24);
      q.setPipeline(step);
      q.setBindGroup(0, groups.step);
      q.dispatchWorkgroups(1);
    }
    if (this.#extraGroup) {
      // Against the codebook as it stands: the final one in the last submit.
      const p = scanPass();
      p.setBindGroup(0, this.#extraGroup);
      p.dispatchWorkgroups(this.#extraGroups);
    }
    open?.end();
    enc.copyBufferToBuffer(state, 0, staging, 0, STATE_BYTES);
    enc.copyBufferToBuffer(codebook, 0, staging, STATE_BYTES, K * d4 * 16);
    enc.copyBufferToBuffer(assign, 0, staging, STATE_BYTES + K * d4 * 16, n * 4);
    if (this.#extraOut) enc.copyBufferToBuffer(this.#extraOut, 0, staging, this.#extraAt, m * 8);
    this.#gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    try {
      const raw = staging.getMappedRange();
      const s = new Uint32Array(raw, 0, STATE_BYTES / 4);
      const read: LloydRead = { iterations: s[2] };
      if (s[1] !== 0 || last) {
        const cb = new Float32Array(raw, STATE_BYTES, K * d4 * 4);
        const fitted = new Float32Array(K * D);
        for (let k = 0; k < K; k++) fitted.set(cb.subarray(k * d4 * 4, k * d4 * 4 + D), k * D);
        const extraAssignment = new Uint32Array(m);
        if (this.extraInline) {
          const u = new Uint32Array(raw, this.#extraAt, 2 * m);
          for (let i = 0; i < m; i++) extraAssignment[i] = u[2 * i];
        }
        read.final = {
          codebook: fitted,
          assignment: new Uint32Array(raw, STATE_BYTES + K * d4 * 16, n).slice(),
          extraAssignment,
        };
      }
      return read;
    } finally {
      staging.unmap();
    }
  }

  destroy(): void {
    for (const b of this.#owned) b.destroy();
    this.#owned.length = 0;
  }
}
