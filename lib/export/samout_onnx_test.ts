import onnxProto from "onnx-proto";
import { assert, assertEquals } from "../../tests/assert.ts";
import { randomIds, TINY, tinyWeights } from "../../tests/export_fixture.ts";
import type { TokenBatch } from "../data/types.ts";
import type { SamOutConfig } from "../model/config.ts";
import { initParameters, parameterTable } from "../model/params.ts";
import { samoutForward } from "../model/reference.ts";
import { createOrtSession, ort, type OrtSession } from "../tokenizers/ort.ts";
import { type OrtModuleLike, relativeError, runFullModel, runStepModel } from "./ort_run.ts";
import { runningMaxSteps, samoutOnnx, samoutStepOnnx } from "./samout_onnx.ts";

const { onnx } = onnxProto;
const weights = tinyWeights();

/** The float64 CPU reference's logits `[rows, length, V]` of a batch. */
function reference(batch: TokenBatch, cfg = TINY, params = weights): Float64Array {
  return samoutForward(params, cfg, batch.tokens, batch.rows, batch.length).logits;
}

async function withSession<T>(bytes: Uint8Array, f: (s: OrtSession) => Promise<T>): Promise<T> {
  const session = await createOrtSession(bytes);
  try {
    return await f(session);
  } finally {
    await session.release();
  }
}

const wasm = async () => (await ort()) as unknown as OrtModuleLike;

Deno.test("runningMaxSteps: ceil(log2(P)) doubling steps cover every length up to P", () => {
  assertEquals([1, 2, 3, 4, 5, 20, 256, 257].map(runningMaxSteps), [0, 1, 2, 2, 3, 5, 8, 9]);
});

Deno.test("model.onnx matches the float64 CPU reference at several batch sizes and lengths (dynamic dims)", async () => {
  // [3, 20]: length P, padding in two rows, every doubling step carries real values;
  // [1, 7] and [2, 1]: other batch sizes and lengths through the same session.
  const batches = [randomIds(1, 20, [20, 13, 4]), randomIds(2, 7, [7]), randomIds(3, 1, [1, 1])];
  await withSession(samoutOnnx(TINY, weights), async (session) => {
    for (const batch of batches) {
      const got = await runFullModel(await wasm(), session, batch, TINY.vocabSize);
      const err = relativeError(got, reference(batch));
      assert(err < 1e-5, `[${batch.rows} x ${batch.length}]: relative error ${err}`);
    }
  });
});

Deno.test("model.step.onnx fed token by token matches the CPU reference and model.onnx", async () => {
  const batch = randomIds(4, 20, [20, 17, 9]);
  const full = await withSession(
    samoutOnnx(TINY, weights),
    async (s) => runFullModel(await wasm(), s, batch, TINY.vocabSize),
  );
  const steps = await withSession(
    samoutStepOnnx(TINY, weights),
    async (s) => runStepModel(await wasm(), s, batch, TINY),
  );
  const vsReference = relativeError(steps, reference(batch));
  assert(vsReference < 1e-5, `step vs reference: ${vsReference}`);
  const vsFull = relativeError(steps, full);
  assert(vsFull < 1e-5, `step vs full: ${vsFull}`);
});

Deno.test("model.step.onnx: rows are independent, each at its own position", async () => {
  // Row 0 runs sequence a from position 0; row 1 joins sequence b three tokens in,
  // carrying the state that b's first three tokens left in a one-row run.
  const a = randomIds(5, 8, [8]).tokens, b = randomIds(6, 11, [11]).tokens;
  const { vocabSize: V, hidden: d, layers: L } = TINY;
  const o = await wasm();
  await withSession(samoutStepOnnx(TINY, weights), async (session) => {
    const run = async (tokens: number[], state: Float32Array, positions: number[]) => {
      const out = await session.run({
        token: new o.Tensor("int64", BigInt64Array.from(tokens, BigInt), [tokens.length]),
        state: new o.Tensor("float32", state, [L, tokens.length, d]),
        position: new o.Tensor("int64", BigInt64Array.from(positions, BigInt), [tokens.length]),
      } as never);
      return {
        logits: out.logits.data as Float32Array,
        state: out.new_state.data as Float32Array,
      };
    };
    let stateB: Float32Array = new Float32Array(L * d).fill(-Infinity);
    for (let t = 0; t < 3; t++) stateB = (await run([b[t]], stateB, [t])).state;
    let state: Float32Array = new Float32Array(L * 2 * d).fill(-Infinity);
    for (let l = 0; l < L; l++) state.set(stateB.subarray(l * d, (l + 1) * d), (l * 2 + 1) * d);
    const refA = reference({ rows: 1, length: 8, tokens: a });
    const refB = reference({ rows: 1, length: 11, tokens: b });
    for (let t = 0; t < 8; t++) {
      const out = await run([a[t], b[t + 3]], state, [t, t + 3]);
      state = out.state;
      const errA = relativeError(out.logits.subarray(0, V), refA.subarray(t * V, (t + 1) * V));
      const errB = relativeError(
        out.logits.subarray(V, 2 * V),
        refB.subarray((t + 3) * V, (t + 4) * V),
      );
      assert(errA < 1e-5 && errB < 1e-5, `position ${t}: row errors ${errA}, ${errB}`);
    }
  });
});

Deno.test("the smallest model (L 1, P 1: no doubling step, one state) exports and runs", async () => {
  const cfg: SamOutConfig = { vocabSize: 5, hidden: 4, heads: 2, layers: 1, maxPositions: 1 };
  const params = initParameters(cfg, 9);
  const batch: TokenBatch = { rows: 2, length: 1, tokens: Int32Array.of(3, 0) };
  const expected = reference(batch, cfg, params);
  const full = await withSession(
    samoutOnnx(cfg, params),
    async (s) => runFullModel(await wasm(), s, batch, cfg.vocabSize),
  );
  const steps = await withSession(
    samoutStepOnnx(cfg, params),
    async (s) => runStepModel(await wasm(), s, batch, cfg),
  );
  assert(relativeError(full, expected) < 1e-5, `full: ${relativeError(full, expected)}`);
  assert(relativeError(steps, expected) < 1e-5, `step: ${relativeError(steps, expected)}`);
});

/** Operators placed on onnxruntime-web's WebGPU provider in tests/export_webgpu_test.ts. */
const WEBGPU_OPERATORS = [
  "Add",
  "Cast",
  "Concat",
  "CumSum",
  "Div",
  "Gather",
  "LayerNormalization",
  "Max",
  "MatMul",
  "Mul",
  "Pad",
  "Relu",
  "Slice",
  "Sub",
  "Transpose",
  "Unsqueeze",
];

Deno.test("both graphs: opset 17, only the operators checked on WebGPU, weights under SAMOUT.md names", () => {
  for (const bytes of [samoutOnnx(TINY, weights), samoutStepOnnx(TINY, weights)]) {
    const model = onnx.ModelProto.decode(bytes);
    assertEquals(Number(model.opsetImport[0].version), 17);
    const graph = model.graph as onnxProto.onnx.GraphProto;
    const ops = new Set(graph.node.map((n) => n.opType!));
    for (const op of ops) {
      assert(WEBGPU_OPERATORS.includes(op), `operator ${op} is not in the list`);
    }
    assert(ops.has("Max") && ops.has("Pad") === (graph.name === "samout"), `ops ${[...ops]}`);
    const initializers = new Map(graph.initializer.map((t) => [t.name!, t]));
    for (const spec of parameterTable(TINY)) {
      const t = initializers.get(spec.name);
      assert(t !== undefined, `initializer ${spec.name} missing`);
      assertEquals(t.dims!.map(Number), spec.shape);
      const raw = new Uint8Array(t.rawData!).slice();
      assertEquals(Array.from(new Float32Array(raw.buffer)), Array.from(weights.get(spec.name)!));
    }
  }
});

Deno.test("model.onnx: 5 Pad/Slice/Max doubling steps per layer for P = 20", () => {
  const graph = onnx.ModelProto.decode(samoutOnnx(TINY, weights))
    .graph as onnxProto.onnx.GraphProto;
  const count = (op: string) => graph.node.filter((n) => n.opType === op).length;
  assertEquals(count("Pad"), 5 * TINY.layers);
  assertEquals(count("Max"), 5 * TINY.layers);
  assertEquals(graph.input.map((i) => i.name), ["ids"]);
  assertEquals(graph.output.map((o) => o.name), ["logits"]);
  const dims = graph.input[0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam);
  assertEquals(dims, ["batch", "length"]);
});
