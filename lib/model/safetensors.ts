/**
 * safetensors checkpoints: an 8-byte little-endian header length, a JSON header
 * (`{name: {dtype, shape, data_offsets}}` plus `__metadata__`), then the raw
 * tensor bytes. SamOut checkpoints are F32 with the sizes in `__metadata__`
 * (SAMOUT.md), so a PyTorch user can `load_state_dict` them.
 *
 * @module
 */
import { type SamOutConfig, validateConfig } from "./config.ts";
import { parameterTable, shapeSize } from "./params.ts";
import { UserError } from "../errors/mod.ts";

/** A tensor to write: F32 data with its shape (`[]` for a scalar). */
export interface TensorToWrite {
  /** Tensor name, e.g. `head.weight`. */
  name: string;
  /** Shape, `[]` for a scalar. */
  shape: readonly number[];
  /** Row-major values, stored as F32. */
  data: ArrayLike<number>;
}

/** A tensor read back; `data` is converted to f32 whatever the stored dtype. */
export interface ReadTensor {
  /** Shape, `[]` for a scalar. */
  shape: number[];
  /** The stored dtype (`F32`, or `F64`/`F16`/`BF16`, converted to f32 on read). */
  dtype: string;
  /** Row-major values. */
  data: Float32Array;
}

/** The dtypes {@link readSafetensors} accepts, with their byte sizes. */
const DTYPE_BYTES: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** Typed arrays share the file's byte order, so F32 data can be copied as bytes. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Header entries larger than this are refused (a corrupt length would allocate gigabytes). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Serialises F32 tensors: header keys `__metadata__` first, then tensors sorted
 * by name (data in the same order), header padded with spaces to a multiple of
 * 8 bytes, data little-endian.
 */
export function writeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (i > 0 && sorted[i - 1].name === t.name) {
      throw new RangeError(`writeSafetensors: tensor ${t.name} appears twice`);
    }
    if (t.name === "__metadata__") throw new RangeError("writeSafetensors: reserved name");
    const size = shapeSize(t.shape);
    if (size !== t.data.length) {
      throw new RangeError(
        `writeSafetensors: tensor ${t.name} has ${t.data.length} values for shape [${t.shape}]`,
      );
    }
    header[t.name] = {
      dtype: "F32",
      shape: [...t.shape],
      data_offsets: [offset, offset + 4 * size],
    };
    offset += 4 * size;
  }
  let json = JSON.stringify(header);
  const encoded = new TextEncoder().encode(json);
  const pad = (8 - (encoded.length % 8)) % 8;
  json += " ".repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let p = 8 + headerBytes.length;
  for (const t of sorted) {
    if (LITTLE_ENDIAN) {
      const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
      out.set(new Uint8Array(f.buffer, f.byteOffset, f.byteLength), p);
      p += f.byteLength;
    } else {
      for (let i = 0; i < t.data.length; i++, p += 4) view.setFloat32(p, t.data[i], true);
    }
  }
  return out;
}

/**
 * Parses a safetensors file. Every problem (short file, bad header JSON,
 * unsupported dtype, offsets outside the data, size not matching the shape) is
 * a `UserError` naming `file` and, where there is one, the tensor (`field`).
 */
export function readSafetensors(
  bytes: Uint8Array,
  { file }: { file: string },
): { tensors: Map<string, ReadTensor>; metadata: Record<string, string> } {
  const fail = (message: string, extra: { field?: string; expected?: string; found?: string }) =>
    new UserError(message, { file, ...extra });
  if (bytes.length < 8) {
    throw fail("not a safetensors file: too short for the header length", {
      expected: "at least 8 bytes",
      found: `${bytes.length} bytes`,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(bytes.length - 8, MAX_HEADER_BYTES))) {
    throw fail("safetensors header length runs past the end of the file (truncated?)", {
      expected: `at most ${bytes.length - 8} header bytes`,
      found: `${headerLength} bytes`,
    });
  }
  const hl = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + hl)),
    );
  } catch (e) {
    throw fail("safetensors header is not valid JSON", {
      expected: "a UTF-8 JSON object",
      found: e instanceof Error ? e.message : String(e),
    });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail("safetensors header is not a JSON object", { found: typeof header });
  }
  const dataStart = 8 + hl;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, ReadTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        throw fail("safetensors __metadata__ is not an object", { field: name });
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") {
          throw fail(`safetensors metadata ${k} is not a string`, {
            field: `__metadata__.${k}`,
            found: JSON.stringify(v),
          });
        }
        metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) {
      throw fail(`tensor ${name}: header entry is not an object`, { field: name });
    }
    const bytesPer = typeof e.dtype === "string" ? DTYPE_BYTES[e.dtype] : undefined;
    if (bytesPer === undefined) {
      throw fail(`tensor ${name}: unsupported dtype`, {
        field: name,
        expected: `one of ${Object.keys(DTYPE_BYTES).join(", ")}`,
        found: JSON.stringify(e.dtype),
      });
    }
    const dtype = e.dtype as string;
    if (
      !Array.isArray(e.shape) ||
      !e.shape.every((s) => typeof s === "number" && Number.isInteger(s) && s >= 0)
    ) {
      throw fail(`tensor ${name}: bad shape`, {
        field: name,
        expected: "an array of non-negative integers",
        found: JSON.stringify(e.shape),
      });
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => typeof o === "number" && Number.isInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    ) {
      throw fail(`tensor ${name}: bad data_offsets`, {
        field: name,
        expected: "[begin, end] with 0 <= begin <= end",
        found: JSON.stringify(offs),
      });
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLength) {
      throw fail(`tensor ${name}: data runs past the end of the file (truncated?)`, {
        field: name,
        expected: `data_offsets within the ${dataLength} data bytes`,
        found: `[${begin}, ${end}]`,
      });
    }
    const count = shapeSize(shape);
    if (end - begin !== count * bytesPer) {
      throw fail(`tensor ${name}: byte size does not match its shape`, {
        field: name,
        expected: `${count * bytesPer} bytes for ${dtype}[${shape}]`,
        found: `${end - begin} bytes`,
      });
    }
    const at = dataStart + begin;
    const data = dtype === "F32" && LITTLE_ENDIAN
      ? new Float32Array(bytes.slice(at, at + 4 * count).buffer)
      : decode(view, at, count, dtype);
    tensors.set(name, { shape, dtype, data });
  }
  return { tensors, metadata };
}

function decode(view: DataView, at: number, count: number, dtype: string): Float32Array {
  const out = new Float32Array(count);
  switch (dtype) {
    case "F32":
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(at + 4 * i, true);
      break;
    case "F64":
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(at + 8 * i, true);
      break;
    case "BF16": {
      const tmp = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) {
        tmp.setUint32(0, view.getUint16(at + 2 * i, true) << 16, true);
        out[i] = tmp.getFloat32(0, true);
      }
      break;
    }
    case "F16":
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(at + 2 * i, true));
      break;
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The `__metadata__` SAMOUT.md asks of a SamOut checkpoint: the sizes as strings. */
export function samoutMetadata(cfg: SamOutConfig): Record<string, string> {
  return {
    voc_size: String(cfg.vocabSize),
    hidden_size: String(cfg.hidden),
    num_heads: String(cfg.heads),
    num_layers: String(cfg.layers),
    max_positions: String(cfg.maxPositions),
  };
}

/**
 * The model config a checkpoint describes: `V, d` from `em.weight`, `P` from
 * `pos.weight`, `L` from the `down.{l}.weight` tensors, `H` from the metadata's
 * `num_heads` or else `opts.heads`. Sizes in the metadata must agree with the
 * shapes, and every tensor of the parameter table must be present with its
 * shape. Errors are `UserError`s naming `opts.file` and the tensor. A head
 * count given in `opts.heads` must divide `d` and, when the metadata has
 * `num_heads`, agree with it; `opts.headsOption` names where it came from
 * (e.g. `--heads`) in those errors and in the hint when neither says.
 */
export function configFromSafetensors(
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  metadata: Record<string, string>,
  opts: { heads?: number; file?: string; headsOption?: string } = {},
): SamOutConfig {
  const file = opts.file;
  const shapeOf = (name: string, rank: number): readonly number[] => {
    const t = tensors.get(name);
    if (!t) {
      throw new UserError(`checkpoint has no tensor ${name}`, {
        file,
        field: name,
        hint: "is this a SamOut checkpoint?",
      });
    }
    if (t.shape.length !== rank) {
      throw new UserError(`tensor ${name} has the wrong rank`, {
        file,
        field: name,
        expected: `${rank} dimensions`,
        found: `[${t.shape}]`,
      });
    }
    return t.shape;
  };
  const [V, d] = shapeOf("em.weight", 2);
  const [P] = shapeOf("pos.weight", 2);
  let L = 0;
  while (tensors.has(`down.${L}.weight`)) L++;
  const metaInt = (key: string): number | undefined => {
    const text = metadata[key];
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
      throw new UserError(`checkpoint metadata ${key} is not an integer`, {
        file,
        field: `__metadata__.${key}`,
        found: JSON.stringify(text),
      });
    }
    return n;
  };
  const fromShapes: Record<string, number> = {
    voc_size: V,
    hidden_size: d,
    num_layers: L,
    max_positions: P,
  };
  for (const [key, value] of Object.entries(fromShapes)) {
    const meta = metaInt(key);
    if (meta !== undefined && meta !== value) {
      throw new UserError(`checkpoint metadata ${key} disagrees with the tensor shapes`, {
        file,
        field: `__metadata__.${key}`,
        expected: String(value),
        found: String(meta),
      });
    }
  }
  const given = opts.headsOption ?? "the head count given";
  const metaHeads = metaInt("num_heads");
  if (opts.heads !== undefined && metaHeads !== undefined && opts.heads !== metaHeads) {
    throw new UserError(`${given} disagrees with the checkpoint's num_heads`, {
      file,
      field: opts.headsOption ?? "__metadata__.num_heads",
      expected: `${metaHeads} (the checkpoint's num_heads), or no head count at all`,
      found: String(opts.heads),
    });
  }
  if (opts.heads !== undefined && (opts.heads < 1 || d % opts.heads !== 0)) {
    throw new UserError(`${given} does not divide the hidden size`, {
      file,
      field: opts.headsOption ?? "heads",
      expected: `a divisor of hidden = ${d}`,
      found: String(opts.heads),
    });
  }
  const heads = metaHeads ?? opts.heads;
  if (heads === undefined) {
    throw new UserError("checkpoint does not say its head count", {
      file,
      field: "__metadata__.num_heads",
      hint: opts.headsOption
        ? `pass ${opts.headsOption} N, the head count it was trained with (a divisor of hidden = ${d}; it sets the sqrt(d / heads) scale)`
        : "pass the head count explicitly (it sets the sqrt(d / heads) scale)",
    });
  }
  const cfg = validateConfig(
    { vocabSize: V, hidden: d, heads, layers: L, maxPositions: P },
    { file },
  );
  for (const spec of parameterTable(cfg)) {
    const t = tensors.get(spec.name);
    if (!t) {
      throw new UserError(`checkpoint has no tensor ${spec.name}`, {
        file,
        field: spec.name,
        expected: `shape [${spec.shape}]`,
      });
    }
    if (t.shape.length !== spec.shape.length || t.shape.some((s, i) => s !== spec.shape[i])) {
      throw new UserError(`tensor ${spec.name} has the wrong shape`, {
        file,
        field: spec.name,
        expected: `[${spec.shape}]`,
        found: `[${t.shape}]`,
      });
    }
  }
  return cfg;
}

/** Writes a SamOut weight map (canonical order, any f32/f64 arrays) as F32 safetensors bytes. */
export function samoutToSafetensors(
  cfg: SamOutConfig,
  params: ReadonlyMap<string, ArrayLike<number>>,
): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const spec of parameterTable(cfg)) {
    const data = params.get(spec.name);
    if (!data) throw new RangeError(`samoutToSafetensors: tensor ${spec.name} missing`);
    tensors.push({ name: spec.name, shape: spec.shape, data });
  }
  return writeSafetensors(tensors, samoutMetadata(cfg));
}

/**
 * Reads a SamOut checkpoint: its config ({@link configFromSafetensors}) and its
 * weights in canonical order (extra tensors are ignored).
 */
export function samoutFromSafetensors(
  bytes: Uint8Array,
  opts: { file: string; heads?: number },
): { cfg: SamOutConfig; params: Map<string, Float32Array>; metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensors(bytes, { file: opts.file });
  const cfg = configFromSafetensors(tensors, metadata, opts);
  const params = new Map<string, Float32Array>();
  for (const spec of parameterTable(cfg)) params.set(spec.name, tensors.get(spec.name)!.data);
  return { cfg, params, metadata };
}
