/**
 * Training throughput of the WebGPU SamOut graph: tokens per second and
 * effective GFLOP/s (6 x parameters x tokens/s), beside PyTorch on the CPU
 * (bench/pytorch_train.py, same model tree and config) when `/usr/bin/python3`
 * has torch.
 *
 * Run: `deno run -A bench/train.ts [--steps=N] [--json] [--large | --seed-config] [--profile[=STEPS]]
 * [--no-tune] [--no-pytorch] [--no-bound] [--batch=B] [--seq=S]`.
 *
 * The matrix-product kernels are first timed on this adapter at the model's
 * shapes (lib/gpu/tuning.ts, not cached here: `--no-tune` keeps the
 * defaults), as the train job does once per store.
 *
 * It also prints the bound no WGSL step can pass on this adapter: the
 * adapter's register-only multiply-add rate (bench/ceiling.ts) over the FLOPs
 * of the step's matrix products alone (those that run at B·S rows; the
 * position half of Down runs at S rows and is left out, so the bound is if
 * anything high), and that bound against PyTorch.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { median, positiveInt, positiveIntAtMost } from "./common.ts";
import {
  hostCpu,
  isSoftwareAdapter,
  preferTrainingThreads,
  requestGpu,
} from "../lib/gpu/device.ts";
import type { SamOutConfig } from "../lib/model/config.ts";
import { parameterCount } from "../lib/model/params.ts";
import { initParameters } from "../lib/model/params.ts";
import { SamOutTrainingGraph } from "../lib/model/graph.ts";
import { WEIGHT_GRAD_ROWS } from "../lib/model/backward.ts";
import { chooseMatmulTiles, defaultChoice, samoutProductShapes } from "../lib/gpu/tuning.ts";
import type { TokenBatch } from "../lib/data/types.ts";
import { Random } from "../lib/random/mod.ts";
import { measureFmaCeiling } from "./ceiling.ts";
import { type BlasVariant, blasVariants, referenceEnv } from "./blas.ts";

/** What {@link benchTrain} measured. */
export interface TrainBenchResult {
  /** Input tokens (batch x sequence) trained per second on the GPU graph. */
  tokens_per_s: number;
  /** 6 x parameters x tokens/s, in GFLOP/s. */
  gflops: number;
  /**
   * PyTorch CPU tokens/s at the same config, when it ran: the fastest of
   * {@link TrainBenchResult.pytorch_runs} (the strongest baseline this machine has).
   */
  pytorch_tokens_per_s?: number;
  /**
   * One PyTorch run per BLAS library found: Debian's torch calls the system
   * `libblas.so.3`, which is the slow reference BLAS unless OpenBLAS is
   * installed (`apt-get install libopenblas0-pthread`), a ~7x difference here;
   * OpenBLAS runs with the kernels that probed fastest on this CPU
   * (bench/blas.ts), which its name says.
   */
  pytorch_runs?: { blas: string; tokens_per_s: number; ratio: number }[];
  /**
   * tokens_per_s / pytorch_tokens_per_s: the median of the paired rounds'
   * ratios ({@link TrainBenchResult.rounds}) when PyTorch ran.
   */
  ratio?: number;
  /**
   * Paired rounds, one after another: WebGPU's timed steps, then PyTorch
   * with the fastest BLAS (the first round's PyTorch is the fastest of
   * {@link TrainBenchResult.pytorch_runs}). A machine whose load drifts
   * skews a single pair; the median of the pairs' ratios much less.
   * `tokens_per_s`, `pytorch_tokens_per_s` and the CPU times are the
   * medians of the rounds'.
   */
  rounds?: {
    tokens_per_s: number;
    pytorch_tokens_per_s: number;
    ratio: number;
    cpu_s_per_step?: number;
    pytorch_cpu_s_per_step?: number;
  }[];
  /** CPU seconds per step of this process (Linux; llvmpipe's threads included). */
  cpu_s_per_step?: number;
  /** PyTorch's CPU seconds per step. */
  pytorch_cpu_s_per_step?: number;
  /**
   * pytorch_cpu_s_per_step / cpu_s_per_step: the ratio in CPU time, steadier
   * than the wall-time ratio when other processes share the cores.
   */
  cpu_ratio?: number;
  /** The WebGPU adapter. */
  adapter: string;
  /**
   * A software adapter's host CPU ("model name (family F model M), N
   * threads"): its speed, and so the ratio, is the CPU's (on two Zen 3
   * cores the large configuration ran at 0.51x PyTorch, on two Zen 4 cores
   * at 0.72-0.86x, on two Xeon cores, family 6 model 207, at 0.51x, with
   * the same code).
   */
  host?: string;
  /** The matrix-product kernels that ran (timed first unless --no-tune). */
  kernels: Record<string, string>;
  /**
   * When the kernels were timed in this run (not read from the cache): ms
   * of one pass over the model's products, per kind and candidate.
   */
  kernel_timings_ms?: Record<string, Record<string, number>>;
  /**
   * Candidates the tuner left out before timing, per kind, with the reason
   * (a WebGPU error, or products that differ from the host's:
   * lib/gpu/tuning.ts).
   */
  kernel_rejected?: Record<string, Record<string, string>>;
  /** The config that ran. */
  config: {
    vocab: number;
    hidden: number;
    heads: number;
    layers: number;
    batch: number;
    seq: number;
  };
  parameters: number;
  steps: number;
  /**
   * The most any WGSL step could do here (bench/ceiling.ts): the adapter's
   * register-only multiply-add rate over the FLOPs of a step's matrix
   * products alone (6 x Σ N·K per token: forward, input and weight
   * gradients), and that as a ratio to the fastest PyTorch.
   */
  bound?: {
    adapter_fma_gflops: number;
    product_mflop_per_token: number;
    tokens_per_s: number;
    ratio?: number;
  };
  /**
   * Milliseconds per op per step, mean of `profileSteps` steps, with `profile`:
   * the adapter's clock with the step in one submission where the device has
   * timestamps (`profile_kind` "timestamps"), else process CPU time with each
   * op in its own submit ("cpu").
   */
  profile?: Record<string, number>;
  profile_kind?: "timestamps" | "cpu";
}

/** Options of {@link benchTrain}. */
export interface TrainBenchOptions {
  /** Timed steps (default 10, 4 with `seedConfig`). */
  steps?: number;
  /** Print one JSON object instead of lines. */
  json?: boolean;
  /**
   * Where the lines go, without `json` (default stdout): `bench gpu` sends
   * them to stderr, so that its stdout holds only its own JSON summary.
   */
  log?: (line: string) => void;
  /**
   * Where to say what the benchmark is doing as it goes (tuning, building,
   * warming up, timing, profiling, the references), with the seconds since
   * it started: `bench gpu` passes stderr, so that a run stopped by a time
   * limit on a lent machine still shows how far it got. Default: silent.
   */
  progress?: (line: string) => void;
  /** The seed's reference size (d 512, 8 heads, 8 layers, V 4100, batch 32): for real GPUs. */
  seedConfig?: boolean;
  /** The larger CPU configuration: d 256, 8 heads, 4 layers, V 4100, batch 16 x seq 256. */
  large?: boolean;
  /** Keep the default matrix-product kernels instead of timing the candidates first. */
  noTune?: boolean;
  /** Also time each op separately (one submit and wait per op). */
  profile?: boolean;
  /** Steps the profile averages (default 5; CPU time ticks in 10 ms, so more steps resolve small ops there). */
  profileSteps?: number;
  /** Skip the PyTorch baseline. */
  noPytorch?: boolean;
  /** Skip the adapter's multiply-add ceiling (bench/ceiling.ts) and the bound it gives. */
  noBound?: boolean;
  /** Paired WebGPU / PyTorch rounds whose median ratio is reported (default 3; 1 at the seed configuration). */
  rounds?: number;
  /** Sequences a batch, instead of the configuration's (16, or 32 at the seed configuration). */
  batch?: number;
  /** Tokens a sequence, instead of the configuration's (128, or 256 at the large one). */
  seq?: number;
}

const WARMUP_STEPS = 2;
const DEFAULT_ROUNDS = 3;

const PROFILE_STEPS = 5;

/** The benchmark's model and batch for `opts` (bench, large or seed configuration). */
function benchShape(opts: TrainBenchOptions): TrainBenchResult["config"] {
  const shape = opts.seedConfig
    ? { vocab: 4100, hidden: 512, heads: 8, layers: 8, batch: 32, seq: 128 }
    : opts.large
    ? { vocab: 4100, hidden: 256, heads: 8, layers: 4, batch: 16, seq: 256 }
    : { vocab: 1100, hidden: 128, heads: 8, layers: 2, batch: 16, seq: 128 };
  return { ...shape, batch: opts.batch ?? shape.batch, seq: opts.seq ?? shape.seq };
}

/** Four batches of random tokens (never padding) at the benchmark's shape, seeded. */
function randomBatches(shape: TrainBenchResult["config"]): TokenBatch[] {
  const rng = new Random(7, "bench/train");
  const batches: TokenBatch[] = [];
  for (let i = 0; i < 4; i++) {
    const tokens = new Int32Array(shape.batch * (shape.seq + 1));
    for (let j = 0; j < tokens.length; j++) tokens[j] = 1 + rng.int(shape.vocab - 1);
    batches.push({ rows: shape.batch, length: shape.seq + 1, tokens });
  }
  return batches;
}

/** One timing of the WebGPU steps: tokens/s, and CPU seconds per step where the clock exists. */
interface StepTiming {
  tokensPerS: number;
  cpuPerStep?: number;
}

/** Runs the training benchmark and prints the figures (lines, or one JSON object). */
export async function benchTrain(opts: TrainBenchOptions = {}): Promise<TrainBenchResult> {
  const shape = benchShape(opts);
  const steps = opts.steps ?? (opts.seedConfig || opts.large ? 4 : 10);
  const cfg: SamOutConfig = {
    vocabSize: shape.vocab,
    hidden: shape.hidden,
    heads: shape.heads,
    layers: shape.layers,
    maxPositions: 1024,
  };
  const started = performance.now();
  const progress = (what: string) =>
    opts.progress?.(`  [${((performance.now() - started) / 1000).toFixed(1)}s] ${what}`);
  preferTrainingThreads();
  const gpu = await requestGpu();
  progress(opts.noTune ? "default kernels (--no-tune)" : "timing the product kernels");
  const kernels = opts.noTune ? defaultChoice(gpu, "--no-tune") : await chooseMatmulTiles(
    gpu,
    samoutProductShapes(cfg, shape.batch * shape.seq, WEIGHT_GRAD_ROWS),
    { minWork: 0 },
  );
  progress(
    `kernels: ${Object.entries(kernels.names).map(([k, v]) => `${k} ${v}`).join(", ")}; ` +
      "building the graph",
  );
  const graph = await SamOutTrainingGraph.create(gpu, {
    tiles: kernels.tiles,
    config: cfg,
    maxBatch: shape.batch,
    maxLength: shape.seq + 1,
    optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: 1 },
  });
  try {
    graph.uploadWeights(initParameters(cfg, 1));
    const batches = randomBatches(shape);
    progress(`${WARMUP_STEPS} warm-up steps`);
    for (let i = 0; i < WARMUP_STEPS; i++) graph.trainStep(batches[i % batches.length], 1e-3);
    await graph.readTrainStats();
    progress(`${steps} timed steps`);
    const clock = cpuClock();
    const timeSteps = async (): Promise<StepTiming> => {
      const c0 = clock?.();
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) graph.trainStep(batches[i % batches.length], 1e-3);
      const stats = await graph.readTrainStats();
      const seconds = (performance.now() - t0) / 1000;
      if (stats.length !== steps || !stats.every((s) => Number.isFinite(s.loss))) {
        throw new Error(`the benchmark's training steps gave bad stats: ${JSON.stringify(stats)}`);
      }
      return {
        tokensPerS: steps * shape.batch * shape.seq / seconds,
        cpuPerStep: clock ? (clock() - c0!) / 1000 / steps : undefined,
      };
    };
    const first = await timeSteps();
    const params = parameterCount(cfg);
    const result: TrainBenchResult = {
      tokens_per_s: first.tokensPerS,
      gflops: 6 * params * first.tokensPerS / 1e9,
      adapter: gpu.adapterDescription,
      ...(isSoftwareAdapter(gpu) && { host: hostCpu() }),
      config: shape,
      parameters: params,
      steps,
      kernels: kernels.names,
      ...(kernels.timings && { kernel_timings_ms: kernels.timings }),
      ...(kernels.rejected && { kernel_rejected: kernels.rejected }),
    };
    if (first.cpuPerStep !== undefined) result.cpu_s_per_step = first.cpuPerStep;
    progress(`${first.tokensPerS.toFixed(0)} tokens/s`);
    if (opts.profile) {
      progress(`profiling ${opts.profileSteps ?? PROFILE_STEPS} steps`);
      result.profile_kind = gpu.timestamps ? "timestamps" : "cpu";
      result.profile = await profileOps(graph, batches, opts.profileSteps ?? PROFILE_STEPS, {
        timestamps: !!gpu.timestamps,
        clock,
      });
    }
    if (!opts.noPytorch) {
      progress("PyTorch on the CPU");
      const torchSteps = opts.seedConfig ? 1 : Math.max(3, Math.min(steps, 5));
      const rounds = opts.rounds ?? (opts.seedConfig ? 1 : DEFAULT_ROUNDS);
      await compareWithPytorch(result, first, timeSteps, torchSteps, rounds);
    }
    if (!opts.noBound) {
      progress("the adapter's register-only multiply-add rate");
      const ceiling = await measureFmaCeiling(gpu);
      const productFlops = 6 *
        samoutProductShapes(cfg, 1, 1).layers.reduce((sum, p) => sum + p.N * p.K, 0);
      const boundTokens = ceiling.gflops * 1e9 / productFlops;
      result.bound = {
        adapter_fma_gflops: ceiling.gflops,
        product_mflop_per_token: productFlops / 1e6,
        tokens_per_s: boundTokens,
        ...(result.pytorch_tokens_per_s && {
          ratio: boundTokens / result.pytorch_tokens_per_s,
        }),
      };
    }
    if (opts.json) console.log(JSON.stringify(result));
    else printTrainResult(result, kernels.source, opts, opts.log ?? console.log);
    return result;
  } finally {
    graph.destroy();
  }
}

/**
 * The time of every op of a step, averaged over `steps` steps: the adapter's
 * clock between ops with the step in one submission where the device has
 * timestamps, else CPU time with each op in its own submit (it ticks in
 * 10 ms: average a few steps either way).
 */
async function profileOps(
  graph: SamOutTrainingGraph,
  batches: TokenBatch[],
  steps: number,
  how: { timestamps: boolean; clock?: () => number },
): Promise<Record<string, number>> {
  const profile: Record<string, number> = {};
  for (let i = 0; i < steps; i++) {
    const batch = batches[i % batches.length];
    const times = how.timestamps
      ? await graph.profileStepTimestamps(batch, 1e-3)
      : await graph.profileStep(batch, 1e-3, how.clock);
    for (const [name, ms] of Object.entries(times)) {
      profile[name] = (profile[name] ?? 0) + ms / steps;
    }
  }
  // The profiled steps trained too: their stats are read here, so that the
  // timed steps of the PyTorch rounds that follow read only their own.
  await graph.readTrainStats();
  return profile;
}

/**
 * PyTorch beside the WebGPU step: one run per BLAS library (the fastest
 * first), then paired rounds of WebGPU's steps (`first` is the first round's)
 * and PyTorch with the fastest BLAS until `wanted` rounds; fills `result`'s
 * PyTorch fields with the rounds' medians. Leaves them unset when PyTorch
 * does not run here.
 */
async function compareWithPytorch(
  result: TrainBenchResult,
  first: StepTiming,
  timeSteps: () => Promise<StepTiming>,
  torchSteps: number,
  wanted: number,
): Promise<void> {
  const shape = result.config;
  const runs: { blas: BlasVariant; run: PytorchRun }[] = [];
  for (const blas of await blasVariants()) {
    const run = await runPytorch(shape, torchSteps, blas);
    if (run) runs.push({ blas, run });
  }
  runs.sort((a, b) => b.run.tokens_per_s - a.run.tokens_per_s);
  if (runs.length === 0) return;
  result.pytorch_runs = runs.map((r) => ({
    blas: r.blas.name,
    tokens_per_s: r.run.tokens_per_s,
    ratio: first.tokensPerS / r.run.tokens_per_s,
  }));
  const rounds: NonNullable<TrainBenchResult["rounds"]> = [];
  const pair = (w: StepTiming, t: PytorchRun) =>
    rounds.push({
      tokens_per_s: w.tokensPerS,
      pytorch_tokens_per_s: t.tokens_per_s,
      ratio: w.tokensPerS / t.tokens_per_s,
      ...(w.cpuPerStep !== undefined && { cpu_s_per_step: w.cpuPerStep }),
      ...(typeof t.cpu_s_per_step === "number" && {
        pytorch_cpu_s_per_step: t.cpu_s_per_step,
      }),
    });
  pair(first, runs[0].run);
  while (rounds.length < wanted) {
    const w = await timeSteps();
    const t = await runPytorch(shape, torchSteps, runs[0].blas);
    if (!t) break;
    pair(w, t);
  }
  const cpus = rounds.flatMap((r) => r.cpu_s_per_step ?? []);
  const torchCpus = rounds.flatMap((r) => r.pytorch_cpu_s_per_step ?? []);
  result.tokens_per_s = median(rounds.map((r) => r.tokens_per_s));
  result.gflops = 6 * result.parameters * result.tokens_per_s / 1e9;
  result.pytorch_tokens_per_s = median(rounds.map((r) => r.pytorch_tokens_per_s));
  result.ratio = median(rounds.map((r) => r.ratio));
  result.rounds = rounds;
  if (cpus.length === rounds.length) result.cpu_s_per_step = median(cpus);
  if (torchCpus.length === rounds.length && result.cpu_s_per_step) {
    result.pytorch_cpu_s_per_step = median(torchCpus);
    result.cpu_ratio = median(rounds.map((r) => r.pytorch_cpu_s_per_step! / r.cpu_s_per_step!));
  }
}

/** Prints the result as aligned lines through `log` (`kernelSource`: tuned, cached or defaults). */
function printTrainResult(
  result: TrainBenchResult,
  kernelSource: string,
  opts: TrainBenchOptions,
  log: (line: string) => void,
) {
  const shape = result.config;
  log(`adapter        ${result.adapter}`);
  if (result.host) log(`host           ${result.host}`);
  log(
    `kernels        ${
      Object.entries(result.kernels).map(([k, v]) => `${k} ${v}`).join(", ")
    } (${kernelSource})`,
  );
  for (const [kind, times] of Object.entries(result.kernel_timings_ms ?? {})) {
    const list = Object.entries(times).map(([name, ms]) => `${name} ${ms} ms`).join(", ");
    log(`  timed ${kind}     ${list}`);
  }
  for (const [kind, reasons] of Object.entries(result.kernel_rejected ?? {})) {
    for (const [name, why] of Object.entries(reasons)) log(`  left out ${kind}  ${name}: ${why}`);
  }
  log(
    `config         V ${shape.vocab}, d ${shape.hidden}, H ${shape.heads}, L ${shape.layers}, batch ${shape.batch} x seq ${shape.seq}, ${result.parameters} parameters`,
  );
  log(
    `webgpu         ${result.tokens_per_s.toFixed(0)} tokens/s, ${
      result.gflops.toFixed(2)
    } GFLOP/s effective`,
  );
  if (result.pytorch_tokens_per_s !== undefined) {
    for (const r of result.pytorch_runs ?? []) {
      log(
        `pytorch (cpu)  ${r.tokens_per_s.toFixed(0)} tokens/s with ${r.blas}: ratio ${
          r.ratio.toFixed(2)
        }x${(result.rounds?.length ?? 0) > 1 ? " (first round)" : ""}`,
      );
    }
    const rounds = result.rounds ?? [];
    log(
      `ratio          ${result.ratio!.toFixed(2)}x (against the fastest PyTorch` +
        (rounds.length > 1
          ? `; the median of ${rounds.length} paired rounds: ${
            rounds.map((r) => r.ratio.toFixed(2)).join(", ")
          })`
          : ")"),
    );
    const verdict = (x: number) => (result.ratio! >= x ? "met" : "not met");
    // The goal is the CPU configurations'; the seed configuration is for GPUs.
    if (!opts.seedConfig) {
      log(
        `goal           1.0x PyTorch with its fastest BLAS: ${verdict(1)}; 1.5x (stretch): ${
          verdict(1.5)
        }`,
      );
    }
    if (result.cpu_ratio !== undefined) {
      log(
        `cpu time       ${(result.cpu_s_per_step! * 1000).toFixed(0)} ms/step webgpu, ${
          (result.pytorch_cpu_s_per_step! * 1000).toFixed(0)
        } ms/step pytorch: ${result.cpu_ratio.toFixed(2)}x`,
      );
    }
  } else {
    log(
      `pytorch (cpu)  not run (${
        opts.noPytorch ? "--no-pytorch" : "no /usr/bin/python3 with torch"
      })`,
    );
  }
  if (result.cpu_s_per_step !== undefined && result.cpu_ratio === undefined) {
    log(`cpu time       ${(result.cpu_s_per_step * 1000).toFixed(0)} ms/step webgpu`);
  }
  if (result.bound) {
    const b = result.bound;
    log(
      `bound          ${b.tokens_per_s.toFixed(0)} tokens/s${
        b.ratio !== undefined ? ` = ${b.ratio.toFixed(2)}x PyTorch` : ""
      }: the products alone (${b.product_mflop_per_token.toFixed(1)} MFLOP/token) at this ` +
        `adapter's register-only FMA rate, ${b.adapter_fma_gflops.toFixed(1)} GFLOP/s ` +
        `(bench/ceiling.ts), which a WGSL step is not expected to pass here`,
    );
  }
  if (result.profile) {
    const total = Object.values(result.profile).reduce((a, b) => a + b, 0);
    log(
      result.profile_kind === "timestamps"
        ? `profile (adapter ms per step, the step in one submission, timestamps between ` +
          `ops; total ${total.toFixed(1)} ms):`
        : `profile (CPU ms per step, one submit per op; total ${total.toFixed(1)} ms):`,
    );
    const rows = Object.entries(result.profile).sort((a, b) => b[1] - a[1]);
    for (const [name, ms] of rows) log(`  ${ms.toFixed(2).padStart(9)}  ${name}`);
  }
}
/**
 * Milliseconds of CPU time of this process (llvmpipe's threads included),
 * steadier than wall time on a shared machine; undefined off Linux.
 */
function cpuClock(): (() => number) | undefined {
  try {
    Deno.readTextFileSync("/proc/self/stat");
  } catch {
    return undefined;
  }
  return () => {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    // utime + stime, in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
}

/** What bench/pytorch_train.py measured (its last line, JSON). */
interface PytorchRun {
  tokens_per_s: number;
  cpu_s_per_step?: number;
}

/** bench/pytorch_train.py and its arguments for this model and batch, then `extra`. */
export function pytorchTrainArgs(shape: TrainBenchResult["config"], extra: string[]): string[] {
  return [
    new URL("./pytorch_train.py", import.meta.url).pathname,
    `--vocab=${shape.vocab}`,
    `--hidden=${shape.hidden}`,
    `--heads=${shape.heads}`,
    `--layers=${shape.layers}`,
    `--batch=${shape.batch}`,
    `--seq=${shape.seq}`,
    ...extra,
  ];
}

/** Runs bench/pytorch_train.py; undefined when python3 or torch is missing. */
async function runPytorch(
  shape: TrainBenchResult["config"],
  steps: number,
  blas: BlasVariant,
): Promise<PytorchRun | undefined> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: pytorchTrainArgs(shape, [`--steps=${steps}`]),
      env: referenceEnv(blas),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) return undefined;
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    return undefined;
  }
}

if (import.meta.main) {
  // Standalone: `deno run -A bench/train.ts [options]` (`--help` lists them).
  const program = new Command()
    .name("bench/train.ts")
    .description("the training benchmark at one configuration, beside PyTorch on the CPU")
    .option(
      "--steps <n>",
      "timed steps (default 10; 4 at the large and seed configurations)",
      positiveInt("--steps"),
    )
    .option(
      "--large",
      "the larger CPU configuration: d 256, 8 heads, 4 layers, V 4100, batch 16 x seq 256",
    )
    .option("--seed-config", "the seed's reference size, d 512, 8 layers, batch 32 (GPU machines)")
    .option("--no-tune", "keep the default matrix-product kernels (no timing first)")
    .option(
      "--profile [steps]",
      "also the time of every op, averaged over this many steps (default 5)",
      positiveInt("--profile"),
    )
    .option(
      "--batch <n>",
      "sequences a batch (default the configuration's)",
      positiveInt("--batch"),
    )
    .option(
      "--seq <n>",
      "tokens a sequence, at most 1023 (default the configuration's)",
      positiveIntAtMost("--seq", 1023),
    )
    .option("--no-pytorch", "skip the PyTorch baseline")
    .option("--no-bound", "skip the adapter's multiply-add ceiling and the bound it gives")
    .option(
      "--rounds <n>",
      "paired WebGPU / PyTorch rounds whose median ratio is reported (default 3)",
      positiveInt("--rounds"),
    )
    .option("--json", "print one JSON object instead of lines")
    .action(async (o) => {
      await benchTrain({
        steps: o.steps,
        json: o.json ?? false,
        seedConfig: o.seedConfig ?? false,
        large: o.large ?? false,
        noTune: o.tune === false,
        profile: o.profile !== undefined,
        profileSteps: typeof o.profile === "number" ? o.profile : undefined,
        noPytorch: o.pytorch === false,
        noBound: o.bound === false,
        rounds: o.rounds,
        batch: o.batch,
        seq: o.seq,
      });
    });
  await program.parseAsync(Deno.args, { from: "user" });
}
