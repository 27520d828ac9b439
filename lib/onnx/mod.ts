/**
 * A minimal ONNX model builder over `onnx-proto` (the ONNX protobuf schema,
 * IR version 8). It writes a `ModelProto` from plain descriptions of the
 * graph's inputs, outputs, nodes and initializers, so tests can build small
 * models in code and the export job can write SamOut's graph without Python.
 *
 * ```ts
 * const bytes = buildModel({
 *   inputs: [{ name: "x", type: "float32", shape: [1, "n"] }],
 *   outputs: [{ name: "y", type: "float32", shape: [1, "n"] }],
 *   nodes: [{ op: "Add", inputs: ["x", "one"], outputs: ["y"] }],
 *   initializers: [floatTensor("one", [1], [1])],
 * });
 * ```
 *
 * Tensors are stored as little-endian `raw_data`, whatever the host order.
 * For graphs of more than a few nodes, {@link OnnxGraph} (`graph.ts`) adds
 * nodes one call at a time and names their outputs.
 *
 * @module
 */
import onnxProto from "onnx-proto";

export { OnnxGraph, type OpOptions } from "./graph.ts";

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

/** Element types the builder writes (the ONNX names in brackets). */
export type OnnxElementType = "float32" | "int64" | "int32" | "bool";

/** One graph input or output: a name, an element type and a shape (numbers, or names for symbolic dimensions). */
export interface OnnxValueInfo {
  name: string;
  type: OnnxElementType;
  /** e.g. `[1, "samples"]`; a string is a symbolic (dynamic) dimension. */
  shape: (number | string)[];
}

/** A constant tensor (an initializer or a tensor attribute). Build with {@link floatTensor} and friends. */
export interface OnnxTensor {
  name: string;
  type: OnnxElementType;
  dims: number[];
  /** The values, little-endian, row-major. */
  rawData: Uint8Array;
}

/** A node attribute, tagged by its ONNX kind. Build with {@link attr}. */
export type OnnxAttribute =
  | { kind: "int"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "float"; value: number }
  | { kind: "floats"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: OnnxTensor };

/** One operator node. `op` is the ONNX operator type (`MatMul`, `Gather`…), in the default domain unless `domain` is set. */
export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Node name; defaults to `<op>_<index>`. */
  name?: string;
  attributes?: Record<string, OnnxAttribute>;
  domain?: string;
}

/** Everything {@link buildModel} needs. */
export interface OnnxModelSpec {
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** In topological order (ONNX requires it). */
  nodes: OnnxNode[];
  initializers?: OnnxTensor[];
  /** Default-domain opset version; 17 (LayerNormalization needs it) unless set. */
  opset?: number;
  /** Graph name, default "main". */
  graphName?: string;
  /** Written to the model's `producer_name`; default "samout". */
  producer?: string;
  /** Free text stored as the model's `doc_string`. */
  doc?: string;
}

/** Attribute constructors: `attr.int(1)`, `attr.ints([0, 2])`, `attr.float(1e-5)`… */
export const attr = {
  /** A 64-bit integer attribute (e.g. `axis`). */
  int: (value: number): OnnxAttribute => ({ kind: "int", value }),
  /** A list of 64-bit integers (e.g. `perm`). */
  ints: (value: number[]): OnnxAttribute => ({ kind: "ints", value }),
  /** A float attribute (e.g. `epsilon`). */
  float: (value: number): OnnxAttribute => ({ kind: "float", value }),
  /** A list of floats. */
  floats: (value: number[]): OnnxAttribute => ({ kind: "floats", value }),
  /** A UTF-8 string attribute. */
  string: (value: string): OnnxAttribute => ({ kind: "string", value }),
  /** A tensor attribute (e.g. `Constant`'s `value`). */
  tensor: (value: OnnxTensor): OnnxAttribute => ({ kind: "tensor", value }),
};

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkCount(name: string, dims: number[], n: number): void {
  if (elementCount(dims) !== n) {
    throw new RangeError(
      `tensor "${name}": dims [${dims.join(", ")}] hold ${elementCount(dims)} values, got ${n}`,
    );
  }
}

/** A float32 tensor `[...dims]` from row-major values. */
export function floatTensor(
  name: string,
  dims: number[],
  values: ArrayLike<number>,
): OnnxTensor {
  checkCount(name, dims, values.length);
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return { name, type: "float32", dims, rawData: raw };
}

/** An int64 tensor `[...dims]` (values must be safe integers or bigints). */
export function int64Tensor(
  name: string,
  dims: number[],
  values: ArrayLike<number | bigint>,
): OnnxTensor {
  checkCount(name, dims, values.length);
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]), true);
  return { name, type: "int64", dims, rawData: raw };
}

/** An int32 tensor `[...dims]`. */
export function int32Tensor(name: string, dims: number[], values: ArrayLike<number>): OnnxTensor {
  checkCount(name, dims, values.length);
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i], true);
  return { name, type: "int32", dims, rawData: raw };
}

function dataType(type: OnnxElementType): number {
  switch (type) {
    case "float32":
      return DataType.FLOAT;
    case "int64":
      return DataType.INT64;
    case "int32":
      return DataType.INT32;
    case "bool":
      return DataType.BOOL;
  }
}

function tensorProto(t: OnnxTensor): onnxProto.onnx.ITensorProto {
  return { name: t.name, dims: t.dims, dataType: dataType(t.type), rawData: t.rawData };
}

function valueInfo(v: OnnxValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: dataType(v.type),
        shape: {
          dim: v.shape.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
        },
      },
    },
  };
}

function attributeProto(name: string, a: OnnxAttribute): onnxProto.onnx.IAttributeProto {
  switch (a.kind) {
    case "int":
      return { name, type: AttributeType.INT, i: a.value };
    case "ints":
      return { name, type: AttributeType.INTS, ints: a.value };
    case "float":
      return { name, type: AttributeType.FLOAT, f: a.value };
    case "floats":
      return { name, type: AttributeType.FLOATS, floats: a.value };
    case "string":
      return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.value) };
    case "tensor":
      return { name, type: AttributeType.TENSOR, t: tensorProto(a.value) };
  }
}

/** Serialises a model (ONNX IR version 8) to the bytes of a `.onnx` file. */
export function buildModel(spec: OnnxModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: spec.producer ?? "samout",
    docString: spec.doc ?? "",
    opsetImport: [{ domain: "", version: spec.opset ?? 17 }],
    graph: {
      name: spec.graphName ?? "main",
      node: spec.nodes.map((n, i) => ({
        opType: n.op,
        domain: n.domain ?? "",
        name: n.name ?? `${n.op}_${i}`,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attributes ?? {}).map(([k, a]) => attributeProto(k, a)),
      })),
      initializer: (spec.initializers ?? []).map(tensorProto),
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
