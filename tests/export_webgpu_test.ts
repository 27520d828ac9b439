/**
 * onnxruntime-web's WebGPU backend on the exported models (in a child
 * process, `lib/export/webgpu_check.ts`): every node placed on the WebGPU
 * execution provider, logits matching the float64 CPU reference, and a node
 * the provider puts on the CPU caught by the export's check.
 */
import onnxProto from "onnx-proto";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { randomIds, TINY, tinyWeights } from "./export_fixture.ts";
import { UserError } from "../lib/errors/mod.ts";
import { checkExportedModels } from "../lib/export/check.ts";
import { relativeError } from "../lib/export/ort_run.ts";
import { samoutOnnx, samoutStepOnnx } from "../lib/export/samout_onnx.ts";
import { nodesOffWebGpu, runOnWebGpu, WEBGPU_PROVIDER } from "../lib/export/webgpu_check.ts";
import { requestGpu } from "../lib/gpu/device.ts";
import { int64Tensor } from "../lib/onnx/mod.ts";
import { samoutForward } from "../lib/model/reference.ts";

const { onnx } = onnxProto;
const weights = tinyWeights();

/** `[rows, n, V]` of the reference logits `[rows, length, V]`. */
function leading(logits: Float64Array, rows: number, length: number, n: number): Float64Array {
  const V = TINY.vocabSize;
  const out = new Float64Array(rows * n * V);
  for (let r = 0; r < rows; r++) {
    out.set(logits.subarray(r * length * V, (r * length + n) * V), r * n * V);
  }
  return out;
}

Deno.test("WebGPU backend: every node of both models on the GPU, logits matching the CPU reference", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fullPath = `${dir}/model.onnx`, stepPath = `${dir}/model.step.onnx`;
    await Deno.writeFile(fullPath, samoutOnnx(TINY, weights));
    await Deno.writeFile(stepPath, samoutStepOnnx(TINY, weights));
    const rows = { name: "rows", ...randomIds(21, 16, [16, 11, 2]), stepPositions: 12 };
    const long = { name: "long", ...randomIds(22, 20, [20]), stepPositions: 0 };
    const run = await runOnWebGpu({
      fullPath,
      stepPath,
      sizes: TINY,
      batches: [rows, long],
      workDir: dir,
    });
    assert(run.ok, run.ok ? "" : `${run.stage}: ${run.error}\n${run.logTail}`);
    assertEquals(run.sessions.map((s) => s.model), ["model.onnx", "model.step.onnx"]);
    for (const s of run.sessions) {
      assertEquals(nodesOffWebGpu(s), [], `${s.model}: nodes off WebGPU`);
      assertEquals(s.placements.map((p) => p.provider), [WEBGPU_PROVIDER]);
      for (const program of ["MatMul", "Max", "Gather", "LayerNorm"]) {
        assert(
          s.programs[program] > 0,
          `${s.model}: no ${program} program ran: ${JSON.stringify(s.programs)}`,
        );
      }
    }
    assert(run.sessions[0].programs.Pad > 0 && run.sessions[0].programs.CumSum > 0);
    for (const b of [rows, long]) {
      const expected = samoutForward(weights, TINY, b.tokens, b.rows, b.length).logits;
      const got = run.logits.get(b.name)!;
      const err = relativeError(got.full, expected);
      assert(err < 1e-5, `${b.name} full: relative error ${err}`);
      if (b.stepPositions === 0) continue;
      const stepErr = relativeError(
        got.step!,
        leading(expected, b.rows, b.length, b.stepPositions),
      );
      assert(stepErr < 1e-5, `${b.name} step: relative error ${stepErr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * model.onnx with its positions counted the usual way, Range over the length
 * from Shape: the same logits, but ONNX Runtime computes shape values on the CPU.
 */
function positionsFromShape(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const at = graph.node!.findIndex((n) => n.output![0] === "t");
  const int64 = (name: string, dims: number[], values: number[]) => {
    const t = int64Tensor(name, dims, values);
    return { name, dims: t.dims, dataType: onnx.TensorProto.DataType.INT64, rawData: t.rawData };
  };
  graph.initializer!.push(
    int64("x_zero", [], [0]),
    int64("x_one", [], [1]),
    int64("x_1", [1], [1]),
    int64("x_2", [1], [2]),
    int64("x_axis0", [1], [0]),
  );
  const node = (opType: string, input: string[], output: string, attribute = {}) => ({
    opType,
    input,
    output: [output],
    name: output,
    ...attribute,
  });
  graph.node!.splice(
    at,
    1,
    node("Shape", ["ids"], "x_shape"),
    node("Slice", ["x_shape", "x_1", "x_2"], "x_length"),
    node("Squeeze", ["x_length", "x_axis0"], "x_n"),
    node("Range", ["x_zero", "x_n", "x_one"], "x_range"),
    node("Cast", ["x_range"], "x_rangef", {
      attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
    }),
    node("Unsqueeze", ["x_rangef", "x_axis0"], "t"),
  );
  return onnx.ModelProto.encode(model).finish();
}

Deno.test("the export check fails when a node of the graph runs on the CPU under WebGPU", async () => {
  const workDir = await Deno.makeTempDir();
  const gpu = await requestGpu();
  try {
    const e = await assertRejects(() =>
      checkExportedModels({
        config: TINY,
        weights,
        fullOnnx: positionsFromShape(samoutOnnx(TINY, weights)),
        stepOnnx: samoutStepOnnx(TINY, weights),
        batches: [{ name: "rows", ...randomIds(23, 9, [9, 4]), step: true }],
        gpu,
        tolerance: 1e-4,
        webgpu: "require",
        workDir,
      })
    );
    // The wasm backend ran it and matched: only the placement fails.
    assert(e instanceof UserError, String(e));
    assertEquals(e.location.file, "model.onnx");
    assert(
      e.message.includes("does not run entirely on onnxruntime-web's WebGPU backend"),
      e.message,
    );
    assert(/on CPUExecutionProvider: .*Shape \(x_shape\)/.test(e.found ?? ""), `found: ${e.found}`);
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});
