/**
 * An incremental ONNX graph builder over {@link buildModel}: each call adds
 * one node and returns the name of its output, so a model reads top to
 * bottom like the maths it computes:
 *
 * ```ts
 * const g = new OnnxGraph();
 * const w = g.initializer(floatTensor("w", [3, 2], [1, 2, 3, 4, 5, 6]));
 * const y = g.op("MatMul", ["x", w], { output: "y" });
 * const bytes = g.build({
 *   inputs: [{ name: "x", type: "float32", shape: ["n", 3] }],
 *   outputs: [{ name: y, type: "float32", shape: ["n", 2] }],
 * });
 * ```
 *
 * Value names are unique: an explicit name that is already taken is an
 * error, and generated names are `<op>_<n>`. Constants made with
 * {@link OnnxGraph.floats} and {@link OnnxGraph.int64s} are initializers.
 *
 * @module
 */
import {
  buildModel,
  floatTensor,
  int64Tensor,
  type OnnxAttribute,
  type OnnxModelSpec,
  type OnnxNode,
  type OnnxTensor,
} from "./mod.ts";

/** Options of {@link OnnxGraph.op}. */
export interface OpOptions {
  /** Name of the output value (and of the node); generated when absent. */
  output?: string;
  attributes?: Record<string, OnnxAttribute>;
  domain?: string;
}

/** Builds one graph node by node (see the module doc). */
export class OnnxGraph {
  readonly #nodes: OnnxNode[] = [];
  readonly #initializers: OnnxTensor[] = [];
  readonly #names = new Set<string>();
  readonly #counters = new Map<string, number>();

  /** The nodes added so far, in order. */
  get nodes(): readonly OnnxNode[] {
    return this.#nodes;
  }

  /** The initializers added so far, in order. */
  get initializers(): readonly OnnxTensor[] {
    return this.#initializers;
  }

  /** Reserves a value name: a graph input, or a name chosen by the caller. */
  declare(name: string): string {
    if (this.#names.has(name)) throw new RangeError(`OnnxGraph: value "${name}" is defined twice`);
    this.#names.add(name);
    return name;
  }

  /** A fresh name `<base>_<n>` that is not taken yet. */
  fresh(base: string): string {
    let n = this.#counters.get(base) ?? 0;
    let name: string;
    do name = `${base}_${n++}`; while (this.#names.has(name));
    this.#counters.set(base, n);
    return name;
  }

  /** Adds a constant tensor (weights); returns its name. */
  initializer(tensor: OnnxTensor): string {
    this.declare(tensor.name);
    this.#initializers.push(tensor);
    return tensor.name;
  }

  /** A float32 constant `[...dims]` (a scalar for `dims = []`). */
  floats(dims: number[], values: ArrayLike<number>, name?: string): string {
    return this.initializer(floatTensor(name ?? this.fresh("const"), dims, values));
  }

  /** A 1-D int64 constant (axes, pads, slice bounds…). */
  int64s(values: readonly number[], name?: string): string {
    return this.initializer(int64Tensor(name ?? this.fresh("const"), [values.length], values));
  }

  /** A 0-D int64 constant (a scalar index). */
  int64Scalar(value: number, name?: string): string {
    return this.initializer(int64Tensor(name ?? this.fresh("const"), [], [value]));
  }

  /** Adds a node with one output; returns the output's name. */
  op(op: string, inputs: string[], options: OpOptions = {}): string {
    return this.opN(op, inputs, 1, options)[0];
  }

  /** Adds a node with `outputs` outputs (named `<output>_<i>` when `output` is set). */
  opN(op: string, inputs: string[], outputs: number, options: OpOptions = {}): string[] {
    const base = options.output;
    const names: string[] = [];
    for (let i = 0; i < outputs; i++) {
      if (base === undefined) names.push(this.declare(this.fresh(op)));
      else names.push(this.declare(outputs === 1 ? base : `${base}_${i}`));
    }
    this.#nodes.push({
      op,
      inputs,
      outputs: names,
      name: base ?? names[0],
      attributes: options.attributes,
      domain: options.domain,
    });
    return names;
  }

  /** Serialises the graph; `outputs` must name values the graph defines. */
  build(spec: Omit<OnnxModelSpec, "nodes" | "initializers">): Uint8Array {
    for (const o of spec.outputs) {
      if (!this.#names.has(o.name)) {
        throw new RangeError(`OnnxGraph: output "${o.name}" is not defined by the graph`);
      }
    }
    return buildModel({ ...spec, nodes: [...this.#nodes], initializers: [...this.#initializers] });
  }
}
