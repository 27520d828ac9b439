// The kit for a lent GPU machine (tools/gpu/, bench gpu's parts and its CUDA
// peer): a lent machine's 15 minutes must not go on a typo, a missing file or
// a peer that cannot run, so those paths are tested here, where there is no GPU.
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { GPU_PARTS, parseGpuParts, pytorchCuda } from "../bench/gpu.ts";

const repo = new URL("..", import.meta.url).pathname;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("bench gpu --parts: known parts in the order given; unknown, repeated or none refused", () => {
  assertEquals(parseGpuParts("tests,train"), ["tests", "train"]);
  assertEquals(parseGpuParts(" generate , matmul "), ["generate", "matmul"]);
  assertEquals(parseGpuParts(GPU_PARTS.join(",")), [...GPU_PARTS]);
  assertThrows(() => parseGpuParts("train,bogus"), 'unknown part "bogus"; known: train');
  assertThrows(() => parseGpuParts("train,train"), '"train" twice');
  assertThrows(() => parseGpuParts(" , "), "names no part");
});

Deno.test("bench gpu --parts: the command line refuses an unknown part before it runs anything", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${repo}bench/main.ts`, "gpu", "--parts", "train,tset"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assertEquals(out.code, 1);
  const stderr = text(out.stderr);
  assert(stderr.includes('unknown part "tset"'), stderr);
  assert(!stderr.includes("adapter:"), `it went on to the adapter:\n${stderr}`);
});

/** A stand-in for python3: a shell script that answers bench/pytorch_train.py's call as given. */
async function fakePython(dir: string, name: string, body: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("bench gpu's CUDA peer: the first python whose torch sees CUDA, with the ratio; else why not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "samout-gpu-kit-" });
  try {
    const train = {
      config: { vocab: 4100, hidden: 512, heads: 8, layers: 8, batch: 32, seq: 128 },
      tokens_per_s: 30000,
    };
    const noCuda = await fakePython(
      dir,
      "no-cuda",
      'echo "pytorch_train.py: --device cuda, but torch 2.1 sees no CUDA device" >&2; exit 2',
    );
    const broken = await fakePython(dir, "broken", 'echo "Traceback: boom" >&2; exit 1');
    // It must be asked for CUDA at the train result's shapes, and prints its JSON last.
    const cuda = await fakePython(
      dir,
      "cuda",
      `case "$*" in *--device=cuda*--hidden=512*|*--hidden=512*--device=cuda*) ;; *) exit 9 ;; esac
echo "some warning"
echo '{"tokens_per_s": 120000, "torch": "2.11.0+cu130", "gpu": "NVIDIA H200", "device": "cuda"}'`,
    );
    const peer = await pytorchCuda(train, [`${dir}/missing`, noCuda, broken, cuda]);
    assert("tokens_per_s" in peer, JSON.stringify(peer));
    assertEquals(peer.python, cuda);
    assertEquals(peer.gpu, "NVIDIA H200");
    assertEquals(peer.torch, "2.11.0+cu130");
    assertEquals(peer.ratio, 0.25);

    const none = await pytorchCuda(train, [`${dir}/missing`, noCuda, broken]);
    assert("skipped" in none, JSON.stringify(none));
    for (
      const expected of [
        `${dir}/missing: not found`,
        `${noCuda}: pytorch_train.py: --device cuda, but torch 2.1 sees no CUDA device`,
        `${broken}: exit 1: Traceback: boom`,
      ]
    ) {
      assert(none.skipped.includes(expected), `no "${expected}" in: ${none.skipped}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Debian's torch (CPU only) stands in for a machine without CUDA; CI has no torch.
const torch = await new Deno.Command("/usr/bin/python3", { args: ["-c", "import torch"] })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "bench/pytorch_train.py --device cuda without a CUDA device: exit 2, saying so",
  ignore: !torch,
  fn: async () => {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [`${repo}bench/pytorch_train.py`, "--device", "cuda", "--steps", "1"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 2, text(out.stderr));
    assert(text(out.stderr).includes("sees no CUDA device"), text(out.stderr));
    assertEquals(text(out.stdout), "");
  },
});

Deno.test("tools/gpu: the scripts parse", async () => {
  for (const script of ["pack.sh", "run.sh", "rehearse.sh"]) {
    const out = await new Deno.Command("bash", {
      args: ["-n", `${repo}tools/gpu/${script}`],
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, `${script}: ${text(out.stderr)}`);
  }
});

Deno.test("tools/gpu/run.sh stops at once, saying why, without OUT or without the .gpu bundle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "samout-gpu-kit-" });
  try {
    // A work tree as the device tool would send it, but with no .gpu folder carried.
    await Deno.mkdir(`${dir}/repo/tools/gpu`, { recursive: true });
    await Deno.copyFile(`${repo}tools/gpu/run.sh`, `${dir}/repo/tools/gpu/run.sh`);
    const script = `${dir}/repo/tools/gpu/run.sh`;
    /** Runs the copy with `env`; its exit code, stderr, and kit.log when OUT was set. */
    const runKit = async (env: Record<string, string>) => {
      const out = await new Deno.Command("bash", {
        args: [script],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const log = env.OUT ? await Deno.readTextFile(`${env.OUT}/kit.log`) : "";
      return { code: out.code, stderr: text(out.stderr), log };
    };

    const noOut = await runKit({ OUT: "" });
    assert(noOut.code !== 0);
    assert(noOut.stderr.includes("OUT is not set"), noOut.stderr);

    const noBundle = await runKit({ OUT: `${dir}/out`, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
    assertEquals(noBundle.code, 1);
    assert(noBundle.log.includes("STOP: no .gpu folder: run tools/gpu/pack.sh"), noBundle.log);
    assert(!noBundle.log.includes("bench gpu --parts"), `it went on:\n${noBundle.log}`);

    // A mistyped part is refused before anything else runs (not after the bench's minutes).
    const typo = await runKit({ OUT: `${dir}/out2`, GPU_KIT_PARTS: "train,pipline" });
    assertEquals(typo.code, 1);
    assert(
      typo.log.includes('STOP: unknown part "pipline" in GPU_KIT_PARTS; known: train'),
      typo.log,
    );
    assert(!typo.log.includes("machine:"), `it went on:\n${typo.log}`);

    // The deno part without its command line is refused before anything runs, too.
    const bare = await runKit({ OUT: `${dir}/out3`, GPU_KIT_PARTS: "deno", GPU_KIT_DENO: "" });
    assertEquals(bare.code, 1);
    assert(bare.log.includes("STOP: the deno part needs GPU_KIT_DENO"), bare.log);
    assert(!bare.log.includes("machine:"), `it went on:\n${bare.log}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tools/gpu/report.ts: the figures of the parts that finished, and which did not", async () => {
  const { gpuReport } = await import("../tools/gpu/report.ts");
  const dir = await Deno.makeTempDir({ prefix: "samout-gpu-kit-" });
  try {
    await Deno.writeTextFile(
      `${dir}/kit.log`,
      [
        "[   0s] machine: Linux 6.1 x86_64, 16 CPUs",
        "name, driver_version, memory.total [MiB], clocks.max.sm [MHz], clocks.sm [MHz], power.limit [W]",
        "NVIDIA H200, 580.159.03, 143771 MiB, 1980 MHz, 345 MHz, 700.00 W",
        "FAILED | 220 passed | 3 failed (40s)",
        "[ 300s] summary:",
        "  train: ok in 120s",
        "  tests: FAILED with exit 1 after 60s",
        "  matmul: TIMED OUT after 60s (its lines above; no JSON)",
        "  generate: skipped, 10s of the budget left",
      ].join("\n"),
    );
    await Deno.writeTextFile(
      `${dir}/adapter.json`,
      JSON.stringify({
        description: "NVIDIA H200",
        software: false,
        subgroup_size: 32,
        deno: "2.9.6",
        webgpu_backend: "vulkan",
      }),
    );
    await Deno.writeTextFile(
      `${dir}/train.json`,
      JSON.stringify({
        train: {
          tokens_per_s: 123456,
          gflops: 20100,
          config: { vocab: 4100, hidden: 512, heads: 8, layers: 8, batch: 32, seq: 128 },
          kernels: { NT: "workgroup 8x8 wg16x16 k8", NN: "storage 4x4 wg16x16" },
          kernel_rejected: { TN: { "texture 8x8 wg16x8": "WebGPU validation error: boom" } },
          profile: { head: 3.5, "ffn1_gate.dw": 2.25, adam: 0.5 },
          profile_kind: "timestamps",
          bound: {
            adapter_fma_gflops: 50000,
            product_mflop_per_token: 150,
            tokens_per_s: 333333,
          },
        },
        train_peak_share: 0.3,
        peak_tflops: 67,
        pytorch_cuda: { skipped: "python3: not found" },
      }),
    );
    await Deno.writeTextFile(`${dir}/tests.json`, JSON.stringify({ tests_passed: false }));
    await Deno.writeTextFile(`${dir}/matmul.json`, ""); // timed out: the shell made it, empty
    await Deno.writeTextFile(
      `${dir}/pipeline.json`,
      JSON.stringify({
        pipeline: "seed",
        status: "ok",
        duration_s: 97.25,
        steps: [
          { step: "train", status: "ran", duration_s: 40 },
          {
            step: "evaluate",
            status: "ran",
            duration_s: 20.5,
            metrics: { test_loss: 2.5, category_accuracy: 0.75, note: "text" },
          },
        ],
      }),
    );
    const report = await gpuReport(dir);
    for (
      const expected of [
        "**GPU**: NVIDIA H200, 580.159.03, 143771 MiB",
        "**adapter**: NVIDIA H200, subgroups 32, Deno 2.9.6, backend vulkan",
        "batch 32 x seq 128): 123,456 tokens/s, 20,100 GFLOP/s = **30%** of 67 TFLOP/s",
        "**PyTorch with CUDA**: not run (python3: not found)",
        "**register-only FMA rate** (bench/ceiling.ts, measured): 50,000 GFLOP/s; the step's " +
        "products alone at that rate: 333,333 tokens/s (the step reaches 37% of it)",
        "**kernels**: NT workgroup 8x8 wg16x16 k8, NN storage 4x4 wg16x16",
        "  - left out as broken on this GPU: TN texture 8x8 wg16x8: WebGPU validation error: boom",
        "(timestamps, 6.3 ms a step): head 3.5, ffn1_gate.dw 2.25, adam 0.5",
        "**GPU tests**: FAILED (FAILED | 220 passed | 3 failed (40s))",
        "**matmul**: no figures",
        "**generate**: no figures",
        "matmul: TIMED OUT after 60s",
        "**pipeline** (seed, shortened: see kit.log for the overrides): ok in 97.3 s: " +
        "train ran 40 s, evaluate ran 20.5 s",
        "  - evaluate: test_loss 2.5, category_accuracy 0.75",
      ]
    ) {
      assert(report.includes(expected), `no "${expected}" in:\n${report}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
