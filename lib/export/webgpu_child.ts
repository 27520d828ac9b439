/**
 * Child process of the WebGPU check (`webgpu_check.ts`): runs the exported
 * models with onnxruntime-web's WebGPU execution provider at the most verbose
 * session log level, so ONNX Runtime writes its node placement (which
 * execution provider runs each node) and every GPU program it starts to
 * stderr, where the parent reads them.
 *
 * A separate process because ONNX Runtime's log goes straight to the
 * console, and because it keeps ORT's own WebGPU device and wasm heap out of
 * the pipeline's process.
 *
 * Usage: `deno run --no-config --allow-read --allow-write --allow-env
 * --unstable-webgpu webgpu_child.ts REQUEST.json`; the request is a
 * {@link WebGpuRequest}, and the child writes `<batch>.full.f32` /
 * `<batch>.step.f32` (logits `[rows, length, V]` f32 LE) and `result.json`
 * ({@link WebGpuChildResult}) into the request's `outDir` (the step logits are
 * `[rows, stepPositions, V]`). Between sessions
 * it writes a {@link SESSION_MARKER} line to stderr, so the parent can tell
 * which model a placement list belongs to.
 *
 * @module
 */
import {
  type IdBatch,
  type OrtModuleLike,
  type OrtSessionLike,
  runFullModel,
  runStepModel,
} from "./ort_run.ts";

/** Printed to stderr before each session is created: `<marker> <model file name>`. */
export const SESSION_MARKER = "@@samout-export-session";

/** What the parent asks of the child. */
export interface WebGpuRequest {
  /** file: URL of onnxruntime-web's WebGPU build (`import.meta.resolve("onnxruntime-web/webgpu")`). */
  ortUrl: string;
  /** Paths of `model.onnx` and `model.step.onnx`. */
  full: string;
  step: string;
  sizes: { vocabSize: number; hidden: number; layers: number };
  /**
   * Each batch's ids are in `<outDir>/<name>.ids.i32` (`[rows, length]` i32 LE);
   * the step model runs its first `stepPositions` positions (0: not at all).
   */
  batches: { name: string; rows: number; length: number; stepPositions: number }[];
  outDir: string;
}

/** `result.json`. */
export type WebGpuChildResult =
  | { ok: true }
  | { ok: false; stage: "load" | "model.onnx" | "model.step.onnx"; error: string };

function leBytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function main(requestPath: string): Promise<void> {
  const req: WebGpuRequest = JSON.parse(await Deno.readTextFile(requestPath));
  const write = (result: WebGpuChildResult) =>
    Deno.writeTextFile(`${req.outDir}/result.json`, JSON.stringify(result));
  let ort: OrtModuleLike & {
    env: { wasm: { wasmPaths?: unknown; numThreads?: number } };
    InferenceSession: {
      create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSessionLike>;
    };
  };
  try {
    ort = await import(req.ortUrl);
    ort.env.wasm.wasmPaths = new URL("./", req.ortUrl).href;
    ort.env.wasm.numThreads = 1;
  } catch (e) {
    return await write({ ok: false, stage: "load", error: String(e) });
  }
  const batches = new Map<string, IdBatch>();
  for (const b of req.batches) {
    const bytes = await Deno.readFile(`${req.outDir}/${b.name}.ids.i32`);
    batches.set(b.name, { rows: b.rows, length: b.length, tokens: new Int32Array(bytes.buffer) });
  }
  const options = {
    executionProviders: ["webgpu"],
    graphOptimizationLevel: "all",
    logSeverityLevel: 0,
    logVerbosityLevel: 0,
  };
  for (const model of ["model.onnx", "model.step.onnx"] as const) {
    try {
      console.error(`${SESSION_MARKER} ${model}`);
      const session = await ort.InferenceSession.create(
        await Deno.readFile(model === "model.onnx" ? req.full : req.step),
        options,
      );
      for (const b of req.batches) {
        const batch = batches.get(b.name)!;
        if (model === "model.onnx") {
          const logits = await runFullModel(ort, session, batch, req.sizes.vocabSize);
          await Deno.writeFile(`${req.outDir}/${b.name}.full.f32`, leBytes(logits));
        } else if (b.stepPositions > 0) {
          const logits = await runStepModel(ort, session, batch, req.sizes, b.stepPositions);
          await Deno.writeFile(`${req.outDir}/${b.name}.step.f32`, leBytes(logits));
        }
      }
    } catch (e) {
      return await write({ ok: false, stage: model, error: String(e) });
    }
  }
  await write({ ok: true });
}

if (import.meta.main) {
  await main(Deno.args[0]);
  // ORT's WebGPU device keeps the event loop alive; the results are written.
  Deno.exit(0);
}
