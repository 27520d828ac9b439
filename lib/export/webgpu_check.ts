/**
 * Runs the exported models with onnxruntime-web's WebGPU execution provider
 * in a child process (`webgpu_child.ts`) and reads ONNX Runtime's verbose
 * session log: which execution provider each node was placed on, and which
 * GPU programs ran. An operator the WebGPU provider lacks is placed on the
 * CPU provider without any error, so the placement is the only evidence that
 * the whole graph stays on the GPU.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IdBatch } from "./ort_run.ts";
import { SESSION_MARKER, type WebGpuChildResult, type WebGpuRequest } from "./webgpu_child.ts";

/** The WebGPU provider's name in ONNX Runtime's placement log. */
export const WEBGPU_PROVIDER = "WebGpuExecutionProvider";

/** One execution provider's share of a session's nodes. */
export interface ProviderPlacement {
  provider: string;
  count: number;
  /** `OpType (node name)` lines; empty when the log says "All nodes placed on …". */
  nodes: string[];
}

/** What one session's log says. */
export interface SessionLog {
  /** The model file the session ran (`model.onnx`, `model.step.onnx`). */
  model: string;
  placements: ProviderPlacement[];
  /** GPU programs started, by program name (`MatMul`, `Max`, `Pad`…), with counts over all runs. */
  programs: Record<string, number>;
}

/**
 * Splits ONNX Runtime's stderr at the child's session markers and reads each
 * part's `VerifyEachNodeIsAssignedToAnEp` placement lines and `Starting
 * program "…"` lines.
 */
export function parseOrtLog(log: string): SessionLog[] {
  const sessions: SessionLog[] = [];
  let current: SessionLog | undefined;
  let provider: ProviderPlacement | undefined;
  for (const line of log.split("\n")) {
    if (line.startsWith(SESSION_MARKER)) {
      current = { model: line.slice(SESSION_MARKER.length).trim(), placements: [], programs: {} };
      sessions.push(current);
      provider = undefined;
      continue;
    }
    if (!current) continue;
    if (line.includes("VerifyEachNodeIsAssignedToAnEp]")) {
      const text = line.slice(line.indexOf("VerifyEachNodeIsAssignedToAnEp]") + 31);
      const placed = /placed on \[([^\]]+)\]\. Number of nodes: (\d+)/.exec(text);
      if (placed) {
        provider = { provider: placed[1], count: Number(placed[2]), nodes: [] };
        current.placements.push(provider);
      } else if (provider && /^\s{3,}\S/.test(text)) {
        provider.nodes.push(text.trim());
      }
      continue;
    }
    const program = /Starting program "([A-Za-z0-9_]+)/.exec(line);
    if (program) current.programs[program[1]] = (current.programs[program[1]] ?? 0) + 1;
  }
  return sessions;
}

/** Nodes a session placed on any provider other than WebGPU ("Shape (Shape_0)" …, by provider). */
export function nodesOffWebGpu(session: SessionLog): ProviderPlacement[] {
  return session.placements.filter((p) => p.provider !== WEBGPU_PROVIDER);
}

/** A batch for the child: its ids, and how many leading positions the step model runs. */
export interface WebGpuBatch extends IdBatch {
  /** File-name-safe name. */
  name: string;
  /** 0: the step model does not run this batch. */
  stepPositions: number;
}

/** What {@link runOnWebGpu} returns. */
export type WebGpuRun =
  | {
    ok: true;
    sessions: SessionLog[];
    /** Per batch name: the full model's logits, and the step model's (`[rows, stepPositions, V]`) where asked. */
    logits: Map<string, { full: Float32Array; step?: Float32Array }>;
  }
  | { ok: false; sessions: SessionLog[]; stage: string; error: string; logTail: string };

async function readFloats(path: string): Promise<Float32Array> {
  const bytes = await Deno.readFile(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/**
 * Runs `model.onnx` (every batch) and `model.step.onnx` (the leading
 * `stepPositions` of each batch) on the WebGPU provider in a child process, in `workDir` (which must
 * exist and be empty). Never throws for ORT failures: they come back as
 * `ok: false` with the stage and the log's tail.
 */
export async function runOnWebGpu(opts: {
  fullPath: string;
  stepPath: string;
  sizes: WebGpuRequest["sizes"];
  batches: WebGpuBatch[];
  workDir: string;
  timeoutMs?: number;
}): Promise<WebGpuRun> {
  const request: WebGpuRequest = {
    ortUrl: import.meta.resolve("onnxruntime-web/webgpu"),
    full: opts.fullPath,
    step: opts.stepPath,
    sizes: opts.sizes,
    batches: opts.batches.map(({ name, rows, length, stepPositions }) => ({
      name,
      rows,
      length,
      stepPositions,
    })),
    outDir: opts.workDir,
  };
  for (const b of opts.batches) {
    const ids = Int32Array.from(b.tokens);
    await Deno.writeFile(join(opts.workDir, `${b.name}.ids.i32`), new Uint8Array(ids.buffer));
  }
  const requestPath = join(opts.workDir, "request.json");
  await Deno.writeTextFile(requestPath, JSON.stringify(request));
  const child = fileURLToPath(new URL("./webgpu_child.ts", import.meta.url));
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--allow-read",
        `--allow-write=${opts.workDir}`,
        "--allow-env",
        "--unstable-webgpu",
        child,
        requestPath,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000),
    }).output();
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    return { ok: false, sessions: [], stage: "process", error, logTail: "" };
  }
  const log = new TextDecoder().decode(output.stderr);
  const sessions = parseOrtLog(log);
  const tail = log.split("\n").filter((l) => !l.startsWith(" ")).slice(-20).join("\n");
  let result: WebGpuChildResult;
  try {
    result = JSON.parse(await Deno.readTextFile(join(opts.workDir, "result.json")));
  } catch {
    return {
      ok: false,
      sessions,
      stage: "process",
      error: `the WebGPU check process exited with code ${output.code} without a result`,
      logTail: tail,
    };
  }
  if (!result.ok) {
    return { ok: false, sessions, stage: result.stage, error: result.error, logTail: tail };
  }
  const logits = new Map<string, { full: Float32Array; step?: Float32Array }>();
  for (const b of opts.batches) {
    const full = await readFloats(join(opts.workDir, `${b.name}.full.f32`));
    const step = b.stepPositions > 0
      ? await readFloats(join(opts.workDir, `${b.name}.step.f32`))
      : undefined;
    logits.set(b.name, { full, step });
  }
  return { ok: true, sessions, logits };
}
