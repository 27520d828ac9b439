/**
 * `deno task bench [name…] [--json]`: the project's benchmarks. Each compares
 * against a reference run in the same command where one can run here (PyTorch,
 * numpy) and prints the ratio: these machines are noisy, ratios are not.
 *
 * Names: noop (cached re-run of the default pipeline), tokenize (seconds of
 * audio per second), matmul (the WGSL matmul at 1024³ vs numpy), train
 * (SamOut training tokens/s vs PyTorch), generate (recurrent generation vs
 * re-running the prefix). No name runs them all.
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { linesToStderr } from "./common.ts";
import { type GpuPart, parseGpuParts } from "./gpu.ts";

type Bench = (
  opts: {
    seedConfig: boolean;
    noTune: boolean;
    allowSoftware: boolean;
    peakTflops: number;
    gpuParts?: GpuPart[];
  },
) => Promise<unknown>;

const BENCHES: Record<string, { what: string; run: Bench }> = {
  noop: {
    what: "fully cached re-run of the default pipeline (goal < 0.3 s; DVC ~3 s)",
    run: async () => {
      const { benchNoop } = await import("./noop.ts");
      // The default pipeline, warmed once in a scratch store with a short
      // training run (the re-run's cost does not depend on what the steps did).
      const store = await Deno.makeTempDir({ prefix: "samout-bench-noop-default-" });
      try {
        const defaultPipeline = await benchNoop({
          pipeline: "train.yaml",
          store,
          overrides: ["synth.clips_per_category=8", "train.max_steps=2"],
        });
        const fixture = await benchNoop({});
        return { default_pipeline: defaultPipeline, fixture_pipeline: fixture };
      } finally {
        await Deno.remove(store, { recursive: true });
      }
    },
  },
  tokenize: {
    what: "tokenize throughput, audio seconds per wall-clock second (goal >= 200x)",
    run: async () => (await import("./tokenize.ts")).benchTokenize(),
  },
  matmul: {
    what: "WGSL matmul GFLOP/s at 1024^3 beside numpy (OpenBLAS where installed)",
    run: async () => (await import("./matmul.ts")).benchMatmul(),
  },
  gpu: {
    what: "a real GPU: adapter, train at the seed configuration (share of FP32 peak), matmul, " +
      "generate, the GPU tests (not part of the default run)",
    run: async (o) =>
      (await import("./gpu.ts")).benchGpu({
        allowSoftware: o.allowSoftware,
        peakTflops: o.peakTflops,
        parts: o.gpuParts,
      }),
  },
  generate: {
    what: "generation tokens/s with the recurrent state vs re-running the prefix (goal >= 10x)",
    run: async () => (await import("./generate.ts")).benchGenerate(),
  },
  train: {
    what:
      "SamOut training tokens/s (d128 H8 L2 V1100 B16 S128, then d256 H8 L4 V4100 B16 S256) vs PyTorch on the CPU (goal >= 1.0x)",
    run: async (o) => {
      const { benchTrain } = await import("./train.ts");
      const common = { noTune: o.noTune };
      if (o.seedConfig) return await benchTrain({ ...common, seedConfig: true });
      const small = await benchTrain(common);
      console.error("");
      return { bench: small, large: await benchTrain({ ...common, large: true }) };
    },
  },
};

const program = new Command()
  .name("bench")
  .description("run the benchmarks: " + Object.keys(BENCHES).join(", "))
  .argument("[names...]", "benchmarks to run (default: all)")
  .option("--json", "print one JSON object with every result on stdout")
  .option("--seed-config", "train bench: the seed's 512/8/8 configuration (GPU machines)")
  .option("--allow-software", "gpu bench: run on a software adapter too")
  .option("--no-tune", "train bench: keep the default matrix-product kernels (no timing first)")
  .option("--peak-tflops <n>", "gpu bench: the GPU's FP32 peak (H200: 67)", "67")
  .option(
    "--parts <list>",
    "gpu bench: the parts to run, comma-separated, in order (train, matmul, generate, tests; " +
      "default all)",
    (value) => {
      try {
        return parseGpuParts(value);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    },
  )
  .action(async (names, options) => {
    // `gpu` runs the others at GPU sizes: only when asked for.
    const chosen = names.length > 0 ? names : Object.keys(BENCHES).filter((n) => n !== "gpu");
    for (const name of chosen) {
      if (!BENCHES[name]) {
        console.error(
          `error: unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(", ")}`,
        );
        Deno.exit(1);
      }
    }
    const results: Record<string, unknown> = {};
    for (const name of chosen) {
      console.error(`\n== bench ${name}: ${BENCHES[name].what}`);
      // With --json every benchmark's lines go to stderr: stdout holds the one JSON object.
      results[name] = await linesToStderr(options.json ?? false, () =>
        BENCHES[name].run({
          seedConfig: options.seedConfig ?? false,
          noTune: options.tune === false,
          allowSoftware: options.allowSoftware ?? false,
          peakTflops: Number(options.peakTflops),
          gpuParts: options.parts,
        }));
    }
    if (options.json) {
      console.log(JSON.stringify(chosen.length === 1 ? results[chosen[0]] : results));
    }
  });

await program.parseAsync(Deno.args, { from: "user" });
