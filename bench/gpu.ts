/**
 * `deno task bench gpu`: everything worth measuring on a machine with a real
 * GPU, in one command that needs no network once the machine has Deno, this
 * project's `node_modules` (`deno install`), the Vulkan loader (`libvulkan1`)
 * and the GPU driver's Vulkan ICD (`VK_DRIVER_FILES` may point at its JSON
 * file):
 *
 * 1. the adapter (vendor, architecture, device, driver description, limits);
 *    it refuses to go on with a software adapter unless `--allow-software`,
 *    so a silent fallback never produces "GPU" figures;
 * 2. `train`: the train benchmark at the seed configuration (hidden 512,
 *    8 heads, 8 layers, batch 32), with its effective FLOP/s as a share of
 *    the GPU's FP32 peak (`--peak-tflops`, default 67: an H200 without tensor
 *    cores), the time of every op of a step (`profile`: the adapter's clock
 *    between ops) and every product candidate's timing, so that the first run
 *    on a GPU says where its step goes; then the peer on the same GPU where
 *    one is installed: PyTorch with CUDA (bench/pytorch_train.py --device
 *    cuda, plain FP32 without TF32, the same model tree and shapes), run by
 *    the first `python3` on the PATH whose torch sees a CUDA device, and the
 *    ratio against it;
 * 3. `matmul`: the matmul benchmark; 4. `generate`: the generate benchmark;
 * 5. `tests`: the GPU tests (`lib/gpu`, `lib/model`, `lib/generate`, the
 *    PyTorch parity fixtures) on this adapter, in parallel as `deno task
 *    test` runs them, without type checking (CI does that; on a lent GPU
 *    machine every second counts).
 *
 * `--parts` picks some of 2-5, in the order given (default all, in that
 * order): tools/gpu/run.sh runs each in a process of its own under a time
 * limit, so that one that hangs costs only its own figures.
 *
 * Human lines (the train benchmark's and the test runner's among them) go to
 * stderr; with `--json`, `deno task bench gpu --json` prints one JSON object
 * with every figure on stdout at the end, and nothing else there.
 *
 * @module
 */
import { requestGpu } from "../lib/gpu/device.ts";
import type { TrainBenchResult } from "./train.ts";

/** The parts of `bench gpu`, in their default order. */
export const GPU_PARTS = ["train", "matmul", "generate", "tests"] as const;
/** One part of `bench gpu`. */
export type GpuPart = (typeof GPU_PARTS)[number];

/**
 * The parts a `--parts` value names, in its order; a usage error names an
 * unknown or repeated one and lists the known ones.
 */
export function parseGpuParts(value: string): GpuPart[] {
  const parts = value.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) {
    throw new Error(`--parts names no part; known: ${GPU_PARTS.join(", ")}`);
  }
  const seen = new Set<string>();
  for (const part of parts) {
    if (!(GPU_PARTS as readonly string[]).includes(part)) {
      throw new Error(`--parts: unknown part "${part}"; known: ${GPU_PARTS.join(", ")}`);
    }
    if (seen.has(part)) throw new Error(`--parts names "${part}" twice`);
    seen.add(part);
  }
  return parts as GpuPart[];
}

/** Options of {@link benchGpu}. */
export interface GpuBenchOptions {
  /** Go on with a software adapter (its figures are not a GPU's). */
  allowSoftware: boolean;
  /** The GPU's FP32 peak in TFLOP/s, for the train step's share of it. */
  peakTflops: number;
  /** The parts to run, in this order (default {@link GPU_PARTS}). */
  parts?: GpuPart[];
}

/** Runs the GPU bench (see the module doc); returns its figures. */
export async function benchGpu(opts: GpuBenchOptions) {
  const gpu = await requestGpu();
  const adapter = {
    description: gpu.adapterDescription,
    software: gpu.isFallback,
    max_buffer_size: gpu.limits.maxBufferSize,
    max_storage_binding: gpu.limits.maxStorageBufferBindingSize,
    max_workgroup_storage: gpu.limits.maxComputeWorkgroupStorageSize,
  };
  console.error(`adapter: ${adapter.description}${adapter.software ? " (SOFTWARE)" : ""}`);
  if (adapter.software && !opts.allowSoftware) {
    console.error(
      "error: bench gpu: the adapter is a software fallback, not a GPU. Check that the Vulkan " +
        "loader (libvulkan1) and the GPU driver's Vulkan ICD are installed and visible (set " +
        "VK_DRIVER_FILES to the ICD's JSON file if it is not found), or pass " +
        "--allow-software to run it anyway",
    );
    Deno.exit(1);
  }
  const results: Record<string, unknown> = { adapter, peak_tflops: opts.peakTflops };
  for (const part of opts.parts ?? GPU_PARTS) {
    console.error(`\n-- bench gpu: ${part}`);
    Object.assign(results, await PART_RUNNERS[part](opts, adapter.software));
  }
  return results;
}

/** A part's runner (`software`: the adapter is a software one, allowed by `--allow-software`). */
type PartRunner = (opts: GpuBenchOptions, software: boolean) => Promise<Record<string, unknown>>;

/**
 * Timed training steps at the seed configuration on a GPU: a step there takes
 * tens of milliseconds, so the 4 that suit a software adapter (seconds a
 * step) would time a fraction of a second.
 */
const GPU_TRAIN_STEPS = 20;

const PART_RUNNERS: Record<GpuPart, PartRunner> = {
  train: trainPart,
  matmul: async () => ({ matmul: await (await import("./matmul.ts")).benchMatmul() }),
  generate: async () => ({ generate: await (await import("./generate.ts")).benchGenerate() }),
  tests: testsPart,
};

/** The seed configuration's step, its share of the FP32 peak, and PyTorch with CUDA beside it. */
async function trainPart(
  opts: GpuBenchOptions,
  software: boolean,
): Promise<Record<string, unknown>> {
  const { benchTrain } = await import("./train.ts");
  const train = await benchTrain({
    seedConfig: true,
    ...(!software && { steps: GPU_TRAIN_STEPS }),
    profile: true,
    profileSteps: 3,
    log: (line) => console.error(line),
    progress: (line) => console.error(line),
  });
  const peakShare = train.gflops / (opts.peakTflops * 1000);
  console.error(
    `train at the seed configuration: ${Math.round(train.tokens_per_s)} tokens/s, ` +
      `${train.gflops.toFixed(0)} GFLOP/s = ${(100 * peakShare).toFixed(1)}% of ` +
      `${opts.peakTflops} TFLOP/s FP32 peak (goal 20%)`,
  );
  const cuda = await pytorchCuda(train);
  if ("tokens_per_s" in cuda) {
    console.error(
      `pytorch (cuda) ${Math.round(cuda.tokens_per_s)} tokens/s on ${cuda.gpu} (torch ` +
        `${cuda.torch}, FP32 without TF32, ${cuda.python}): WebGPU at ` +
        `${cuda.ratio.toFixed(2)}x`,
    );
  } else {
    console.error(`pytorch (cuda) not run: ${cuda.skipped}`);
  }
  return { train, train_peak_share: peakShare, pytorch_cuda: cuda };
}

/** What PyTorch with CUDA measured beside the WebGPU step, or why it did not run. */
export type CudaPeer =
  | { python: string; torch: string; gpu: string; tokens_per_s: number; ratio: number }
  | { skipped: string };

/**
 * bench/pytorch_train.py at the train result's shapes on CUDA, by the first
 * of `pythons` whose torch sees a CUDA device (status 2 means it sees none).
 */
export async function pytorchCuda(
  train: Pick<TrainBenchResult, "config" | "tokens_per_s">,
  pythons = ["python3", "/usr/bin/python3"],
): Promise<CudaPeer> {
  const { pytorchTrainArgs } = await import("./train.ts");
  const args = pytorchTrainArgs(train.config, ["--warmup=3", "--steps=10", "--device=cuda"]);
  const reasons: string[] = [];
  for (const python of pythons) {
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(python, {
        args,
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch {
      reasons.push(`${python}: not found`);
      continue;
    }
    const stderr = new TextDecoder().decode(out.stderr).trim();
    if (!out.success) {
      const last = stderr.split("\n").pop() ?? "";
      reasons.push(`${python}: ${out.code === 2 && last ? last : `exit ${out.code}: ${last}`}`);
      continue;
    }
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    const r = JSON.parse(lines[lines.length - 1]);
    return {
      python,
      torch: String(r.torch),
      gpu: String(r.gpu),
      tokens_per_s: r.tokens_per_s,
      ratio: train.tokens_per_s / r.tokens_per_s,
    };
  }
  return { skipped: reasons.join("; ") };
}

/** The GPU tests on this adapter; the test runner's report goes to stderr. */
async function testsPart(): Promise<Record<string, unknown>> {
  const tests = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
      "--no-check",
      "--parallel",
      // node_modules holds every package (deno install, or tools/gpu's bundle): without this,
      // Deno asked the npm registry for zod's metadata on a machine with an empty DENO_DIR.
      "--cached-only",
      "lib/gpu",
      "lib/model",
      "lib/generate",
      "tests/parity_gpu_test.ts",
      "tests/gradcheck_test.ts",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // The test runner's report goes to stderr with the other human lines: stdout
  // holds only the JSON summary that `--json` asks for.
  await tests.stdout.pipeTo(Deno.stderr.writable, { preventClose: true });
  const status = await tests.status;
  return { tests_passed: status.success };
}
