/**
 * Benchmark of the WGSL matmul (lib/gpu/ops/matmul.ts): the forward (NT)
 * kernel at 1024³ in GFLOP/s, the three kernels at the training shapes
 * (M = 16 x 128 rows; TN summing them in 512-row blocks, as the graph does, with
 * the operands the graph packs once per step packed beforehand), the
 * adapter's register-only FMA rate (bench/ceiling.ts), and, where
 * `/usr/bin/python3` has numpy, numpy's float32 `A @ B.T` at 1024³ in the
 * same command as the CPU ceiling, with the OpenBLAS kernels that probe fastest
 * on this CPU (bench/blas.ts).
 *
 * Timing: one warm-up, then three runs of `reps` dispatches (one compute pass
 * each) in one submission and one readback at the end to wait for the queue;
 * their median less the median of three empty runs (the fixed cost of a run)
 * is the time of `reps` products.
 *
 * Run alone: `deno run -A bench/matmul.ts [--json]`.
 *
 * @module
 */
import { createStorageBufferFrom, type Gpu, readFloat32, requestGpu } from "../lib/gpu/device.ts";
import {
  createMatmulNN,
  createMatmulNT,
  createMatmulTN,
  createStepPacks,
  defaultTile,
  type MatmulDims,
  type MatmulTile,
} from "../lib/gpu/ops/matmul.ts";
import { Random } from "../lib/random/mod.ts";
import { measureFmaCeiling } from "./ceiling.ts";
import { describeOpenBlas, fastestOpenBlas, numpyMatmul } from "./blas.ts";

/** One timed shape. */
export interface MatmulShapeResult {
  /** NT: y = x W^T (forward); NN: dX = dY W; TN: dW = dY^T X. */
  kernel: "NT" | "NN" | "TN";
  M: number;
  N: number;
  K: number;
  gflops: number;
  /** Milliseconds per product. */
  ms: number;
}

/** What {@link benchMatmul} measured. */
export interface MatmulBenchResult {
  adapter: string;
  /** NT kernel at M = N = K = 1024. */
  gflops: number;
  shapes: MatmulShapeResult[];
  /** numpy float32 `A @ B.T` at 1024³, when numpy runs here. */
  numpy_gflops?: number;
  /** The BLAS library numpy used (OpenBLAS, or Debian's reference BLAS). */
  numpy_blas?: string;
  /** OpenBLAS's kernels, chosen as the fastest of those this CPU runs (bench/blas.ts). */
  numpy_openblas?: string;
  /** gflops / numpy_gflops. */
  ratio?: number;
  /** The adapter's register-only multiply-add rate (bench/ceiling.ts), GFLOP/s. */
  ceiling_gflops: number;
}

/** (N, K) of the linear layers of the d = 128 training configuration, V = 1100. */
const TRAINING_NK: [number, number][] = [[128, 256], [128, 128], [256, 128], [1100, 128]];
const TRAINING_M = 16 * 128;
const TN_BLOCK_ROWS = 512;

const FACTORIES = { NT: createMatmulNT, NN: createMatmulNN, TN: createMatmulTN };

/** Times one product of `kernel` at `dims`, with about `flopBudget` FLOPs of timed work. */
export async function timeMatmul(
  gpu: Gpu,
  kernel: "NT" | "NN" | "TN",
  dims: MatmulDims,
  flopBudget = 2e9,
  tile?: MatmulTile,
  /** TN: sum the rows in blocks of this many (matmul.ts blockRows), as the graph does. */
  blockRows?: number,
): Promise<MatmulShapeResult> {
  const { M, N, K } = dims;
  const rng = new Random(1, "bench/matmul");
  const random = (n: number) => Float32Array.from({ length: n }, () => rng.range(-1, 1));
  // NT: a [M,K], b [N,K], c [M,N]; NN: a [M,N], b [N,K], c [M,K]; TN: a [M,N], b [M,K], c [N,K].
  const [aSize, bSize, cSize] = kernel === "NT"
    ? [M * K, N * K, M * N]
    : kernel === "NN"
    ? [M * N, N * K, M * K]
    : [M * N, M * K, N * K];
  const a = createStorageBufferFrom(gpu, random(aSize), "bench:a");
  const b = createStorageBufferFrom(gpu, random(bSize), "bench:b");
  const c = createStorageBufferFrom(gpu, new Float32Array(cSize), "bench:c");
  // Operands the graph packs once per step come packed, as in a step.
  const packs = createStepPacks(gpu, kernel, { a, b }, dims, tile ?? defaultTile(gpu, kernel));
  const step = FACTORIES[kernel](
    gpu,
    { a, b, c, packedA: packs.packedA, packedB: packs.packedB, blockRows },
    tile,
  );
  const fill = gpu.device.createCommandEncoder();
  packs.encode(fill);
  gpu.device.queue.submit([fill.finish()]);
  const flops = 2 * M * N * K;
  const run = async (reps: number) => {
    const encoder = gpu.device.createCommandEncoder();
    for (let r = 0; r < reps; r++) {
      const pass = encoder.beginComputePass();
      step.encode(pass, dims);
      pass.end();
    }
    gpu.device.queue.submit([encoder.finish()]);
    await readFloat32(gpu, c, 1);
  };
  const timed = async (reps: number) => {
    const start = performance.now();
    await run(reps);
    return performance.now() - start;
  };
  const median3 = async (reps: number) => {
    const t = [await timed(reps), await timed(reps), await timed(reps)].sort((x, y) => x - y);
    return t[1];
  };
  try {
    await run(1);
    // Each timed run pays a fixed cost besides its products (the submit,
    // waking the adapter's threads, the readback: 10 ms or more on llvmpipe,
    // as much as a few small products): the median of three empty runs is
    // taken from the median of three timed ones.
    const reps = Math.max(3, Math.round(flopBudget / flops / 3));
    const fixed = await median3(0);
    const total = await median3(reps);
    const ms = (total > fixed ? total - fixed : total) / reps;
    return { kernel, M, N, K, gflops: flops / ms / 1e6, ms };
  } finally {
    step.destroy();
    packs.destroy();
    for (const buffer of [a, b, c]) buffer.destroy();
  }
}

/** Runs the benchmark (a few seconds on llvmpipe) and prints a summary to stderr. */
export async function benchMatmul(): Promise<MatmulBenchResult> {
  const gpu = await requestGpu();
  const big = await timeMatmul(gpu, "NT", { M: 1024, N: 1024, K: 1024 }, 6e9);
  const shapes: MatmulShapeResult[] = [big];
  for (const [N, K] of TRAINING_NK) {
    for (const kernel of ["NT", "NN", "TN"] as const) {
      // The graph sums TN's rows in blocks of 512 (lib/model/backward.ts WEIGHT_GRAD_ROWS).
      const M = TRAINING_M;
      const blocks = kernel === "TN" ? TN_BLOCK_ROWS : undefined;
      shapes.push(await timeMatmul(gpu, kernel, { M, N, K }, 2e9, undefined, blocks));
    }
  }
  const openblas = await fastestOpenBlas();
  // The probe already timed numpy's 1024³ product with the chosen kernels.
  const numpy = openblas
    ? { gflops: openblas.gflops, blas: openblas.blas ?? "OpenBLAS" }
    : await numpyMatmul(1024);
  const ceiling = await measureFmaCeiling(gpu);
  const result: MatmulBenchResult = {
    adapter: gpu.adapterDescription,
    gflops: big.gflops,
    shapes,
    ceiling_gflops: ceiling.gflops,
    ...(numpy && {
      numpy_gflops: numpy.gflops,
      numpy_blas: numpy.blas,
      ...(openblas && { numpy_openblas: describeOpenBlas(openblas) }),
      ratio: big.gflops / numpy.gflops,
    }),
  };
  console.error(`adapter: ${result.adapter}`);
  for (const s of shapes) {
    console.error(
      `  ${s.kernel} M=${s.M} N=${s.N} K=${s.K}: ${s.gflops.toFixed(2)} GFLOP/s ` +
        `(${s.ms.toFixed(1)} ms)`,
    );
  }
  console.error(
    numpy
      ? `WGSL NT 1024^3: ${big.gflops.toFixed(2)} GFLOP/s; numpy ${numpy.gflops.toFixed(2)} ` +
        `GFLOP/s (${numpy.blas}${openblas ? `; ${describeOpenBlas(openblas)}` : ""}); ratio ${
          result.ratio!.toFixed(2)
        }`
      : `WGSL NT 1024^3: ${big.gflops.toFixed(2)} GFLOP/s (numpy not available)`,
  );
  console.error(
    `the adapter's register-only FMA rate: ${ceiling.gflops.toFixed(1)} GFLOP/s ` +
      `(bench/ceiling.ts); NT 1024^3 reaches ${
        (100 * big.gflops / ceiling.gflops).toFixed(0)
      }% of it`,
  );
  return result;
}

if (import.meta.main) {
  const result = await benchMatmul();
  if (Deno.args.includes("--json")) console.log(JSON.stringify(result, null, 2));
}
