import onnxProto from "onnx-proto";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { attr, buildModel, floatTensor, int64Tensor } from "./mod.ts";

const { onnx } = onnxProto;

/** A copy of a decoded tensor's raw bytes, as its own ArrayBuffer. */
function bytesOf(t: onnxProto.onnx.ITensorProto): ArrayBuffer {
  return new Uint8Array(t.rawData ?? []).slice().buffer;
}

Deno.test("buildModel writes a ModelProto that decodes to the same graph", () => {
  const bytes = buildModel({
    inputs: [{ name: "x", type: "float32", shape: [1, "n"] }],
    outputs: [{ name: "y", type: "int64", shape: [1] }],
    nodes: [
      { op: "Add", inputs: ["x", "bias"], outputs: ["s"] },
      { op: "ArgMax", inputs: ["s"], outputs: ["y"], attributes: { axis: attr.int(1) } },
    ],
    initializers: [floatTensor("bias", [3], [0.5, -1, 2]), int64Tensor("unused", [2], [7, -3])],
    opset: 13,
  });
  const m = onnx.ModelProto.decode(bytes);
  assertEquals(Number(m.irVersion), 8);
  assertEquals(Number(m.opsetImport[0].version), 13);
  const g = m.graph as onnxProto.onnx.GraphProto;
  assertEquals(g.node.map((n) => n.opType), ["Add", "ArgMax"]);
  assertEquals(g.node.map((n) => n.name), ["Add_0", "ArgMax_1"]);
  assertEquals(Number(g.node[1].attribute?.[0].i), 1);
  assertEquals(
    g.input[0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue)),
    [
      1,
      "n",
    ],
  );
  const bias = g.initializer[0];
  assertEquals(bias.dataType, onnx.TensorProto.DataType.FLOAT);
  assertEquals(Array.from(new Float32Array(bytesOf(bias))), [0.5, -1, 2]);
  const unused = g.initializer[1];
  assertEquals(Array.from(new BigInt64Array(bytesOf(unused))), [7n, -3n]);
});

Deno.test("floatTensor rejects a value count that does not match the dims", () => {
  assertThrows(() => floatTensor("w", [2, 3], [1, 2, 3]), "hold 6 values, got 3");
});

Deno.test("onnxruntime-web runs a built model: Gather then MatMul", async () => {
  const { createOrtSession, ort } = await import("../tokenizers/ort.ts");
  const bytes = buildModel({
    inputs: [{ name: "ids", type: "int64", shape: ["n"] }],
    outputs: [{ name: "y", type: "float32", shape: ["n", 2] }],
    nodes: [
      {
        op: "Gather",
        inputs: ["table", "ids"],
        outputs: ["rows"],
        attributes: { axis: attr.int(0) },
      },
      { op: "MatMul", inputs: ["rows", "w"], outputs: ["y"] },
    ],
    // table [3, 2], w [2, 2]
    initializers: [
      floatTensor("table", [3, 2], [1, 2, 3, 4, 5, 6]),
      floatTensor("w", [2, 2], [
        1,
        0,
        1,
        -1,
      ]),
    ],
  });
  const session = await createOrtSession(bytes);
  try {
    const o = await ort();
    const out = await session.run({ ids: new o.Tensor("int64", new BigInt64Array([2n, 0n]), [2]) });
    assertEquals(out.y.dims, [2, 2]);
    // row 2 = [5, 6] -> [5 + 6, -6]; row 0 = [1, 2] -> [3, -2]
    assertEquals(Array.from(out.y.data as Float32Array), [11, -6, 3, -2]);
  } finally {
    await session.release();
  }
});
