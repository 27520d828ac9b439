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
import { createStorageBuffer, type Gpu, type GpuStep, isSoftwareAdapter } from "./device.ts";
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
export const TUNING_VERSION = 10;

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
  for (const kind of KINDS) {
    const ms = await timeCandidates(gpu, kind, candidates[kind], shapes);
    timings[kind] = {};
    let best = 0;
    candidates[kind].forEach((c, i) => {
      timings[kind][c.name] = Math.round(ms[i] * 100) / 100; // the choice uses the unrounded
      if (ms[i] < ms[best]) best = i;
    });
    names[kind] = candidates[kind][best].name;
    tiles[kind] = candidates[kind][best].tile;
  }
  if (file) {
    const entry: z.infer<typeof CacheFile> = {
      version: TUNING_VERSION,
      adapter: gpu.adapterKey,
      shapes,
      choice: names,
      timings_ms: timings,
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
  return { tiles, names, source: "tuned", timings };
}

/** One line for manifests and logs: "NT texture 32x8, NN …, TN … (tuned)". */
export function describeChoice(choice: MatmulChoice): string {
  const kinds = KINDS.map((k) => `${k} ${choice.names[k]}`).join(", ");
  return `${kinds} (${choice.source}${choice.reason ? `: ${choice.reason}` : ""})`;
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
  return { tiles, names: parsed.choice, source: "cache" };
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
 * few rows (which compiles).
 */
async function timeCandidates(
  gpu: Gpu,
  kind: MatmulKind,
  candidates: MatmulCandidate[],
  shapes: ProductShapes,
): Promise<number[]> {
  const bench = createProductBench(gpu, kind, shapes);
  try {
    const runs = candidates.map((c) => bench.candidate(c.tile));
    for (const run of runs) await run.pass(Math.min(shapes.M, 16));
    return await timeInterleaved(runs.map((run) => () => run.pass()));
  } finally {
    bench.destroy();
  }
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
  // Inputs hold small values so nothing overflows; their contents do not change the time.
  const a = createStorageBuffer(gpu, M * Math.max(maxN, maxK) * 4, "tune:a");
  const b = createStorageBuffer(gpu, Math.max(maxN * maxK, M * maxK) * 4, "tune:b");
  const c = createStorageBuffer(gpu, Math.max(M * maxN, M * maxK, maxN * maxK) * 4, "tune:c");
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
  return {
    /** One candidate's products over the shapes; `pass` times one run of them (ms). */
    candidate(tile: MatmulTile) {
      const steps: [GpuStep<MatmulDims>, MatmulDims][] = [];
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
      }
      return {
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
