/**
 * The onnx-codec tokenizer: the user's own neural audio codec (for example a
 * WavTokenizer encoder and decoder with 4096 codes) exported to ONNX and run
 * with onnxruntime-web's wasm backend (see `ort.ts` for how it is set up
 * under Deno).
 *
 * Model contract (names configurable in {@link OnnxCodecSettings}):
 * - encoder: input `audio` `[1, samples]` (or `[1, 1, samples]`) f32 at
 *   `sample_rate` → output `codes` `[1, frames]` (any shape whose leading
 *   dimensions are 1) int64 or int32, one code per `hop_length` samples;
 * - decoder: input `codes` `[1, frames]` (or `[1, 1, frames]`) int64 or
 *   int32 → output `audio` f32 with leading dimensions 1.
 *
 * The input and output names, element types and ranks are checked when the
 * models load; every code is checked against `[0, codebook_size)` on the way
 * out of the encoder and into the decoder.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../errors/mod.ts";
import type { Ort, OrtSession, OrtTensor } from "./ort.ts";

/** Settings of an onnx-codec tokenizer (a `tokenizer.json` section or pipeline parameters). */
export const OnnxCodecSettings = z.object({
  /** Path of the encoder `.onnx` file (relative paths resolve against the `baseDir` given to `load`). */
  encoder: z.string().min(1),
  /** Path of the decoder `.onnx` file; needed only to turn codes back into audio. */
  decoder: z.string().min(1).optional(),
  /** Sample rate in Hz the models work at. */
  sample_rate: z.number().int().min(1).max(192000),
  /** Samples per code. */
  hop_length: z.number().int().min(1),
  /** Number of distinct codes: codes are in `[0, codebook_size)`. */
  codebook_size: z.number().int().min(2).max(1 << 24),
  /** Encoder input tensor name. */
  encoder_input: z.string().min(1).default("audio"),
  /** Encoder output tensor name. */
  encoder_output: z.string().min(1).default("codes"),
  /** Decoder input tensor name. */
  decoder_input: z.string().min(1).default("codes"),
  /** Decoder output tensor name. */
  decoder_output: z.string().min(1).default("audio"),
}).strict();

/** Parsed {@link OnnxCodecSettings} (defaults applied). */
export type OnnxCodecSettings = z.output<typeof OnnxCodecSettings>;

/** Where settings came from, for messages and relative paths. */
export interface OnnxCodecLoadOptions {
  /** The file the settings were read from (a pipeline file, `tokenizer.json`), named in errors. */
  file?: string;
  /** Directory that relative model paths resolve against (default: the working directory). */
  baseDir?: string;
  /** Prefix of field paths in errors, e.g. `steps.tokenize.params.onnx.` (default none). */
  fieldPrefix?: string;
}

type CodeType = "int64" | "int32";

interface CheckedIo {
  /** Rank of the model input (2 or 3). */
  inputRank: number;
  /** Element type of the codes tensor (decoder input or encoder output). */
  codeType: CodeType;
}

/** Encodes audio to codes and back with an ONNX neural codec. */
export class OnnxCodecTokenizer {
  #ort: Ort;
  #encoder: OrtSession;
  #decoder: OrtSession | undefined;
  #encoderIo: CheckedIo;
  #decoderIo: CheckedIo | undefined;
  #paths: { encoder: string; decoder?: string };
  #fieldPrefix: string;

  private constructor(
    readonly settings: OnnxCodecSettings,
    parts: {
      ort: Ort;
      encoder: OrtSession;
      decoder?: OrtSession;
      encoderIo: CheckedIo;
      decoderIo?: CheckedIo;
      paths: { encoder: string; decoder?: string };
      fieldPrefix: string;
    },
  ) {
    this.#ort = parts.ort;
    this.#encoder = parts.encoder;
    this.#decoder = parts.decoder;
    this.#encoderIo = parts.encoderIo;
    this.#decoderIo = parts.decoderIo;
    this.#paths = parts.paths;
    this.#fieldPrefix = parts.fieldPrefix;
  }

  /**
   * Validates the settings, loads the encoder (and decoder, if set) and checks
   * their input/output names, element types and ranks. Throws `UserError`s
   * naming the model file and the settings field at fault.
   *
   * @param settings raw or parsed settings (parsed here with {@link OnnxCodecSettings})
   */
  static async load(
    settings: unknown,
    opts: OnnxCodecLoadOptions = {},
  ): Promise<OnnxCodecTokenizer> {
    const prefix = opts.fieldPrefix ?? "";
    const parsed = OnnxCodecSettings.safeParse(settings);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
      throw new UserError(`invalid onnx-codec settings: ${issue.message}`, {
        file: opts.file,
        field: prefix + path.join("."),
        expected: "encoder (path), sample_rate, hop_length, codebook_size; optional decoder and " +
          "encoder_input/encoder_output/decoder_input/decoder_output tensor names",
      });
    }
    const s = parsed.data;
    const at = (p: string) => isAbsolute(p) ? p : resolve(opts.baseDir ?? Deno.cwd(), p);
    const paths = { encoder: at(s.encoder), decoder: s.decoder ? at(s.decoder) : undefined };
    const { ort, createOrtSession } = await import("./ort.ts");
    const o = await ort();
    const encoder = await openModel(paths.encoder, `${prefix}encoder`, opts.file, createOrtSession);
    let decoder: OrtSession | undefined;
    try {
      const encoderIo = checkIo(encoder, paths.encoder, {
        input: s.encoder_input,
        inputField: `${prefix}encoder_input`,
        inputTypes: ["float32"],
        output: s.encoder_output,
        outputField: `${prefix}encoder_output`,
        outputTypes: ["int64", "int32"],
      });
      let decoderIo: CheckedIo | undefined;
      if (paths.decoder) {
        decoder = await openModel(paths.decoder, `${prefix}decoder`, opts.file, createOrtSession);
        decoderIo = checkIo(decoder, paths.decoder, {
          input: s.decoder_input,
          inputField: `${prefix}decoder_input`,
          inputTypes: ["int64", "int32"],
          output: s.decoder_output,
          outputField: `${prefix}decoder_output`,
          outputTypes: ["float32"],
        });
      }
      return new OnnxCodecTokenizer(s, {
        ort: o,
        encoder,
        decoder,
        encoderIo,
        decoderIo,
        paths,
        fieldPrefix: prefix,
      });
    } catch (e) {
      await encoder.release();
      await decoder?.release();
      throw e;
    }
  }

  /** True when a decoder model is loaded. */
  get canDecode(): boolean {
    return this.#decoder !== undefined;
  }

  /**
   * Audio → codes. The samples are zero-padded to a whole number of hops
   * before they go in, so a codec that frames by reshaping sees whole frames.
   *
   * @param samples `[n]` f32 mono at `settings.sample_rate`
   * @returns `[frames]` codes, each in `[0, codebook_size)`
   */
  async encode(samples: Float32Array): Promise<Uint32Array> {
    const s = this.settings;
    const hop = s.hop_length;
    const padded = new Float32Array(Math.max(1, Math.ceil(samples.length / hop)) * hop);
    padded.set(samples);
    const dims = this.#encoderIo.inputRank === 3 ? [1, 1, padded.length] : [1, padded.length];
    const input = new this.#ort.Tensor("float32", padded, dims);
    const result = await this.#encoder.run({ [s.encoder_input]: input });
    const out = result[s.encoder_output];
    try {
      const file = this.#paths.encoder;
      const data = flatOutput(out, file, `${this.#fieldPrefix}encoder_output`);
      const codes = new Uint32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const c = Number(data[i]);
        if (!(c >= 0 && c < s.codebook_size)) {
          throw new UserError(
            `the encoder produced code ${c} at frame ${i}, outside the codebook`,
            {
              file,
              field: `${this.#fieldPrefix}codebook_size`,
              expected: `codes in [0, ${s.codebook_size}) (codebook_size ${s.codebook_size})`,
              found: String(c),
              hint: "set codebook_size to the codec's number of codes",
            },
          );
        }
        codes[i] = c;
      }
      return codes;
    } finally {
      out.dispose();
    }
  }

  /**
   * Codes → audio with the decoder model.
   *
   * @param codes `[frames]` codes in `[0, codebook_size)`
   * @returns `[samples]` f32 at `settings.sample_rate`
   */
  async decode(codes: Uint32Array): Promise<Float32Array> {
    const s = this.settings;
    if (!this.#decoder || !this.#decoderIo) {
      throw new UserError("this onnx-codec tokenizer has no decoder model", {
        field: `${this.#fieldPrefix}decoder`,
        expected: "the path of the codec's decoder .onnx file",
      });
    }
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] >= s.codebook_size) {
        throw new UserError(`code ${codes[i]} at position ${i} is outside the codebook`, {
          field: `codes[${i}]`,
          expected: `a code in [0, ${s.codebook_size})`,
          found: String(codes[i]),
        });
      }
    }
    const dims = this.#decoderIo.inputRank === 3 ? [1, 1, codes.length] : [1, codes.length];
    const input = this.#decoderIo.codeType === "int64"
      ? new this.#ort.Tensor("int64", BigInt64Array.from(codes, BigInt), dims)
      : new this.#ort.Tensor("int32", Int32Array.from(codes), dims);
    const result = await this.#decoder.run({ [s.decoder_input]: input });
    const out = result[s.decoder_output];
    try {
      const data = flatOutput(out, this.#paths.decoder!, `${this.#fieldPrefix}decoder_output`);
      return Float32Array.from(data as Float32Array);
    } finally {
      out.dispose();
    }
  }

  /** Releases both sessions. */
  async close(): Promise<void> {
    await this.#encoder.release();
    await this.#decoder?.release();
  }
}

async function openModel(
  path: string,
  field: string,
  settingsFile: string | undefined,
  create: (bytes: Uint8Array) => Promise<OrtSession>,
): Promise<OrtSession> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    throw new UserError(
      missing ? `the ${field} model file does not exist` : `cannot read the ${field} model file`,
      {
        file: path,
        field,
        expected: "a readable .onnx file",
        found: missing ? "no such file" : (e as Error).message,
        hint: settingsFile ? `the path is set in ${settingsFile}` : undefined,
      },
    );
  }
  try {
    return await create(bytes);
  } catch (e) {
    throw new UserError(`onnxruntime cannot load the ${field} model`, {
      file: path,
      field,
      expected: "a valid ONNX model that onnxruntime-web's wasm backend runs",
      found: String((e as Error).message ?? e).slice(0, 300),
    });
  }
}

interface IoSpec {
  input: string;
  inputField: string;
  inputTypes: string[];
  output: string;
  outputField: string;
  outputTypes: string[];
}

function checkIo(session: OrtSession, file: string, spec: IoSpec): CheckedIo {
  if (!session.inputNames.includes(spec.input)) {
    throw new UserError(`the model has no input named "${spec.input}"`, {
      file,
      field: spec.inputField,
      expected: `one of the model's inputs: ${session.inputNames.join(", ")}`,
      found: spec.input,
    });
  }
  if (!session.outputNames.includes(spec.output)) {
    throw new UserError(`the model has no output named "${spec.output}"`, {
      file,
      field: spec.outputField,
      expected: `one of the model's outputs: ${session.outputNames.join(", ")}`,
      found: spec.output,
    });
  }
  const inMeta = session.inputMetadata.find((m) => m.name === spec.input);
  const outMeta = session.outputMetadata.find((m) => m.name === spec.output);
  let inputRank = 2;
  if (inMeta?.isTensor) {
    if (!spec.inputTypes.includes(inMeta.type)) {
      throw new UserError(`the model's input "${spec.input}" has the wrong element type`, {
        file,
        field: spec.inputField,
        expected: spec.inputTypes.join(" or "),
        found: inMeta.type,
      });
    }
    const shape = inMeta.shape;
    const leadingOk = shape.slice(0, -1).every((d) => typeof d !== "number" || d === 1);
    if ((shape.length !== 2 && shape.length !== 3) || !leadingOk) {
      throw new UserError(`the model's input "${spec.input}" has the wrong shape`, {
        file,
        field: spec.inputField,
        expected: "[1, length] or [1, 1, length]",
        found: `[${shape.join(", ")}]`,
      });
    }
    inputRank = shape.length;
  }
  if (outMeta?.isTensor && !spec.outputTypes.includes(outMeta.type)) {
    throw new UserError(`the model's output "${spec.output}" has the wrong element type`, {
      file,
      field: spec.outputField,
      expected: spec.outputTypes.join(" or "),
      found: outMeta.type,
    });
  }
  const codeMeta = spec.inputTypes.includes("float32") ? outMeta : inMeta;
  const codeType = codeMeta?.isTensor && codeMeta.type === "int32" ? "int32" : "int64";
  return { inputRank, codeType };
}

/** The data of an output whose leading dimensions are all 1, as one flat array. */
function flatOutput(
  t: OrtTensor,
  file: string,
  field: string,
): ArrayLike<number | bigint> {
  if (t.dims.slice(0, -1).some((d) => d !== 1)) {
    throw new UserError("the model's output has more than one row", {
      file,
      field,
      expected: "a shape whose leading dimensions are 1, e.g. [1, frames]",
      found: `[${t.dims.join(", ")}]`,
    });
  }
  return t.data as ArrayLike<number | bigint>;
}
