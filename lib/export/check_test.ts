import onnxProto from "onnx-proto";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { randomIds, TINY, tinyWeights } from "../../tests/export_fixture.ts";
import { UserError } from "../errors/mod.ts";
import { requestGpu } from "../gpu/device.ts";
import { type CheckBatch, checkExportedModels } from "./check.ts";
import { samoutOnnx, samoutStepOnnx } from "./samout_onnx.ts";

const { onnx } = onnxProto;
const weights = tinyWeights();
const batches: CheckBatch[] = [
  { name: "rows", ...randomIds(11, 16, [16, 9, 3]), step: true },
  { name: "long", ...randomIds(12, 20, [20]), step: false },
];

/** The model with one weight's sign flipped (element `index` of initializer `name`). */
function flipWeight(bytes: Uint8Array, name: string, index: number): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const t = model.graph!.initializer!.find((x) => x.name === name)!;
  const raw = new Uint8Array(t.rawData!).slice();
  raw[index * 4 + 3] ^= 0x80; // the sign bit of a little-endian f32
  t.rawData = raw;
  return onnx.ModelProto.encode(model).finish();
}

/** The UserError `promise` rejects with. */
async function userError(promise: Promise<unknown>): Promise<UserError> {
  const e = await assertRejects(() => promise);
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  return e;
}

async function check(fullOnnx: Uint8Array, stepOnnx: Uint8Array) {
  const workDir = await Deno.makeTempDir();
  try {
    return await checkExportedModels({
      config: TINY,
      weights,
      fullOnnx,
      stepOnnx,
      batches,
      gpu: await requestGpu(),
      tolerance: 1e-4,
      webgpu: "skip",
      workDir,
    });
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
}

Deno.test("checkExportedModels: the exported models match the WGSL forward (SamOutInference) on wasm", async () => {
  const { report, onnxLogits } = await check(
    samoutOnnx(TINY, weights),
    samoutStepOnnx(TINY, weights),
  );
  assertEquals(
    report.comparisons.map((c) => `${c.backend} ${c.model} ${c.batch} vs ${c.against}`),
    [
      "wasm model.onnx rows [3 x 16] vs WGSL forward",
      "wasm model.step.onnx rows [3 x 16] vs model.onnx",
      "wasm model.step.onnx rows [3 x 16] vs WGSL forward",
      "wasm model.onnx long [1 x 20] vs WGSL forward",
    ],
  );
  assert(report.max_relative_error < 1e-5, `max relative error ${report.max_relative_error}`);
  assertEquals(report.webgpu, { ran: false, reason: "skipped (webgpu: skip)" });
  assertEquals(onnxLogits.get("rows")!.length, 3 * 16 * TINY.vocabSize);
});

Deno.test("checkExportedModels: a flipped weight in model.onnx is a UserError naming model.onnx", async () => {
  const corrupt = flipWeight(samoutOnnx(TINY, weights), "head.weight", 5 * TINY.hidden + 3);
  const e = await userError(check(corrupt, samoutStepOnnx(TINY, weights)));
  assertEquals(e.location.file, "model.onnx");
  assert(
    e.message.includes("does not match the WGSL forward on onnxruntime-web (wasm)"),
    e.message,
  );
  assert(/^\d\.\d{3}e-\d+ on batch rows \[3 x 16\]$/.test(e.found ?? ""), `found: ${e.found}`);
});

Deno.test("checkExportedModels: a flipped weight in model.step.onnx is a UserError naming model.step.onnx", async () => {
  const corrupt = flipWeight(
    samoutStepOnnx(TINY, weights),
    "decoder_layers.1.self_attention.head0.weight",
    7,
  );
  const e = await userError(check(samoutOnnx(TINY, weights), corrupt));
  assertEquals(e.location.file, "model.step.onnx");
  assert(e.message.includes("does not match the model.onnx"), e.message);
});
