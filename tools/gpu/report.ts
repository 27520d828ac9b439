/**
 * `deno run -A tools/gpu/report.ts DIR`: what a run of tools/gpu/run.sh
 * measured, as Markdown to paste into the README and the issue's note. DIR
 * holds the files the run wrote under $OUT (the device tool copies them back:
 * its reply's `files_at`): kit.log, adapter.json, one PART.json per part
 * of `bench gpu`, and pipeline.json (the shortened seed pipeline's run
 * summary; its pipeline.md is Markdown already). A part that timed out or failed left no JSON (or an empty
 * one): the report says so and points at kit.log instead of inventing figures.
 *
 * @module
 */
import type { TrainBenchResult } from "../../bench/train.ts";
import type { CudaPeer } from "../../bench/gpu.ts";

/** Reads DIR/NAME.json; undefined when missing, empty or not JSON (a part that did not finish). */
async function readPart(dir: string, name: string): Promise<Record<string, unknown> | undefined> {
  try {
    const text = (await Deno.readTextFile(`${dir}/${name}.json`)).trim();
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

const fixed = (x: unknown, digits = 0) =>
  typeof x === "number" ? x.toLocaleString("en-US", { maximumFractionDigits: digits }) : "?";

/** The Markdown report of the run in `dir`. */
export async function gpuReport(dir: string): Promise<string> {
  const lines: string[] = [];
  const missing = (part: string) =>
    lines.push(
      `- **${part}**: no figures (the part timed out, failed or did not run: see kit.log)`,
    );
  let log = "";
  try {
    log = await Deno.readTextFile(`${dir}/kit.log`);
  } catch {
    lines.push("- no kit.log in this folder");
  }
  const smi = log.split("\n").findIndex((l) => l.startsWith("name, driver_version"));
  const adapter = await readPart(dir, "adapter");
  lines.push(
    smi >= 0
      ? `- **GPU**: ${log.split("\n")[smi + 1].trim()} (nvidia-smi: name, driver, memory, ` +
        "max SM clock, SM clock, power limit)"
      : "- **GPU**: no nvidia-smi figures in kit.log",
  );
  if (!adapter) missing("adapter");
  else {
    lines.push(
      `- **adapter**: ${adapter.description}${adapter.software ? " (SOFTWARE)" : ""}, ` +
        `subgroups ${adapter.subgroup_size ?? "not used"}, Deno ${adapter.deno}, ` +
        `backend ${adapter.webgpu_backend ?? "default"}`,
    );
  }
  const trainPart = await readPart(dir, "train");
  if (!trainPart) missing("train");
  else {
    const t = trainPart.train as TrainBenchResult;
    const c = t.config;
    const peer = trainPart.pytorch_cuda as CudaPeer;
    lines.push(
      `- **train, seed configuration** (V ${c.vocab}, d ${c.hidden}, H ${c.heads}, ` +
        `L ${c.layers}, batch ${c.batch} x seq ${c.seq}): ${fixed(t.tokens_per_s)} tokens/s, ` +
        `${fixed(t.gflops)} GFLOP/s = **${
          fixed(100 * (trainPart.train_peak_share as number), 1)
        }%** of ${trainPart.peak_tflops} TFLOP/s FP32 peak (goal 20%)`,
    );
    if (t.bound) {
      lines.push(
        `- **register-only FMA rate** (bench/ceiling.ts, measured): ` +
          `${fixed(t.bound.adapter_fma_gflops)} GFLOP/s; the step's products alone at that rate: ` +
          `${fixed(t.bound.tokens_per_s)} tokens/s (the step reaches ` +
          `${fixed(100 * t.tokens_per_s / t.bound.tokens_per_s, 1)}% of it)`,
      );
    }
    lines.push(
      "tokens_per_s" in peer
        ? `- **PyTorch with CUDA** (${peer.torch}, FP32 without TF32) on ${peer.gpu}: ` +
          `${fixed(peer.tokens_per_s)} tokens/s; WebGPU at **${fixed(peer.ratio, 2)}x**`
        : `- **PyTorch with CUDA**: not run (${peer.skipped})`,
    );
    lines.push(
      `- **kernels**: ${Object.entries(t.kernels).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    );
    for (const [kind, reasons] of Object.entries(t.kernel_rejected ?? {})) {
      for (const [name, why] of Object.entries(reasons)) {
        lines.push(`  - left out as broken on this GPU: ${kind} ${name}: ${why}`);
      }
    }
    if (t.profile) {
      const total = Object.values(t.profile).reduce((a, b) => a + b, 0);
      const top = Object.entries(t.profile).sort((a, b) => b[1] - a[1]).slice(0, 8);
      lines.push(
        `- **profile** (${t.profile_kind}, ${fixed(total, 1)} ms a step): ` +
          top.map(([op, ms]) => `${op} ${fixed(ms, 2)}`).join(", "),
      );
    }
  }
  const tests = await readPart(dir, "tests");
  if (!tests) missing("tests");
  else {
    const summary = log.match(/(ok|FAILED) \| \d+ passed.*\| \d+ failed[^\n]*/)?.[0];
    lines.push(
      `- **GPU tests**: ${tests.tests_passed ? "passed" : "FAILED"}${
        summary ? ` (${summary})` : ""
      }`,
    );
  }
  const matmul = await readPart(dir, "matmul");
  if (!matmul) missing("matmul");
  else {
    const m = matmul.matmul as { gflops: number; ceiling_gflops: number };
    lines.push(
      `- **matmul 1024³**: ${fixed(m.gflops)} GFLOP/s (register-only FMA ceiling ` +
        `${fixed(m.ceiling_gflops)})`,
    );
  }
  const generate = await readPart(dir, "generate");
  if (!generate) missing("generate");
  else {
    const g = generate.generate as { recurrent_tokens_per_s: number; ratio: number };
    lines.push(
      `- **generate**: ${fixed(g.recurrent_tokens_per_s)} tokens/s, ${
        fixed(g.ratio, 1)
      }x the prefix re-run`,
    );
  }
  const pipeline = await readPart(dir, "pipeline");
  if (!pipeline) missing("pipeline");
  else {
    const steps = (pipeline.steps ?? []) as { step: string; status: string; duration_s?: number }[];
    lines.push(
      `- **pipeline** (${pipeline.pipeline}, shortened: see kit.log for the overrides): ` +
        `${pipeline.status} in ${fixed(pipeline.duration_s, 1)} s: ` +
        steps.map((st) => `${st.step} ${st.status} ${fixed(st.duration_s, 1)} s`).join(", ") +
        (pipeline.error ? `; error: ${pipeline.error}` : ""),
    );
    for (const st of steps) {
      const m = (st as { metrics?: Record<string, unknown> }).metrics;
      if (st.step !== "evaluate" || !m) continue;
      const picked = [
        "test_loss",
        "bigram_test_loss",
        "test_loss_vs_bigram",
        "test_token_accuracy",
        "category_accuracy",
      ]
        .filter((k) => typeof m[k] === "number")
        .map((k) => `${k} ${fixed(m[k], 3)}`);
      if (picked.length) lines.push(`  - evaluate: ${picked.join(", ")}`);
    }
  }
  const summary = log.slice(log.lastIndexOf("summary:"));
  if (summary.startsWith("summary:")) {
    lines.push(
      `- **run**: ${summary.split("\n").slice(1).map((l) => l.trim()).filter(Boolean).join("; ")}`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir || Deno.args.length > 1) {
    console.error("usage: deno run -A tools/gpu/report.ts DIR (the files tools/gpu/run.sh wrote)");
    Deno.exit(2);
  }
  console.log(await gpuReport(dir));
}
