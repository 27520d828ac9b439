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
 * 2. the train benchmark at the seed configuration (hidden 512, 8 heads,
 *    8 layers, batch 32), with its effective FLOP/s as a share of the GPU's
 *    FP32 peak (`--peak-tflops`, default 67: an H200 without tensor cores),
 *    the time of every op of a step (`profile`: the adapter's clock between
 *    ops) and every product candidate's timing, so that the first run on a
 *    GPU says where its step goes;
 * 3. the matmul benchmark; 4. the generate benchmark;
 * 5. the GPU tests (`lib/gpu`, `lib/model`, `lib/generate`, the PyTorch
 *    parity fixtures) on this adapter.
 *
 * Human lines (the train benchmark's and the test runner's among them) go to
 * stderr; with `--json`, `deno task bench gpu --json` prints one JSON object
 * with every figure on stdout at the end, and nothing else there.
 *
 * @module
 */
import { requestGpu } from "../lib/gpu/device.ts";

/** Runs the GPU bench (see the module doc); returns its figures. */
export async function benchGpu(opts: { allowSoftware: boolean; peakTflops: number }) {
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
  const { benchTrain } = await import("./train.ts");
  const train = await benchTrain({
    seedConfig: true,
    profile: true,
    profileSteps: 3,
    log: (line) => console.error(line),
  });
  const peakShare = train.gflops / (opts.peakTflops * 1000);
  console.error(
    `train at the seed configuration: ${Math.round(train.tokens_per_s)} tokens/s, ` +
      `${train.gflops.toFixed(0)} GFLOP/s = ${(100 * peakShare).toFixed(1)}% of ` +
      `${opts.peakTflops} TFLOP/s FP32 peak (goal 20%)`,
  );
  const { benchMatmul } = await import("./matmul.ts");
  const matmul = await benchMatmul();
  const { benchGenerate } = await import("./generate.ts");
  const generate = await benchGenerate();
  console.error("GPU tests on this adapter:");
  const tests = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
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
  const testStatus = await tests.status;
  return {
    adapter,
    train,
    train_peak_share: peakShare,
    peak_tflops: opts.peakTflops,
    matmul,
    generate,
    tests_passed: testStatus.success,
  };
}
