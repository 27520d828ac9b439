import onnxProto from "onnx-proto";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { OnnxGraph } from "./graph.ts";
import { floatTensor } from "./mod.ts";

const { onnx } = onnxProto;

Deno.test("OnnxGraph: each op returns its output name; nodes and initializers come out in order", () => {
  const g = new OnnxGraph();
  const x = g.declare("x");
  const w = g.initializer(floatTensor("w", [2, 2], [1, 0, 0, 1]));
  const y = g.op("MatMul", [x, w]);
  const z = g.op("Add", [y, g.floats([], [1])], { output: "z" });
  assertEquals([y, z], ["MatMul_0", "z"]);
  const bytes = g.build({
    inputs: [{ name: x, type: "float32", shape: ["n", 2] }],
    outputs: [{ name: z, type: "float32", shape: ["n", 2] }],
  });
  const graph = onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;
  assertEquals(graph.node.map((n) => [n.opType, n.name, n.input, n.output]), [
    ["MatMul", "MatMul_0", ["x", "w"], ["MatMul_0"]],
    ["Add", "z", ["MatMul_0", "const_0"], ["z"]],
  ]);
  assertEquals(graph.initializer.map((t) => t.name), ["w", "const_0"]);
});

Deno.test("OnnxGraph: a name defined twice, or an output the graph does not define, is an error", () => {
  const g = new OnnxGraph();
  g.declare("x");
  assertThrows(() => g.op("Relu", ["x"], { output: "x" }), 'value "x" is defined twice');
  assertThrows(
    () =>
      g.build({
        inputs: [{ name: "x", type: "float32", shape: [1] }],
        outputs: [{ name: "y", type: "float32", shape: [1] }],
      }),
    'output "y" is not defined',
  );
});

Deno.test("OnnxGraph: generated names skip names already taken", () => {
  const g = new OnnxGraph();
  g.declare("Relu_0");
  assertEquals(g.op("Relu", ["a"]), "Relu_1");
  assertEquals(g.opN("Split", ["a"], 2, { output: "parts" }), ["parts_0", "parts_1"]);
});
