/**
 * Matrix-product kernels chosen per adapter: each product (NT forward, NN
 * input gradient, TN weight gradient) has a few candidate tilings
 * ({@link matmulCandidates}); the first graph built for a model shape on an
 * adapter times them on that model's real products and keeps the fastest,
 * and the choice is cached in the artifact store
 * (`<store>/cache/kernels/<sha256>.json`, keyed by the adapter, the WebGPU
 * implementation, the shapes and {@link TUNING_VERSION}), so later builds
 * read it instead of timing again.
 *
 * Every candidate computes the same sums in the same order (matmul_test.ts
 * checks them bit for bit against each other and against the CPU
 * reference on awkward shapes, on the software adapter), so the choice
 * changes speed only, never results; the train job still records it in the
 * manifest.
 *
 * Before a candidate is timed it must build and compute right on this
 * adapter: its pipelines are created inside WebGPU error scopes, and one of
 * its products (the model's smallest, at an awkward row count, over two
 * row blocks for a weight gradient) on seeded random operands is compared
 * with a float64 product on the host. A candidate that fails either is left
 * out with its reason ({@link MatmulChoice.rejected}), so that a kernel
 * that only a real GPU breaks (a driver's miscompile, a race that the
 * software adapter's scheduling hides) is never timed as the fastest, which
 * a pass that did nothing would be; when every candidate of a product
 * fails, the choice fails, naming them.
 *
 * A cache file that does not parse, or names a kernel that no longer
 * exists, is never trusted: the kernels are timed again and the file
 * rewritten (atomically). A cache that cannot be read or written costs the
 * timing, never the run. Deleting `cache/kernels/` makes the next run time
 * the kernels again (after a change of machine load, say).
 *
 * @module
 */
import { z } from "zod";
import { dirname, join } from "node:path";
import { sha256Hex } from "../artifacts/hash.ts";
import { UserError } from "../errors/mod.ts";
import {
  createStorageBuffer,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
  readFloat32,
} from "./device.ts";
import { Random } from "../random/mod.ts";
import {
  createMatmulNN,
  createMatmulNT,
  createMatmulTN,
  createStepPacks,
  HARDWARE_TILE,
  type MatmulDims,
  type MatmulTile,
  type MatmulTiles,
  SOFTWARE_TILE,
  SOFTWARE_TILE_TN,
  type StepPacks,
  subgroupXRuns,
} from "./ops/matmul.ts";
import { subgroupXFits } from "./ops/matmul_texture.ts";

/** Bump when the candidates or the timing method change: old cache files are then ignored. */
export const TUNING_VERSION = 11;

/** One of the three products. */
export type MatmulKind = "NT" | "NN" | "TN";

const KINDS: MatmulKind[] = ["NT", "NN", "TN"];

/** A named tiling. */
export interface MatmulCandidate {
  name: string;
  tile: MatmulTile;
}

/**
 * Software adapters: texture operands read as images, blocks of 16x8 to
 * 32x32 outputs an invocation. The larger blocks read fewer texels per
 * multiply-add and spill more; which wins depends on the shapes (at the
 * bench configuration, d 128, 32x32 ran a step 1.4x slower than the tuned
 * 32x16/16x16; at d 256, 4096 rows, 11% faster), and 32x32 costs about a
 * minute of cold compiling, paid when the tuner times it.
 */
const SOFTWARE: Record<MatmulKind, MatmulCandidate[]> = {
  NT: [
    { name: "texture 16x8", tile: { ...SOFTWARE_TILE, texture: true } },
    { name: "texture 32x8", tile: { ...SOFTWARE_TILE, rows: 32, texture: true } },
    { name: "texture 32x16", tile: { ...SOFTWARE_TILE, rows: 32, cols: 16, texture: true } },
    { name: "texture 32x32", tile: { ...SOFTWARE_TILE, rows: 32, cols: 32, texture: true } },
    { name: "storage 16x8", tile: { ...SOFTWARE_TILE, texture: false } },
  ],
  NN: [
    { name: "texture 16x8", tile: { ...SOFTWARE_TILE, texture: true } },
    { name: "texture 32x8", tile: { ...SOFTWARE_TILE, rows: 32, texture: true } },
    { name: "texture 32x16", tile: { ...SOFTWARE_TILE, rows: 32, cols: 16, texture: true } },
    { name: "texture 32x32", tile: { ...SOFTWARE_TILE, rows: 32, cols: 32, texture: true } },
    { name: "storage 16x8", tile: { ...SOFTWARE_TILE, texture: false } },
  ],
  TN: [
    { name: "texture 16x16", tile: { ...SOFTWARE_TILE_TN, texture: true } },
    { name: "texture 32x8", tile: { ...SOFTWARE_TILE, rows: 32, texture: true } },
    { name: "texture 32x16", tile: { ...SOFTWARE_TILE, rows: 32, cols: 16, texture: true } },
    { name: "texture 32x32", tile: { ...SOFTWARE_TILE, rows: 32, cols: 32, texture: true } },
    { name: "storage 16x16", tile: { ...SOFTWARE_TILE_TN, texture: false } },
  ],
};

/**
 * The software candidates where the device has 8-invocation subgroups: the
 * texture blocks with X's texels read once per subgroup and broadcast
 * (matmul.ts MatmulTile.subgroupX), 10-20% faster at the bench
 * configuration's products, the same bits.
 */
const SOFTWARE_SUBGROUPS = Object.fromEntries(
  KINDS.map((kind) => [
    kind,
    SOFTWARE[kind].map((c) =>
      c.tile.texture && subgroupXFits(c.tile)
        ? { name: `${c.name} sg`, tile: { ...c.tile, subgroupX: true } }
        : c
    ),
  ]),
) as Record<MatmulKind, MatmulCandidate[]>;

/**
 * Hardware GPUs: small register blocks in 256-invocation workgroups, read
 * from storage buffers or through textures (the texture cache), or from
 * slices the workgroup copies into workgroup memory (64x64 to 128x128
 * outputs a workgroup). Not yet timed on a real GPU; correct on the software
 * adapter (matmul_test.ts).
 */
const HARDWARE_CANDIDATES: MatmulCandidate[] = [
  { name: "storage 4x4 wg16x16", tile: { ...HARDWARE_TILE, texture: false } },
  {
    name: "workgroup 4x4 wg16x16 k16",
    tile: { ...HARDWARE_TILE, texture: false, workgroupK: 16 },
  },
  {
    name: "workgroup 8x4 wg16x16 k16",
    tile: { ...HARDWARE_TILE, rows: 8, texture: false, workgroupK: 16 },
  },
  {
    name: "workgroup 8x8 wg16x16 k8",
    tile: { ...HARDWARE_TILE, rows: 8, cols: 8, texture: false, workgroupK: 8 },
  },
  { name: "storage 8x4 wg16x16", tile: { ...HARDWARE_TILE, rows: 8, texture: false } },
  { name: "texture 4x4 wg16x16", tile: { ...HARDWARE_TILE, texture: true } },
  {
    name: "texture 8x8 wg16x8",
    tile: { ...HARDWARE_TILE, rows: 8, cols: 8, wgY: 8, texture: true },
  },
];

/**
 * Weight gradients on hardware GPUs also run their row blocks in parallel
 * (matmul.ts `blockParallel`): a `[512, 512]` gradient is 64 workgroups of
 * 64x64 outputs, too few for a large GPU, where eight blocks of rows at once
 * are 512.
 */
const HARDWARE_TN: MatmulCandidate[] = [
  ...HARDWARE_CANDIDATES,
  {
    name: "storage 4x4 wg16x16 parallel blocks",
    tile: { ...HARDWARE_TILE, texture: false, blockParallel: true },
  },
  {
    name: "workgroup 4x4 wg16x16 k16 parallel blocks",
    tile: { ...HARDWARE_TILE, texture: false, workgroupK: 16, blockParallel: true },
  },
  {
    name: "workgroup 8x8 wg16x16 k8 parallel blocks",
    tile: {
      ...HARDWARE_TILE,
      rows: 8,
      cols: 8,
      texture: false,
      workgroupK: 8,
      blockParallel: true,
    },
  },
];

const HARDWARE: Record<MatmulKind, MatmulCandidate[]> = {
  NT: HARDWARE_CANDIDATES,
  NN: HARDWARE_CANDIDATES,
  TN: HARDWARE_TN,
};

/** The candidates for `gpu`'s adapter; the first of each kind is the untuned default. */
export function matmulCandidates(gpu: Gpu): Record<MatmulKind, MatmulCandidate[]> {
  if (!isSoftwareAdapter(gpu)) return HARDWARE;
  return subgroupXRuns(gpu) ? SOFTWARE_SUBGROUPS : SOFTWARE;
}

/** Every candidate of every adapter kind, for tests that must cover them all. */
export function allMatmulCandidates(): Record<MatmulKind, MatmulCandidate[]> {
  const all = {} as Record<MatmulKind, MatmulCandidate[]>;
  for (const kind of KINDS) {
    all[kind] = [...SOFTWARE[kind], ...SOFTWARE_SUBGROUPS[kind], ...HARDWARE[kind]];
  }
  return all;
}

/** The products of one model step: each (N, K) once per use, at M rows. */
export interface ProductShapes {
  /** Rows of the activations (B*S at the largest batch). */
  M: number;
  /** Rows per block of a weight-gradient product (lib/model/backward.ts WEIGHT_GRAD_ROWS). */
  tnRows: number;
  /** (N, K) of every linear layer use, in forward order: the NT products. */
  layers: { N: number; K: number }[];
  /**
   * (N, K) of the input- and weight-gradient products (NN and TN), where
   * they differ from `layers` (products that the backward pass joins);
   * default `layers`.
   */
  backward?: { N: number; K: number }[];
}

/**
 * The products of a SamOut model with `hidden`, `layers` and `vocab` at `M`
 * rows, as the graph runs them: Down's hidden half (`d -> d`; its position
 * half runs once per position, at S rows, and is left out:
 * lib/gpu/ops/position.ts), head0..2, ffn1, gate, ffn2, then the head; in
 * the backward head0..2 are one product of reduction 3d.
 */
export function samoutProductShapes(
  cfg: { hidden: number; layers: number; vocabSize: number },
  M: number,
  tnRows: number,
): ProductShapes {
  const d = cfg.hidden;
  const layers: { N: number; K: number }[] = [];
  const backward: { N: number; K: number }[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    layers.push({ N: d, K: d }, { N: d, K: d }, { N: d, K: d }, { N: d, K: d });
    // The backward joins head0..2 into one product of 3d (lib/model/backward.ts).
    backward.push({ N: d, K: d }, { N: 3 * d, K: d });
    for (const use of [{ N: 2 * d, K: d }, { N: 2 * d, K: d }, { N: d, K: 2 * d }]) {
      layers.push(use);
      backward.push(use);
    }
  }
  layers.push({ N: cfg.vocabSize, K: d }); // head
  backward.push({ N: cfg.vocabSize, K: d });
  return { M, tnRows: Math.min(tnRows, M), layers, backward };
}

/** What {@link chooseMatmulTiles} chose, and how. */
export interface MatmulChoice {
  tiles: MatmulTiles;
  /** Candidate names per kind. */
  names: Record<MatmulKind, string>;
  /** "cache": read from the store; "tuned": timed now; "default": not timed (see `reason`). */
  source: "cache" | "tuned" | "default";
  /** Milliseconds of one pass over the shapes, per kind and candidate (when timed now). */
  timings?: Record<MatmulKind, Record<string, number>>;
  /** Why no timing ran (source "default"). */
  reason?: string;
  /**
   * Candidates left out before timing, per kind, with the reason: a WebGPU
   * error while building or running them, or products that differ from the
   * host's (when timed now, or read from a cache that recorded them).
   */
  rejected?: Partial<Record<MatmulKind, Record<string, string>>>;
}

/** Options of {@link chooseMatmulTiles}. */
export interface ChooseOptions {
  /** `<store>/cache`: where choices are kept; none: time every call, keep nothing. */
  cacheDir?: string;
  /**
   * Products whose multiply-adds per step are below this keep the defaults
   * untimed: timing compiles every candidate (tens of seconds cold on
   * llvmpipe) and runs each a few times, which a small model's whole
   * training may not repay. Default 5e8 (the default pipeline's model does
   * 1.9e8 per forward and keeps the defaults; the bench model 1e9).
   */
  minWork?: number;
  /** Progress messages. */
  log?: (message: string) => void;
  /** The candidates to time (default: {@link matmulCandidates} of the adapter). */
  candidates?: Record<MatmulKind, MatmulCandidate[]>;
}

const CacheFile = z.object({
  version: z.literal(TUNING_VERSION),
  adapter: z.string(),
  shapes: z.unknown(),
  choice: z.object({ NT: z.string(), NN: z.string(), TN: z.string() }),
  timings_ms: z.record(z.string(), z.record(z.string(), z.number())),
  rejected: z.record(z.string(), z.record(z.string(), z.string())).optional(),
  tuned_at: z.string(),
});

/** The default candidate of each kind for `gpu`. */
export function defaultChoice(gpu: Gpu, reason: string): MatmulChoice {
  const c = matmulCandidates(gpu);
  return {
    tiles: { NT: c.NT[0].tile, NN: c.NN[0].tile, TN: c.TN[0].tile },
    names: { NT: c.NT[0].name, NN: c.NN[0].name, TN: c.TN[0].name },
    source: "default",
    reason,
  };
}

/**
 * The fastest candidate of each kind for these shapes on this adapter: from
 * the cache when it holds a valid entry, else timed now (and cached).
 */
export async function chooseMatmulTiles(
  gpu: Gpu,
  shapes: ProductShapes,
  opts: ChooseOptions = {},
): Promise<MatmulChoice> {
  const work = shapes.layers.reduce((s, l) => s + shapes.M * l.N * l.K, 0);
  const minWork = opts.minWork ?? 5e8;
  if (work < minWork) {
    return defaultChoice(gpu, `the products are small (${work.toExponential(1)} multiply-adds)`);
  }
  const candidates = opts.candidates ?? matmulCandidates(gpu);
  const key = await sha256Hex(
    JSON.stringify({
      v: TUNING_VERSION,
      adapter: gpu.adapterKey,
      shapes,
      candidates: KINDS.map((k) => candidates[k].map((c) => c.name)),
    }),
  );
  const file = opts.cacheDir ? join(opts.cacheDir, "kernels", `${key}.json`) : undefined;
  if (file) {
    const cached = await readCache(file, candidates, opts.log);
    if (cached) return cached;
  }
  opts.log?.("timing the matrix-product kernels on this adapter (once per model shape)");
  const timings = {} as Record<MatmulKind, Record<string, number>>;
  const names = {} as Record<MatmulKind, string>;
  const tiles = {} as MatmulTiles;
  const rejected: NonNullable<MatmulChoice["rejected"]> = {};
  for (const kind of KINDS) {
    const { ms, failures } = await timeCandidates(gpu, kind, candidates[kind], shapes);
    timings[kind] = {};
    let best = -1;
    candidates[kind].forEach((c, i) => {
      if (failures[i] !== undefined) {
        (rejected[kind] ??= {})[c.name] = failures[i];
        opts.log?.(`${kind} kernel "${c.name}" left out: ${failures[i]}`);
        return;
      }
      timings[kind][c.name] = Math.round(ms[i] * 100) / 100; // the choice uses the unrounded
      if (best < 0 || ms[i] < ms[best]) best = i;
    });
    if (best < 0) {
      throw new UserError(
        `no ${kind} matrix-product kernel builds and computes right on this adapter ` +
          `(${gpu.adapterDescription})`,
        {
          expected: "at least one candidate whose products match the host's",
          found: Object.entries(rejected[kind] ?? {}).map(([n, why]) => `${n}: ${why}`)
            .join("; "),
          hint: "the adapter's driver or its WebGPU layer may be at fault: update the driver, " +
            "or try another adapter (DENO_WEBGPU_BACKEND=gl, or Mesa's llvmpipe)",
        },
      );
    }
    names[kind] = candidates[kind][best].name;
    tiles[kind] = candidates[kind][best].tile;
  }
  const anyRejected = Object.keys(rejected).length > 0;
  if (file) {
    const entry: z.infer<typeof CacheFile> = {
      version: TUNING_VERSION,
      adapter: gpu.adapterKey,
      shapes,
      choice: names,
      timings_ms: timings,
      ...(anyRejected && { rejected }),
      tuned_at: new Date().toISOString(),
    };
    try {
      await writeAtomic(file, JSON.stringify(entry, null, 2) + "\n");
    } catch (e) {
      // The choice is speed only: a store whose cache cannot be written still trains.
      opts.log?.(
        `could not keep the kernel choice in ${file} (${errorText(e)}); it is used for this run`,
      );
    }
  }
  return { tiles, names, source: "tuned", timings, ...(anyRejected && { rejected }) };
}

/**
 * One line for manifests and logs: "NT texture 32x8, NN …, TN … (tuned)",
 * naming any candidate left out as broken on this adapter.
 */
export function describeChoice(choice: MatmulChoice): string {
  const kinds = KINDS.map((k) => `${k} ${choice.names[k]}`).join(", ");
  const left = KINDS.flatMap((k) =>
    Object.keys(choice.rejected?.[k] ?? {}).map((n) => `${k} ${n}`)
  );
  return `${kinds} (${choice.source}${choice.reason ? `: ${choice.reason}` : ""}${
    left.length ? `; left out as broken here: ${left.join(", ")}` : ""
  })`;
}

async function readCache(
  file: string,
  candidates: Record<MatmulKind, MatmulCandidate[]>,
  log?: (message: string) => void,
): Promise<MatmulChoice | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      log?.(`could not read the kernel-choice cache ${file} (${errorText(e)}); timing the kernels`);
    }
    return undefined;
  }
  let parsed: z.infer<typeof CacheFile>;
  try {
    parsed = CacheFile.parse(JSON.parse(text));
  } catch {
    log?.(`the kernel-choice cache ${file} is damaged; timing the kernels again`);
    return undefined;
  }
  const tiles = {} as MatmulTiles;
  for (const kind of KINDS) {
    const found = candidates[kind].find((c) => c.name === parsed.choice[kind]);
    if (!found) {
      log?.(`the kernel-choice cache ${file} names an unknown ${kind} kernel; timing again`);
      return undefined;
    }
    tiles[kind] = found.tile;
  }
  return {
    tiles,
    names: parsed.choice,
    source: "cache",
    ...(parsed.rejected && { rejected: parsed.rejected }),
  };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/**
 * Milliseconds of one pass of `kind` products over `shapes` for each of
 * `candidates` ({@link timeInterleaved}), after an untimed pass of each at a
 * few rows (which compiles) and a check of its results: `failures[i]` says
 * why candidate i was left out (its `ms` is then Infinity).
 */
async function timeCandidates(
  gpu: Gpu,
  kind: MatmulKind,
  candidates: MatmulCandidate[],
  shapes: ProductShapes,
): Promise<{ ms: number[]; failures: (string | undefined)[] }> {
  const bench = createProductBench(gpu, kind, shapes);
  try {
    const failures: (string | undefined)[] = [];
    const runs: (ProductRun | undefined)[] = [];
    for (const c of candidates) {
      const { run, failure } = await tryCandidate(gpu, () => bench.candidate(c.tile), shapes.M);
      runs.push(run);
      failures.push(failure);
    }
    const timed = runs.flatMap((run) => run ? [run] : []);
    const ms = await timeInterleaved(timed.map((run) => () => run.pass()));
    let next = 0;
    return { ms: runs.map((run) => (run ? ms[next++] : Infinity)), failures };
  } finally {
    bench.destroy();
  }
}

/** One candidate's products in a {@link createProductBench}. */
interface ProductRun {
  /** Runs the products over the shapes (at `rows` rows if given); resolves to its milliseconds. */
  pass(rows?: number): Promise<number>;
  /** Runs the check product; resolves to why its result is wrong, or undefined. */
  check(): Promise<string | undefined>;
}

/**
 * Builds one candidate, runs it once at a few rows (which compiles it) and
 * checks its results, all inside WebGPU error scopes: a candidate that
 * throws, raises a WebGPU error or computes wrong is a `failure`.
 */
async function tryCandidate(
  gpu: Gpu,
  build: () => ProductRun,
  M: number,
): Promise<{ run?: ProductRun; failure?: string }> {
  const device = gpu.device;
  const scopes: GPUErrorFilter[] = ["out-of-memory", "internal", "validation"];
  for (const scope of scopes) device.pushErrorScope(scope);
  let run: ProductRun | undefined;
  let failure: string | undefined;
  try {
    run = build();
    await run.pass(Math.min(M, 16));
    failure = await run.check();
  } catch (e) {
    failure = `it threw: ${e instanceof Error ? e.message : String(e)}`;
  }
  // A WebGPU error is the cause of whatever else went wrong: it comes first.
  let gpuError: string | undefined;
  for (const scope of [...scopes].reverse()) {
    const error = await device.popErrorScope();
    if (error && gpuError === undefined) gpuError = `WebGPU ${scope} error: ${error.message}`;
  }
  failure = gpuError ?? failure;
  return failure === undefined ? { run } : { failure };
}

/** The float64 product of a check and, per output, the sum of its terms' magnitudes. */
export interface ProductReference {
  dims: MatmulDims;
  kind: MatmulKind;
  exact: Float64Array;
  size: Float64Array;
}

/**
 * The float64 product `kind` of `a` and `b` at `dims`: NT a [M,K], b [N,K]
 * -> [M,N]; NN a [M,N], b [N,K] -> [M,K]; TN a [M,N], b [M,K] -> [N,K].
 */
export function productReference(
  kind: MatmulKind,
  dims: MatmulDims,
  a: Float32Array,
  b: Float32Array,
): ProductReference {
  const { M, N, K } = dims;
  // Output (r, c) sums a[r*xr + t*xt] * b[c*yc + t*yt] over t < depth.
  const [rows, cols, depth, xr, xt, yc, yt] = kind === "NT"
    ? [M, N, K, K, 1, K, 1]
    : kind === "NN"
    ? [M, K, N, N, 1, 1, K]
    : [N, K, M, 1, N, 1, K];
  const exact = new Float64Array(rows * cols);
  const size = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0, magnitude = 0;
      for (let t = 0, x = r * xr, y = c * yc; t < depth; t++, x += xt, y += yt) {
        const term = a[x] * b[y];
        sum += term;
        magnitude += Math.abs(term);
      }
      exact[r * cols + c] = sum;
      size[r * cols + c] = magnitude;
    }
  }
  return { dims, kind, exact, size };
}

/**
 * Why `got` is not the reference product, or undefined when every output is
 * within float32 rounding of it: |got - exact| <= 1e-4 x the sum of the
 * magnitudes of its terms (float32 sums of up to thousands of terms stay far
 * inside that; a wrong index, a missed block or a race does not).
 */
export function referenceMismatch(ref: ProductReference, got: Float32Array): string | undefined {
  let worst = { excess: 1, index: -1 };
  for (let i = 0; i < ref.exact.length; i++) {
    const error = Math.abs(got[i] - ref.exact[i]);
    const excess = Number.isNaN(error) ? Infinity : error / (1e-4 * ref.size[i] + 1e-30);
    if (excess > worst.excess) worst = { excess, index: i };
  }
  if (worst.index < 0) return undefined;
  const { M, N, K } = ref.dims;
  return `its ${ref.kind} product ${M}x${N}x${K} differs from the host's at output ` +
    `${worst.index} (${got[worst.index]} against ${ref.exact[worst.index].toPrecision(7)})`;
}

/** {@link referenceMismatch} of `got` against {@link productReference} of `a` and `b`. */
export function productMismatch(
  kind: MatmulKind,
  dims: MatmulDims,
  a: Float32Array,
  b: Float32Array,
  got: Float32Array,
): string | undefined {
  return referenceMismatch(productReference(kind, dims, a, b), got);
}

/**
 * The time of each of `passes` (a function that runs one and returns its
 * milliseconds): the mean of two passes, the first round in the given order
 * and the second in reverse, so that a machine whose speed drifts steadily
 * during the timing (shared hosts drift by 20% within minutes) favours none of
 * them (timed one after another, the first would run on the fastest machine
 * of all). A candidate 1.5x behind the best after the first round is not timed
 * again (its first time is returned).
 */
export async function timeInterleaved(passes: (() => Promise<number>)[]): Promise<number[]> {
  const first: number[] = [];
  for (const pass of passes) first.push(await pass());
  const best = Math.min(...first);
  const ms = [...first];
  for (let i = passes.length - 1; i >= 0; i--) {
    if (first[i] <= 1.5 * best) ms[i] = (first[i] + await passes[i]()) / 2;
  }
  return ms;
}

/**
 * The scratch operands of {@link timeCandidates} and the packs of them, shared
 * by every candidate: each candidate's products on them, one pass at a time.
 */
function createProductBench(gpu: Gpu, kind: MatmulKind, shapes: ProductShapes) {
  const uses = kind === "NT" ? shapes.layers : shapes.backward ?? shapes.layers;
  const maxN = Math.max(...uses.map((l) => l.N));
  const maxK = Math.max(...uses.map((l) => l.K));
  const M = shapes.M;
  // The graph sums a weight gradient's rows in blocks (matmul.ts blockRows).
  const blockRows = kind === "TN" && shapes.tnRows < M && shapes.tnRows % 64 === 0
    ? shapes.tnRows
    : undefined;
  const a = createStorageBuffer(gpu, M * Math.max(maxN, maxK) * 4, "tune:a");
  const b = createStorageBuffer(gpu, Math.max(maxN * maxK, M * maxK) * 4, "tune:b");
  const c = createStorageBuffer(gpu, Math.max(M * maxN, M * maxK, maxN * maxK) * 4, "tune:c");
  // The check: the smallest product at an awkward row count (for a weight
  // gradient in blocks, one block and part of the next), on seeded values in
  // [-1, 1) at the start of a and b; the rest stays zero (contents do not
  // change the time).
  const smallest = uses.reduce((s, l) => (l.N * l.K < s.N * s.K ? l : s));
  const checkDims = {
    M: Math.min(M, blockRows ? blockRows + 67 : 67),
    N: smallest.N,
    K: smallest.K,
  };
  const [aCount, bCount] = kind === "NT"
    ? [checkDims.M * checkDims.K, checkDims.N * checkDims.K]
    : kind === "NN"
    ? [checkDims.M * checkDims.N, checkDims.N * checkDims.K]
    : [checkDims.M * checkDims.N, checkDims.M * checkDims.K];
  const rng = new Random(11, "tuning:check");
  const hostA = Float32Array.from({ length: aCount }, () => rng.range(-1, 1));
  const hostB = Float32Array.from({ length: bCount }, () => rng.range(-1, 1));
  gpu.device.queue.writeBuffer(a, 0, hostA);
  gpu.device.queue.writeBuffer(b, 0, hostB);
  const outCount = kind === "NT"
    ? checkDims.M * checkDims.N
    : kind === "NN"
    ? checkDims.M * checkDims.K
    : checkDims.N * checkDims.K;
  // The operands the graph packs once per step are packed beforehand, as the
  // graph does: a candidate is timed on what its products cost in a step.
  // Shapes share their packs (the same buffers, the same rows), and so do
  // candidates: a pack depends only on whether the tile reads textures.
  const packs = new Map<string, StepPacks>();
  const packsFor = (dims: MatmulDims, tile: MatmulTile) => {
    const key = `${dims.N}x${dims.K}:${tile.texture ? "texture" : "storage"}`;
    let p = packs.get(key);
    if (!p) {
      p = createStepPacks(gpu, kind, { a, b }, dims, tile);
      packs.set(key, p);
      const fill = gpu.device.createCommandEncoder();
      p.encode(fill);
      gpu.device.queue.submit([fill.finish()]);
    }
    return p;
  };
  const created: GpuStep<MatmulDims>[] = [];
  let reference: ProductReference | undefined; // computed at the first check, shared by all
  return {
    /** One candidate's products over the shapes; `pass` times one run of them (ms). */
    candidate(tile: MatmulTile): ProductRun {
      const steps: [GpuStep<MatmulDims>, MatmulDims][] = [];
      let checkStep: GpuStep<MatmulDims> | undefined;
      for (const l of uses) {
        const dims = { M, N: l.N, K: l.K };
        const p = packsFor(dims, tile);
        const buffers = { a, b, c, packedA: p.packedA, packedB: p.packedB };
        const step = kind === "NT"
          ? createMatmulNT(gpu, buffers, tile)
          : kind === "NN"
          ? createMatmulNN(gpu, buffers, tile)
          : createMatmulTN(gpu, { ...buffers, blockRows }, tile);
        created.push(step);
        steps.push([step, dims]);
        if (l === smallest) checkStep = step;
      }
      return {
        async check(): Promise<string | undefined> {
          const enc = gpu.device.createCommandEncoder();
          enc.clearBuffer(c);
          const p = enc.beginComputePass();
          checkStep!.encode(p, checkDims);
          p.end();
          gpu.device.queue.submit([enc.finish()]);
          const got = await readFloat32(gpu, c, outCount);
          reference ??= productReference(kind, checkDims, hostA, hostB);
          return referenceMismatch(reference, got);
        },
        async pass(rows?: number): Promise<number> {
          const enc = gpu.device.createCommandEncoder();
          const p = enc.beginComputePass();
          for (const [step, dims] of steps) step.encode(p, rows ? { ...dims, M: rows } : dims);
          p.end();
          const t0 = performance.now();
          gpu.device.queue.submit([enc.finish()]);
          await gpu.device.queue.onSubmittedWorkDone();
          return performance.now() - t0;
        },
      };
    },
    destroy() {
      for (const step of created) step.destroy();
      for (const p of packs.values()) p.destroy();
      for (const buf of [a, b, c]) buf.destroy();
    },
  };
}
