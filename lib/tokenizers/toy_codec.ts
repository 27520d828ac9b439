/**
 * A tiny ONNX codec built in code with `lib/onnx`, for tests and demos of the
 * onnx-codec tokenizer (no model files to commit).
 *
 * - encoder: `audio [1, samples]` f32 → frames `[F, hop]` (Reshape) → `z =
 *   frames · P` `[F, dim]` → code = the nearest codebook row to `z`
 *   (`argmax_k 2 z·c_k - |c_k|²`) → `codes [1, F]` int64;
 * - decoder: `codes [1, F]` → codebook rows `[1, F, dim]` (Gather) → `· Q`
 *   `[1, F, hop]` → `audio [1, F · hop]` (Reshape).
 *
 * @module
 */
import { Random } from "../random/mod.ts";
import { attr, buildModel, floatTensor, int64Tensor, type OnnxNode } from "../onnx/mod.ts";

/** Sizes, seed and optional deliberate faults of {@link buildToyCodec}. */
export interface ToyCodecOptions {
  /** Samples per code. */
  hop: number;
  /** Width of the projected frame. */
  dim: number;
  /** Number of codebook rows. */
  codebookSize: number;
  /** Seed of the projection, codebook and synthesis weights. */
  seed: number;
  /** Encoder input name (default "audio"). */
  encoderInput?: string;
  /** Encoder output name (default "codes"). */
  encoderOutput?: string;
  /** Take the audio as `[1, 1, samples]` (as EnCodec-style exports do) instead of `[1, samples]`. */
  channelAxis?: boolean;
  /** Element type of the encoder's codes output (default "int64"; "float32" makes a faulty model). */
  codeType?: "int64" | "int32" | "float32";
}

/** The two model files and the weights they hold (for CPU references). */
export interface ToyCodec {
  encoder: Uint8Array;
  decoder: Uint8Array;
  /** `[hop, dim]` f32 analysis projection P. */
  projection: Float32Array;
  /** `[codebookSize, dim]` f32 codebook. */
  codebook: Float32Array;
  /** `[dim, hop]` f32 synthesis projection Q. */
  synthesis: Float32Array;
}

/** Builds the toy encoder and decoder (deterministic in `seed`). */
export function buildToyCodec(o: ToyCodecOptions): ToyCodec {
  const r = new Random(o.seed, "toy-codec");
  const projection = Float32Array.from({ length: o.hop * o.dim }, () => r.normal(0, 1));
  const codebook = Float32Array.from({ length: o.codebookSize * o.dim }, () => r.normal(0, 1));
  const synthesis = Float32Array.from({ length: o.dim * o.hop }, () => r.normal(0, 0.1));
  // 2·Cᵀ [dim, K] and |c_k|² [K]
  const twoCt = new Float32Array(o.dim * o.codebookSize);
  const norms = new Float32Array(o.codebookSize);
  for (let k = 0; k < o.codebookSize; k++) {
    for (let d = 0; d < o.dim; d++) {
      const c = codebook[k * o.dim + d];
      twoCt[d * o.codebookSize + k] = 2 * c;
      norms[k] += c * c;
    }
  }
  const input = o.encoderInput ?? "audio";
  const output = o.encoderOutput ?? "codes";
  const codeType = o.codeType ?? "int64";
  const nodes: OnnxNode[] = [
    { op: "Reshape", inputs: [input, "frame_shape"], outputs: ["frames"] },
    { op: "MatMul", inputs: ["frames", "projection"], outputs: ["z"] },
    { op: "MatMul", inputs: ["z", "two_codebook_t"], outputs: ["cross"] },
    { op: "Sub", inputs: ["cross", "codebook_norms"], outputs: ["scores"] },
    {
      op: "ArgMax",
      inputs: ["scores"],
      outputs: ["best"],
      attributes: { axis: attr.int(1), keepdims: attr.int(0) },
    },
  ];
  if (codeType === "int64") {
    nodes.push({ op: "Reshape", inputs: ["best", "row_shape"], outputs: [output] });
  } else {
    nodes.push({ op: "Reshape", inputs: ["best", "row_shape"], outputs: ["best_row"] });
    const to = codeType === "int32" ? 6 : 1; // ONNX TensorProto.DataType INT32 / FLOAT
    nodes.push({
      op: "Cast",
      inputs: ["best_row"],
      outputs: [output],
      attributes: { to: attr.int(to) },
    });
  }
  const encoder = buildModel({
    inputs: [{
      name: input,
      type: "float32",
      shape: o.channelAxis ? [1, 1, "samples"] : [1, "samples"],
    }],
    outputs: [{ name: output, type: codeType, shape: [1, "frames"] }],
    nodes,
    initializers: [
      int64Tensor("frame_shape", [2], [-1, o.hop]),
      int64Tensor("row_shape", [2], [1, -1]),
      floatTensor("projection", [o.hop, o.dim], projection),
      floatTensor("two_codebook_t", [o.dim, o.codebookSize], twoCt),
      floatTensor("codebook_norms", [o.codebookSize], norms),
    ],
    graphName: "toy_codec_encoder",
  });
  const decoder = buildModel({
    inputs: [{ name: "codes", type: "int64", shape: [1, "frames"] }],
    outputs: [{ name: "audio", type: "float32", shape: [1, "samples"] }],
    nodes: [
      {
        op: "Gather",
        inputs: ["codebook", "codes"],
        outputs: ["rows"],
        attributes: { axis: attr.int(0) },
      },
      { op: "MatMul", inputs: ["rows", "synthesis"], outputs: ["frames"] },
      { op: "Reshape", inputs: ["frames", "row_shape"], outputs: ["audio"] },
    ],
    initializers: [
      floatTensor("codebook", [o.codebookSize, o.dim], codebook),
      floatTensor("synthesis", [o.dim, o.hop], synthesis),
      int64Tensor("row_shape", [2], [1, -1]),
    ],
    graphName: "toy_codec_decoder",
  });
  return { encoder, decoder, projection, codebook, synthesis };
}
