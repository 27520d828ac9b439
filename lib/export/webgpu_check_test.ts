import { assertEquals } from "../../tests/assert.ts";
import { SESSION_MARKER } from "./webgpu_child.ts";
import { nodesOffWebGpu, parseOrtLog } from "./webgpu_check.ts";

// Lines as onnxruntime-web 1.30 writes them at log severity 0 (verbose).
const V =
  "2026-12-01 11:13:38.774233 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]";
const run = (program: string) =>
  `2026-12-01 11:14:16.200088 [I:onnxruntime:, webgpu_context.cc:512 Run] Starting program "${program}" (10, 1, 1)`;

const LOG = [
  "error: XDG_RUNTIME_DIR is invalid or not set in the environment.",
  `${V} Node placements`,
  `${SESSION_MARKER} model.onnx`,
  `${V} Node placements`,
  `${V}  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2`,
  `${V}   Shape (Shape_0)`,
  `${V}   Slice (length)`,
  `${V}  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 82`,
  `${V}   Gather (h)`,
  run("Gather[0]:1|1:0;1|12;2:1:2|3"),
  run("MatMul[ActivationKind: 0;|4-4-1|1|4|1|1]:8,8,1"),
  run("MatMul[ActivationKind: 0;|4-4-1|1|4|1|1]:8,8,1"),
  '=== WebGPU Shader code [Max, Key="Max[E00]:1|1:2;|2;:2;"] Start ===',
  `${SESSION_MARKER} model.step.onnx`,
  `${V} Node placements`,
  `${V}  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 46`,
  run("Max[E00]:1|1:2;|2;:2;"),
].join("\n");

Deno.test("parseOrtLog: placements and programs per session, split at the session markers", () => {
  const [full, step, ...rest] = parseOrtLog(LOG);
  assertEquals(rest.length, 0);
  assertEquals(full.model, "model.onnx");
  assertEquals(full.placements, [
    { provider: "CPUExecutionProvider", count: 2, nodes: ["Shape (Shape_0)", "Slice (length)"] },
    { provider: "WebGpuExecutionProvider", count: 82, nodes: ["Gather (h)"] },
  ]);
  assertEquals(full.programs, { Gather: 1, MatMul: 2 });
  assertEquals(step, {
    model: "model.step.onnx",
    placements: [{ provider: "WebGpuExecutionProvider", count: 46, nodes: [] }],
    programs: { Max: 1 },
  });
});

Deno.test("nodesOffWebGpu: the CPU share of a session; none when all nodes are on WebGPU", () => {
  const [full, step] = parseOrtLog(LOG);
  assertEquals(nodesOffWebGpu(full).map((p) => [p.provider, p.count]), [[
    "CPUExecutionProvider",
    2,
  ]]);
  assertEquals(nodesOffWebGpu(step), []);
});
