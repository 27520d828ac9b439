/**
 * The export's self-check: the exported ONNX models must compute what the
 * trained model computes. On a few token batches:
 *
 * - the WGSL forward (`SamOutInference`, the GPU model the project trains and
 *   evaluates) gives the reference logits;
 * - onnxruntime-web's wasm backend runs `model.onnx` on every batch and
 *   `model.step.onnx` token by token on the step batches; both must match the
 *   reference, and the step logits must match the full model's, to
 *   `tolerance` relative (`max |a - e| / max |e|`);
 * - where WebGPU is asked for, onnxruntime-web's WebGPU backend does the same
 *   in a child process, and every node of both models must be placed on the
 *   WebGPU execution provider (ONNX Runtime puts a node whose operator it
 *   lacks on the CPU without an error; the verbose session log says so). The
 *   step model runs the first {@link WEBGPU_STEP_POSITIONS} positions there:
 *   each step is a separate session run with a readback, slow on a software
 *   adapter, and the wasm backend already runs every position.
 *
 * A mismatch is a `UserError` naming the model file, the backend, the batch
 * and the error found.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "../errors/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import type { SamOutConfig } from "../model/config.ts";
import { type Pick, SamOutInference } from "../model/inference.ts";
import { createOrtSession, ort } from "../tokenizers/ort.ts";
import {
  type IdBatch,
  leadingPositions,
  type OrtModuleLike,
  relativeError,
  runFullModel,
  runStepModel,
} from "./ort_run.ts";
import { nodesOffWebGpu, runOnWebGpu, WEBGPU_PROVIDER } from "./webgpu_check.ts";

/** Positions the step model runs on the WebGPU backend (all of them on wasm). */
export const WEBGPU_STEP_POSITIONS = 32;

/** Whether the WebGPU backend runs: where it can start (`auto`), always (`require`), or not. */
export type WebGpuMode = "auto" | "require" | "skip";

/** A batch the check runs. */
export interface CheckBatch extends IdBatch {
  /** File-name-safe name, e.g. `test_rows`. */
  name: string;
  /** Whether the step model also runs it, token by token. */
  step: boolean;
}

/** One measured comparison. */
export interface Comparison {
  backend: "wasm" | "webgpu";
  model: "model.onnx" | "model.step.onnx";
  /** `<name> [rows x length]`, and `, first N positions` where the step model ran fewer. */
  batch: string;
  against: "WGSL forward" | "model.onnx";
  relative_error: number;
}

/** What the WebGPU backend did. */
export type WebGpuReport =
  | {
    ran: true;
    /** Per model: nodes placed on WebGPU (all of them, or the check failed) and the GPU programs run. */
    sessions: { model: string; nodes_on_webgpu: number; programs: Record<string, number> }[];
  }
  | { ran: false; reason: string };

/** The check's findings (written to the bundle's `check.json`). */
export interface ExportCheckReport {
  /** The onnxruntime-web release that ran the checks (`ort.env.versions.web`). */
  onnxruntime_web: string;
  tolerance: number;
  /** The WebGPU adapter the WGSL reference ran on. */
  adapter: string;
  batches: { name: string; rows: number; length: number; step: boolean }[];
  comparisons: Comparison[];
  /** The largest relative error of all comparisons. */
  max_relative_error: number;
  webgpu: WebGpuReport;
}

/** The report, and the wasm backend's `model.onnx` logits per batch (`[rows, length, V]`). */
export interface ExportCheckResult {
  report: ExportCheckReport;
  onnxLogits: Map<string, Float32Array>;
}

/** What {@link checkExportedModels} needs. */
export interface ExportCheckOptions {
  config: SamOutConfig;
  weights: Map<string, Float32Array>;
  fullOnnx: Uint8Array;
  stepOnnx: Uint8Array;
  batches: CheckBatch[];
  gpu: Gpu;
  /** Largest accepted relative error (the issue's figure: 1e-4). */
  tolerance: number;
  webgpu: WebGpuMode;
  /** A scratch directory (the WebGPU check's files go in a fresh folder inside it). */
  workDir: string;
  log?: (message: string) => void;
}

const batchLabel = (b: IdBatch & { name: string }) => `${b.name} [${b.rows} x ${b.length}]`;

/** Logits of every position of every batch from the WGSL forward, `[rows, length, V]` each. */
async function wgslLogits(
  gpu: Gpu,
  config: SamOutConfig,
  weights: Map<string, Float32Array>,
  batches: CheckBatch[],
): Promise<Map<string, Float32Array>> {
  const maxBatch = Math.max(...batches.map((b) => b.rows));
  const maxLength = Math.max(...batches.map((b) => b.length));
  const maxPicks = Math.max(...batches.map((b) => b.rows * b.length));
  const model = await SamOutInference.create(gpu, { config, maxBatch, maxLength, maxPicks });
  try {
    model.uploadWeights(weights);
    const out = new Map<string, Float32Array>();
    for (const b of batches) {
      const picks: Pick[] = [];
      for (let row = 0; row < b.rows; row++) {
        for (let position = 0; position < b.length; position++) picks.push({ row, position });
      }
      out.set(b.name, await model.logitsAt(b, picks));
    }
    return out;
  } finally {
    model.destroy();
  }
}

/**
 * Runs the check (see the module doc). Returns the measured errors and the
 * wasm backend's logits; throws a
 * `UserError` on the first comparison above `tolerance`, on a node placed off
 * WebGPU, or when WebGPU is required and cannot run.
 */
export async function checkExportedModels(opts: ExportCheckOptions): Promise<ExportCheckResult> {
  const { config, tolerance, batches } = opts;
  const log = opts.log ?? (() => {});
  const sizes = { vocabSize: config.vocabSize, hidden: config.hidden, layers: config.layers };
  const reference = await wgslLogits(opts.gpu, config, opts.weights, batches);
  const comparisons: Comparison[] = [];
  const onnxLogits = new Map<string, Float32Array>();
  const compare = (
    c: Omit<Comparison, "relative_error">,
    actual: Float32Array,
    expected: Float32Array,
  ) => {
    const error = relativeError(actual, expected);
    comparisons.push({ ...c, relative_error: error });
    if (!(error <= tolerance)) {
      const backend = `onnxruntime-web (${c.backend})`;
      throw new UserError(
        `the exported ${c.model} does not match the ${c.against} on ${backend}`,
        {
          file: c.model,
          expected: `relative error at most ${tolerance} (max |difference| / max |logit|)`,
          found: `${error.toExponential(3)} on batch ${c.batch}`,
          hint:
            "the exported graph or its weights compute something other than the trained model; " +
            "this is a bug in the export (lib/export), not in the data",
        },
      );
    }
  };

  // onnxruntime-web, wasm backend (always)
  const wasm = await ort() as unknown as OrtModuleLike;
  const full = await createOrtSession(opts.fullOnnx);
  const step = await createOrtSession(opts.stepOnnx).catch(async (e) => {
    await full.release();
    throw e;
  });
  try {
    for (const b of batches) {
      const label = batchLabel(b);
      const fullLogits = await runFullModel(wasm, full, b, config.vocabSize);
      onnxLogits.set(b.name, fullLogits);
      const expected = reference.get(b.name)!;
      compare(
        { backend: "wasm", model: "model.onnx", batch: label, against: "WGSL forward" },
        fullLogits,
        expected,
      );
      if (!b.step) continue;
      const stepLogits = await runStepModel(wasm, step, b, sizes);
      compare(
        { backend: "wasm", model: "model.step.onnx", batch: label, against: "model.onnx" },
        stepLogits,
        fullLogits,
      );
      compare(
        { backend: "wasm", model: "model.step.onnx", batch: label, against: "WGSL forward" },
        stepLogits,
        expected,
      );
    }
  } finally {
    await full.release();
    await step.release();
  }
  log(`onnxruntime-web wasm: both models match the WGSL forward (tolerance ${tolerance})`);

  // onnxruntime-web, WebGPU backend
  const webgpu: WebGpuReport = opts.webgpu === "skip"
    ? { ran: false, reason: "skipped (webgpu: skip)" }
    : await checkOnWebGpu(opts, sizes, reference, compare, log);
  const report: ExportCheckReport = {
    onnxruntime_web: ortWebVersion(wasm),
    tolerance,
    adapter: opts.gpu.adapterDescription,
    batches: batches.map(({ name, rows, length, step }) => ({ name, rows, length, step })),
    comparisons,
    max_relative_error: Math.max(...comparisons.map((c) => c.relative_error)),
    webgpu,
  };
  return { report, onnxLogits };
}

/** The onnxruntime-web release a module reports, or "unknown". */
function ortWebVersion(module: unknown): string {
  const v = (module as { env?: { versions?: { web?: unknown } } }).env?.versions?.web;
  return typeof v === "string" ? v : "unknown";
}

/**
 * The exported models on onnxruntime-web's WebGPU backend (in a subprocess,
 * webgpu_check.ts): every node must be placed on the GPU, and their logits
 * must match model.onnx's and the WGSL forward's (`compare` throws past the
 * tolerance). A backend that cannot start is an error with `webgpu: require`,
 * a report line otherwise.
 */
async function checkOnWebGpu(
  opts: ExportCheckOptions,
  sizes: { vocabSize: number; hidden: number; layers: number },
  reference: Map<string, Float32Array>,
  compare: (
    c: Omit<Comparison, "relative_error">,
    actual: Float32Array,
    expected: Float32Array,
  ) => void,
  log: (line: string) => void,
): Promise<WebGpuReport> {
  const { config, batches } = opts;
  // A fresh folder: the work directory survives a killed run, and stale results must not be read.
  const dir = await Deno.makeTempDir({ dir: opts.workDir, prefix: "webgpu-" });
  const fullPath = join(dir, "model.onnx");
  const stepPath = join(dir, "model.step.onnx");
  await Deno.writeFile(fullPath, opts.fullOnnx);
  await Deno.writeFile(stepPath, opts.stepOnnx);
  const run = await runOnWebGpu({
    fullPath,
    stepPath,
    sizes,
    batches: batches.map((b) => ({
      ...b,
      stepPositions: b.step ? Math.min(b.length, WEBGPU_STEP_POSITIONS) : 0,
    })),
    workDir: dir,
  });
  for (const session of run.sessions) {
    const off = nodesOffWebGpu(session);
    if (off.length > 0) {
      throw new UserError(
        `the exported ${session.model} does not run entirely on onnxruntime-web's WebGPU backend`,
        {
          file: session.model,
          expected: `every node placed on ${WEBGPU_PROVIDER}`,
          found: off.map((p) => `${p.count} on ${p.provider}: ${p.nodes.join(", ")}`).join("; "),
          hint: "an operator the WebGPU provider lacks falls back to the CPU; " +
            "build that step from supported operators in lib/export/samout_onnx.ts",
        },
      );
    }
  }
  if (!run.ok) {
    const reason = `${run.stage}: ${run.error}`;
    if (opts.webgpu === "require") {
      throw new UserError("onnxruntime-web's WebGPU backend could not run the exported models", {
        field: "webgpu",
        expected: "a WebGPU session for model.onnx and model.step.onnx",
        found: `${reason}\n${run.logTail}`,
        hint: "set webgpu: auto to accept a machine where it cannot start",
      });
    }
    log(`onnxruntime-web WebGPU did not run (${reason}); the wasm check stands`);
    return { ran: false, reason };
  } else {
    for (const b of batches) {
      const got = run.logits.get(b.name)!;
      const label = batchLabel(b);
      const expected = reference.get(b.name)!;
      compare(
        { backend: "webgpu", model: "model.onnx", batch: label, against: "WGSL forward" },
        got.full,
        expected,
      );
      if (!b.step) continue;
      const n = Math.min(b.length, WEBGPU_STEP_POSITIONS);
      const stepLabel = n < b.length ? `${label}, first ${n} positions` : label;
      const lead = (x: Float32Array) => leadingPositions(x, b.rows, b.length, n, config.vocabSize);
      compare(
        { backend: "webgpu", model: "model.step.onnx", batch: stepLabel, against: "model.onnx" },
        got.step!,
        lead(got.full),
      );
      compare(
        {
          backend: "webgpu",
          model: "model.step.onnx",
          batch: stepLabel,
          against: "WGSL forward",
        },
        got.step!,
        lead(expected),
      );
    }
    const sessions = run.sessions.map((s) => ({
      model: s.model,
      nodes_on_webgpu: s.placements.find((p) => p.provider === WEBGPU_PROVIDER)?.count ?? 0,
      programs: s.programs,
    }));
    if (sessions.length !== 2 || sessions.some((s) => s.nodes_on_webgpu === 0)) {
      throw new UserError("onnxruntime-web's WebGPU log did not show the node placement", {
        expected: "a placement list for model.onnx and model.step.onnx (log severity verbose)",
        found: JSON.stringify(sessions.map((s) => [s.model, s.nodes_on_webgpu])),
        hint:
          "a different onnxruntime-web version may log differently (lib/export/webgpu_check.ts)",
      });
    }
    log(
      `onnxruntime-web WebGPU: every node on the GPU (${
        sessions.map((s) => `${s.model} ${s.nodes_on_webgpu}`).join(", ")
      }), both models match`,
    );
    return { ran: true, sessions };
  }
}
