/**
 * k-means on WebGPU: the codebook of the mel-vq tokenizer.
 *
 * - Initialisation is k-means++ on the host, seeded from `lib/random`. For
 *   large inputs it runs over a seeded subsample of `max(4096, 4 K)` frames
 *   (k-means++ costs `O(n K D)` on one CPU core; the Lloyd iterations that
 *   follow use every frame, so the subsample only affects the starting point).
 * - Each Lloyd iteration finds nearest centroids on the GPU (`scan_nearest`
 *   below: squared Euclidean distance summed in a fixed order, ties to the
 *   lowest index) and then updates the centroids on the host: per-cluster sums
 *   in f64 in frame order. No float atomics anywhere, so the same input and
 *   seed give the same bytes.
 * - Hamerly's bounds prune the search: the host keeps, per frame, an upper
 *   bound on the distance to its centroid and a lower bound on the distance to
 *   every other centroid, moves them by how far the centroids moved, and sends
 *   only the frames whose bounds cross (after re-measuring the distance to
 *   their own centroid on the host) to the GPU for a full scan. Bounds from
 *   GPU distances carry a relative margin for f32 rounding, and an exact tie
 *   never passes the test, so pruning never keeps a frame that a full scan
 *   would move. How much this saves depends on the data: clustered data
 *   prunes most frames; log-mel frames of the synth set with K = 256 still
 *   scan 55-80% of frames per iteration (the tokenize job reports it as
 *   `kmeans_scanned_fraction`).
 * - A cluster that ends up empty is re-seeded at the frame farthest from its
 *   own centroid (ties to the lowest frame index); that frame then counts as
 *   distance 0, so several empty clusters take distinct frames.
 * - Frames are uploaded once, in chunks of at most `maxStorageBufferBindingSize`
 *   bytes (and 65535 workgroups), and stay on the GPU across iterations.
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
import { isSoftwareAdapter } from "./ops/matmul.ts";

/** Options of {@link fitKMeans}. */
export interface KMeansOptions {
  /** Seed of the k-means++ initialisation (and its subsample). */
  seed: number;
  /** Maximum number of Lloyd iterations (each = one GPU assignment + host update). */
  iterations: number;
  /**
   * Stop when an iteration lowers the inertia by less than this fraction of
   * it (e.g. 1e-4), or when no assignment changes.
   */
  tolerance: number;
  /** Starting `[K, D]` codebook instead of k-means++ (a warm start); `seed` is then unused. */
  initialCodebook?: Float32Array;
  /** Frames per GPU chunk; defaults to what one storage binding holds. For tests of the chunking. */
  chunkRows?: number;
}

/** The result of {@link fitKMeans}. */
export interface KMeansResult {
  /** `[K, D]` f32 row-major centroids. */
  codebook: Float32Array;
  /** Sum over frames of the squared distance to the nearest centroid of `codebook` (f64). */
  inertia: number;
  /** Lloyd iterations run. */
  iterations: number;
  /** Frames the GPU scanned over all passes / (N * (iterations + 1)): what the bounds left. */
  scannedFraction: number;
}

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
 * trip. 16 x 8, 8 x 16 and 16 x 16 blocks were no faster and took 0.4-0.7 s
 * to compile instead of 0.05 s.
 */
const SOFTWARE_SCAN_TILE: ScanTile = { rows: 8, cols: 8, workgroup: 8 };
/** Hardware GPUs: small blocks, 64-invocation workgroups (not tuned: no GPU on the test machines). */
const HARDWARE_SCAN_TILE: ScanTile = { rows: 2, cols: 4, workgroup: 64 };

/** Frames one workgroup scans. */
function framesPerWorkgroup(t: ScanTile): number {
  return t.rows * t.workgroup;
}

/**
 * Each invocation takes `rows` consecutive entries of the scan list and finds
 * the nearest and second-nearest centroid of each listed frame. The distance
 * is summed as `Σ_q dot(x_q - c_q, x_q - c_q)` over the frame's vec4s in order
 * 0, 1, 2, … (the difference form: no `||x||² - 2 x·c + ||c||²` cancellation,
 * so the distances are good for the pruning bounds); centroids are visited in
 * index order and only a strictly smaller distance wins, so ties go to the
 * lowest index. The block is unrolled into scalar accumulators (`a_i_j`).
 * Rows are zero-padded to `D4` vec4s on the host; list entries and centroids
 * past the end are clamped to the last one (and their scores discarded).
 *
 * dims     (m = listed frames, k = centroids, d4 = vec4s per row)
 * frames   [rows, D4] vec4f     (the chunk's frames, resident across iterations)
 * idx      [m] u32              (chunk-local frame indices to scan)
 * codebook [k, D4] vec4f
 * out      [m] vec4u            (best index, bits of sqrt(best d²), bits of sqrt(second d²), 0)
 */
function scanWgsl(t: ScanTile): string {
  const R = t.rows, C = t.cols;
  const L: string[] = [];
  for (let i = 0; i < R; i++) {
    L.push(`  let xb${i} = idx[min(j0 + ${i}u, M - 1u)] * D4;`);
    L.push(`  var best${i} = 0u;\n  var n1_${i} = BIG;\n  var n2_${i} = BIG;`);
  }
  L.push(`  for (var k0 = 0u; k0 < K; k0 += ${C}u) {`);
  for (let j = 0; j < C; j++) L.push(`    let cb${j} = min(k0 + ${j}u, K - 1u) * D4;`);
  for (let i = 0; i < R; i++) {
    for (let j = 0; j < C; j++) L.push(`    var a_${i}_${j} = 0.0;`);
  }
  L.push(`    for (var q = 0u; q < D4; q++) {`);
  for (let j = 0; j < C; j++) L.push(`      let c${j} = codebook[cb${j} + q];`);
  for (let i = 0; i < R; i++) {
    L.push(`      let x${i} = frames[xb${i} + q];`);
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
      L.push(`      let v = select(BIG, a_${i}_${j}, live${j});`);
      L.push(`      let lt1 = v < n1_${i};`);
      L.push(`      n2_${i} = select(select(n2_${i}, v, v < n2_${i}), n1_${i}, lt1);`);
      L.push(`      best${i} = select(best${i}, k0 + ${j}u, lt1);`);
      L.push(`      n1_${i} = select(n1_${i}, v, lt1);`);
      L.push(`    }`);
    }
  }
  L.push(`  }`);
  for (let i = 0; i < R; i++) {
    L.push(
      `  if (j0 + ${i}u < M) { out[j0 + ${i}u] = vec4u(best${i}, bitcast<u32>(sqrt(n1_${i})), ` +
        `bitcast<u32>(sqrt(n2_${i})), 0u); }`,
    );
  }
  return /* wgsl */ `
struct Dims { m: u32, k: u32, d4: u32, _pad: u32 }
const BIG: f32 = 3.0e38;
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> frames: array<vec4f>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> codebook: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4u>;

@compute @workgroup_size(${t.workgroup})
fn scan_nearest(@builtin(global_invocation_id) gid: vec3u) {
  let M = dims.m;
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

/** Nearest and second-nearest centroid of each scanned frame. */
interface ScanResult {
  /** `[m]` nearest centroid. */
  best: Uint32Array;
  /** `[m]` distance (not squared) to it, f32 from the GPU. */
  d1: Float32Array;
  /** `[m]` distance to the second nearest (3e38 squared-root when K = 1). */
  d2: Float32Array;
}

/** One chunk of resident frames (global rows `[start, start + rows)`) with its scratch buffers. */
interface FrameChunk {
  start: number;
  rows: number;
  /** `[rows, D4]` vec4f. */
  frames: GPUBuffer;
  /** `[rows]` u32: chunk-local indices to scan. */
  idx: GPUBuffer;
  /** `[rows]` vec4u scan results. */
  out: GPUBuffer;
}

/** Frames held on the GPU in chunks, ready for repeated scans against changing codebooks. */
class FrameChunks {
  readonly chunks: FrameChunk[] = [];
  readonly #gpu: Gpu;
  readonly #dims: GPUBuffer;
  readonly #codebook: GPUBuffer;
  readonly #staging: GPUBuffer;
  readonly #n: number;
  readonly #d: number;
  /** Row width in vec4s (rows zero-padded to a multiple of 4 floats). */
  readonly #d4: number;
  readonly #k: number;
  readonly #tile: ScanTile;

  constructor(
    gpu: Gpu,
    frames: Float32Array,
    d: number,
    k: number,
    chunkRows: number | undefined,
  ) {
    this.#gpu = gpu;
    this.#n = frames.length / d;
    this.#d = d;
    const d4 = this.#d4 = Math.ceil(d / 4);
    this.#k = k;
    this.#tile = isSoftwareAdapter(gpu) ? SOFTWARE_SCAN_TILE : HARDWARE_SCAN_TILE;
    const maxBinding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    if (k * d4 * 16 > maxBinding) {
      throw new UserError("k-means: the codebook does not fit one GPU storage binding", {
        expected: `K * D * 4 <= ${maxBinding} bytes`,
        found: `${k} * ${d} * 4 = ${k * d * 4}`,
      });
    }
    const maxRows = Math.min(
      Math.floor(maxBinding / (d4 * 16)),
      gpu.limits.maxComputeWorkgroupsPerDimension * framesPerWorkgroup(this.#tile),
      chunkRows ?? Infinity,
    );
    // Per-chunk uniforms differ only in `m`: one 256-byte-aligned slot per chunk.
    const chunkCount = Math.max(1, Math.ceil(this.#n / maxRows));
    this.#dims = createUniformBuffer(gpu, 256 * chunkCount, "kmeans dims");
    this.#codebook = createStorageBuffer(gpu, k * d4 * 16, "kmeans codebook");
    this.#staging = gpu.device.createBuffer({
      label: "kmeans scan readback",
      size: Math.max(16, this.#n * 16),
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    for (let start = 0; start < this.#n; start += maxRows) {
      const rows = Math.min(maxRows, this.#n - start);
      const slice = padRows(frames.subarray(start * d, (start + rows) * d), d, d4);
      this.chunks.push({
        start,
        rows,
        frames: createStorageBufferFrom(gpu, slice, "kmeans frames"),
        idx: createStorageBuffer(gpu, rows * 4, "kmeans scan indices"),
        out: createStorageBuffer(gpu, rows * 16, "kmeans scan results"),
      });
    }
  }

  /**
   * Scans frames `which` (ascending global indices) against `codebook`
   * (`[K, D]` f32): one GPU round trip for all chunks.
   */
  async scan(codebook: Float32Array, which: Uint32Array): Promise<ScanResult> {
    const m = which.length;
    const best = new Uint32Array(m), d1 = new Float32Array(m), d2 = new Float32Array(m);
    if (m === 0) return { best, d1, d2 };
    const gpu = this.#gpu;
    const q = gpu.device.queue;
    const d4 = this.#d4;
    q.writeBuffer(this.#codebook, 0, padRows(codebook, this.#d, d4));
    const t = this.#tile;
    const pipeline = cachedPipeline(
      gpu,
      `kmeans.scan_nearest.${t.rows}x${t.cols}x${t.workgroup}`,
      scanWgsl(t),
      "scan_nearest",
    );
    const enc = gpu.device.createCommandEncoder({ label: "kmeans scan" });
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    const copies: { chunk: FrameChunk; from: number; count: number }[] = [];
    let from = 0;
    this.chunks.forEach((c, i) => {
      let to = from;
      while (to < m && which[to] < c.start + c.rows) to++;
      const count = to - from;
      if (count === 0) return;
      const local = new Uint32Array(count);
      for (let j = 0; j < count; j++) local[j] = which[from + j] - c.start;
      q.writeBuffer(c.idx, 0, local);
      q.writeBuffer(this.#dims, i * 256, new Uint32Array([count, this.#k, d4, 0]));
      pass.setBindGroup(
        0,
        bindBuffers(gpu, pipeline, [
          { buffer: this.#dims, offset: i * 256, size: 16 },
          c.frames,
          c.idx,
          this.#codebook,
          c.out,
        ], "kmeans scan"),
      );
      pass.dispatchWorkgroups(Math.ceil(count / framesPerWorkgroup(t)));
      copies.push({ chunk: c, from, count });
      from = to;
    });
    pass.end();
    for (const { chunk, from, count } of copies) {
      enc.copyBufferToBuffer(chunk.out, 0, this.#staging, from * 16, count * 16);
    }
    q.submit([enc.finish()]);
    await this.#staging.mapAsync(GPUMapMode.READ, 0, m * 16);
    const raw = this.#staging.getMappedRange(0, m * 16);
    const u = new Uint32Array(raw), f = new Float32Array(raw);
    for (let j = 0; j < m; j++) {
      best[j] = u[4 * j];
      d1[j] = f[4 * j + 1];
      d2[j] = f[4 * j + 2];
    }
    this.#staging.unmap();
    return { best, d1, d2 };
  }

  destroy(): void {
    for (const c of this.chunks) {
      c.frames.destroy();
      c.idx.destroy();
      c.out.destroy();
    }
    this.#dims.destroy();
    this.#codebook.destroy();
    this.#staging.destroy();
  }
}

function checkShapes(frames: Float32Array, d: number, k: number, what: string): void {
  if (!Number.isInteger(d) || d <= 0 || frames.length % d !== 0) {
    throw new RangeError(`${what}: frames.length ${frames.length} is not a multiple of D = ${d}`);
  }
  if (!Number.isInteger(k) || k <= 0) throw new RangeError(`${what}: K must be positive, got ${k}`);
}

/**
 * Nearest codebook entry of every frame, computed on the GPU: `[N]` u32 for
 * `frames` `[N, D]` f32 and `codebook` `[K, D]` f32 (squared Euclidean
 * distance, ties to the lowest index). One GPU round trip (>= 10 ms): batch
 * many files' frames into one call.
 */
export async function assignNearest(
  gpu: Gpu,
  frames: Float32Array,
  codebook: Float32Array,
  D: number,
  K: number,
  chunkRows?: number,
): Promise<Uint32Array> {
  checkShapes(frames, D, K, "assignNearest");
  if (codebook.length !== K * D) {
    throw new RangeError(`assignNearest: codebook has ${codebook.length} floats, expected K*D`);
  }
  const chunks = new FrameChunks(gpu, frames, D, K, chunkRows);
  try {
    const all = Uint32Array.from({ length: frames.length / D }, (_, i) => i);
    return (await chunks.scan(codebook, all)).best;
  } finally {
    chunks.destroy();
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

/** k-means++ seeding over `sample` (frame indices), D² sampling with `rng`; `[K, D]` f32. */
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
  let chosen = sample[rng.int(m)];
  for (let c = 0; c < k; c++) {
    centroids.set(frames.subarray(chosen * d, (chosen + 1) * d), c * d);
    if (c === k - 1) break;
    let total = 0;
    for (let s = 0; s < m; s++) {
      const dist = sqDist(frames, sample[s], centroids, c, d);
      if (dist < minDist[s]) minDist[s] = dist;
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

/**
 * The host half of a Lloyd iteration: new centroids = member means (f64 sums in
 * frame order), empty clusters re-seeded at the farthest frames. Returns the
 * new `[K, D]` f32 codebook.
 */
function updateCentroids(
  frames: Float32Array,
  assign: Uint32Array,
  old: Float32Array,
  d: number,
  k: number,
): Float32Array {
  const n = assign.length;
  const sums = new Float64Array(k * d);
  const counts = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const c = assign[i];
    counts[c]++;
    const a = i * d, b = c * d;
    for (let j = 0; j < d; j++) sums[b + j] += frames[a + j];
  }
  const next = new Float32Array(k * d);
  let dist: Float64Array | undefined;
  for (let c = 0; c < k; c++) {
    if (counts[c] > 0) {
      for (let j = 0; j < d; j++) next[c * d + j] = sums[c * d + j] / counts[c];
      continue;
    }
    if (!dist) {
      dist = new Float64Array(n);
      for (let i = 0; i < n; i++) dist[i] = sqDist(frames, i, old, assign[i], d);
    }
    let far = 0;
    for (let i = 1; i < n; i++) if (dist[i] > dist[far]) far = i;
    dist[far] = 0;
    next.set(frames.subarray(far * d, (far + 1) * d), c * d);
  }
  return next;
}

function inertiaOf(frames: Float32Array, assign: Uint32Array, codebook: Float32Array, d: number) {
  let s = 0;
  for (let i = 0; i < assign.length; i++) s += sqDist(frames, i, codebook, assign[i], d);
  return s;
}

/**
 * Fits a `K`-entry codebook to `frames` (`[N, D]` f32): seeded k-means++
 * initialisation, then up to `iterations` Lloyd iterations with the
 * assignment on the GPU and a fixed-order host update (see the module notes).
 * Deterministic: the same frames and options give the same bytes.
 * Throws a `UserError` when there are fewer frames than codebook entries.
 */
export async function fitKMeans(
  gpu: Gpu,
  frames: Float32Array,
  D: number,
  K: number,
  options: KMeansOptions,
): Promise<KMeansResult> {
  checkShapes(frames, D, K, "fitKMeans");
  const n = frames.length / D;
  if (n < K) {
    throw new UserError(`k-means needs at least as many frames as codebook entries`, {
      expected: `at least ${K} frames (the codebook size)`,
      found: `${n} frames`,
      hint: "use more or longer audio, or a smaller codebook_size",
    });
  }
  let codebook: Float32Array;
  if (options.initialCodebook) {
    if (options.initialCodebook.length !== K * D) {
      throw new RangeError(
        `fitKMeans: initialCodebook has ${options.initialCodebook.length} floats`,
      );
    }
    codebook = Float32Array.from(options.initialCodebook);
  } else {
    const rng = new Random(options.seed, "kmeans++");
    const sample = seededSubsample(n, Math.max(4096, 4 * K), rng);
    codebook = kmeansPlusPlus(frames, sample, D, K, rng);
  }
  const chunks = new FrameChunks(gpu, frames, D, K, options.chunkRows);
  // Relative slack on GPU (f32) distances, so bounds stay bounds despite rounding.
  const slack = 1e-6 * (8 + D);
  try {
    const assign = new Uint32Array(n);
    /** Upper bound on the distance from each frame to its centroid. */
    const upper = new Float64Array(n);
    /** Lower bound on the distance from each frame to every other centroid. */
    const lower = new Float64Array(n);
    let scanned = 0;
    const fullScan = async (which: Uint32Array, centroids: Float32Array) => {
      scanned += which.length;
      const r = await chunks.scan(centroids, which);
      let changed = 0;
      for (let j = 0; j < which.length; j++) {
        const i = which[j];
        if (assign[i] !== r.best[j]) changed++;
        assign[i] = r.best[j];
        upper[i] = r.d1[j] * (1 + slack);
        lower[i] = r.d2[j] * (1 - slack);
      }
      return changed;
    };
    await fullScan(Uint32Array.from({ length: n }, (_, i) => i), codebook);
    let inertia = inertiaOf(frames, assign, codebook, D);
    let done = 0;
    const shift = new Float64Array(K);
    while (done < options.iterations) {
      const next = updateCentroids(frames, assign, codebook, D, K);
      // How far each centroid moved; the largest two, for the lower bounds.
      let max1 = 0, max2 = 0, arg1 = -1;
      for (let k = 0; k < K; k++) {
        shift[k] = Math.sqrt(sqDist(next, k, codebook, k, D)) * (1 + 1e-12);
        if (shift[k] > max1) [max2, max1, arg1] = [max1, shift[k], k];
        else if (shift[k] > max2) max2 = shift[k];
      }
      const pending: number[] = [];
      for (let i = 0; i < n; i++) {
        const a = assign[i];
        upper[i] += shift[a];
        lower[i] -= a === arg1 ? max2 : max1;
        if (upper[i] < lower[i]) continue;
        upper[i] = Math.sqrt(sqDist(frames, i, next, a, D));
        if (upper[i] < lower[i]) continue;
        pending.push(i);
      }
      const changed = await fullScan(Uint32Array.from(pending), next);
      const nextInertia = inertiaOf(frames, assign, next, D);
      done++;
      const gain = inertia - nextInertia;
      codebook = next;
      inertia = nextInertia;
      if (changed === 0 || gain < options.tolerance * inertia) break;
    }
    return { codebook, inertia, iterations: done, scannedFraction: scanned / (n * (done + 1)) };
  } finally {
    chunks.destroy();
  }
}
