/**
 * WAV (RIFF/WAVE) reading and writing: PCM 8/16/24/32-bit integer and 32/64-bit
 * IEEE float, any channel count, plain or WAVE_FORMAT_EXTENSIBLE headers.
 *
 * Integer samples map to floats by `v / 2^(bits-1)` both ways (8-bit is
 * unsigned, offset 128), so every integer code round-trips exactly and floats
 * outside [-1, 1) are clipped when written.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** How samples are stored in a WAV file. */
export interface WavFormat {
  /** Bits per sample: 8 (unsigned), 16, 24, 32 (signed); 32 with `float` for IEEE float. */
  bits: 8 | 16 | 24 | 32;
  /** IEEE float samples (only with `bits: 32`). */
  float?: boolean;
  /**
   * Write a WAVE_FORMAT_EXTENSIBLE header. Default: when there are more than 2
   * channels or more than 16 bits, as Microsoft's format notes recommend.
   */
  extensible?: boolean;
}

/** A decoded WAV file. */
export interface DecodedWav {
  /** Frames per second. */
  sampleRate: number;
  /** One array per channel, `[frames]` f32, integer PCM scaled to [-1, 1). */
  channels: Float32Array[];
  /** Container bits per sample (8, 16, 24, 32 or 64). */
  bits: number;
  /** True for IEEE float samples. */
  float: boolean;
}

/** The header fields of a WAV file that say where its samples are and how they are stored. */
export interface WavHeader {
  /** The `fmt ` format tag; for WAVE_FORMAT_EXTENSIBLE, the sub-format's tag (1 PCM, 3 float). */
  formatTag: number;
  /** True when the file used a WAVE_FORMAT_EXTENSIBLE (0xFFFE) header. */
  extensible: boolean;
  channels: number;
  sampleRate: number;
  /** Container bits per sample. */
  bits: number;
  /** Bytes per frame (all channels). */
  blockAlign: number;
  /** Byte offset of the first sample in the file. */
  dataOffset: number;
  /** Bytes of sample data (whole frames only; a trailing partial frame is dropped). */
  dataBytes: number;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of the KSDATAFORMAT_SUBTYPE_* GUIDs for PCM and float (bytes 0..1 are the tag). */
const SUBFORMAT_GUID_TAIL = Uint8Array.from(
  "000000001000800000aa00389b71".match(/../g)!,
  (hex) => parseInt(hex, 16),
);
const FORMAT_TAG_NAMES: Record<number, string> = {
  0x0002: "MS ADPCM",
  0x0006: "A-law",
  0x0007: "mu-law",
  0x0011: "IMA ADPCM",
  0x0055: "MPEG layer 3",
};

function fourCC(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(
    bytes[offset],
    bytes[offset + 1],
    bytes[offset + 2],
    bytes[offset + 3],
  );
}

function describeTag(tag: number): string {
  const hex = `0x${tag.toString(16).padStart(4, "0")}`;
  return FORMAT_TAG_NAMES[tag] ? `${hex} (${FORMAT_TAG_NAMES[tag]})` : hex;
}

/**
 * Reads and checks a WAV file's RIFF structure and `fmt ` chunk without decoding samples.
 * The format tag is not checked here (compressed WAV encodings parse fine), only the layout.
 *
 * @param bytes the whole file
 * @param file the file's path, for error messages
 * @throws UserError for a file that is not RIFF/WAVE, is truncated, or has a corrupt header
 */
export function parseWavHeader(bytes: Uint8Array, file?: string): WavHeader {
  const fail = (message: string, expected?: string, found?: string): never => {
    throw new UserError(message, { file, expected, found });
  };
  if (bytes.length < 12) {
    fail(
      `truncated WAV: the file is ${bytes.length} bytes, shorter than a RIFF/WAVE header`,
      "at least 12 bytes starting with RIFF....WAVE",
      `${bytes.length} bytes`,
    );
  }
  const riff = fourCC(bytes, 0);
  if (riff === "RIFX" || riff === "RF64") {
    fail(
      `unsupported WAV variant ${riff}`,
      "a little-endian RIFF/WAVE file",
      riff,
    );
  }
  if (riff !== "RIFF" || fourCC(bytes, 8) !== "WAVE") {
    fail(
      "not a WAV file: missing the RIFF/WAVE signature",
      "bytes 0-3 'RIFF' and 8-11 'WAVE'",
      JSON.stringify(fourCC(bytes, 0) + "...." + fourCC(bytes, 8)),
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: Omit<WavHeader, "dataOffset" | "dataBytes"> | undefined;
  let pos = 12;
  while (pos + 8 <= bytes.length) {
    const id = fourCC(bytes, pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === "fmt ") {
      if (size < 16) {
        fail(`corrupt WAV: the fmt chunk is ${size} bytes`, "a fmt chunk of at least 16 bytes");
      }
      if (body + size > bytes.length) {
        fail(
          `truncated WAV: the fmt chunk at byte ${pos} runs past the end of the file`,
          `${size} bytes of fmt chunk`,
          `${bytes.length - body} bytes`,
        );
      }
      let formatTag = view.getUint16(body, true);
      const channels = view.getUint16(body + 2, true);
      const sampleRate = view.getUint32(body + 4, true);
      const blockAlign = view.getUint16(body + 12, true);
      const bits = view.getUint16(body + 14, true);
      let extensible = false;
      if (formatTag === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) {
          fail(
            `corrupt WAV: WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes`,
            "a 40-byte fmt chunk with a sub-format GUID",
          );
        }
        extensible = true;
        formatTag = view.getUint16(body + 24, true);
        const tail = bytes.subarray(body + 26, body + 40);
        if (!SUBFORMAT_GUID_TAIL.every((b, i) => tail[i] === b)) {
          fail(
            "unsupported WAV: the WAVE_FORMAT_EXTENSIBLE sub-format is not a standard KSDATAFORMAT GUID",
            "the PCM or IEEE float sub-format GUID",
          );
        }
      }
      if (channels === 0) fail("corrupt WAV: the fmt chunk declares 0 channels", "1 or more");
      if (sampleRate === 0) fail("corrupt WAV: the fmt chunk declares a sample rate of 0", "> 0");
      if (formatTag === WAVE_FORMAT_PCM || formatTag === WAVE_FORMAT_IEEE_FLOAT) {
        const expectedAlign = channels * Math.ceil(bits / 8);
        if (bits === 0 || blockAlign !== expectedAlign) {
          fail(
            `corrupt WAV: block align ${blockAlign} does not match ${channels} channel(s) of ${bits} bits`,
            `block align ${expectedAlign}`,
            String(blockAlign),
          );
        }
      } else if (blockAlign === 0) {
        fail("corrupt WAV: the fmt chunk declares a block align of 0", "> 0");
      }
      fmt = { formatTag, extensible, channels, sampleRate, bits, blockAlign };
    } else if (id === "data") {
      if (!fmt) {
        fail("corrupt WAV: the data chunk comes before the fmt chunk", "a fmt chunk first");
      }
      const available = bytes.length - body;
      // 0xFFFFFFFF is the placeholder streaming writers leave when the length is unknown.
      const declared = size === 0xffffffff ? available : size;
      if (declared > available) {
        fail(
          `truncated WAV: the data chunk declares ${declared} bytes but only ${available} follow`,
          `${declared} bytes of samples`,
          `${available} bytes`,
        );
      }
      const align = fmt!.blockAlign;
      return {
        ...fmt!,
        dataOffset: body,
        dataBytes: Math.floor(declared / align) * align,
      };
    }
    if (body + size > bytes.length) {
      fail(
        `truncated WAV: the ${JSON.stringify(id)} chunk at byte ${pos} declares ${size} bytes ` +
          `but only ${bytes.length - body} follow, and no data chunk came before it`,
        "a data chunk holding the samples",
      );
    }
    pos = body + size + (size & 1);
  }
  if (!fmt) {
    return fail("corrupt WAV: no fmt chunk", "a fmt chunk describing the samples");
  }
  return fail("corrupt WAV: no data chunk", "a data chunk holding the samples");
}

/**
 * Decodes a PCM (8/16/24/32-bit integer) or IEEE float (32/64-bit) WAV file.
 *
 * @param bytes the whole file
 * @param file the file's path, for error messages
 * @throws UserError for truncated or corrupt files and for other encodings (A-law, ADPCM…)
 */
export function decodeWav(bytes: Uint8Array, file?: string): DecodedWav {
  const h = parseWavHeader(bytes, file);
  const isFloat = h.formatTag === WAVE_FORMAT_IEEE_FLOAT;
  if (h.formatTag !== WAVE_FORMAT_PCM && !isFloat) {
    throw new UserError(`unsupported WAV encoding ${describeTag(h.formatTag)}`, {
      file,
      expected: "PCM (format tag 1) or IEEE float (format tag 3)",
      found: describeTag(h.formatTag),
    });
  }
  const okBits = isFloat ? [32, 64] : [8, 16, 24, 32];
  if (!okBits.includes(h.bits)) {
    throw new UserError(`unsupported WAV sample size: ${h.bits}-bit ${isFloat ? "float" : "PCM"}`, {
      file,
      expected: isFloat ? "32- or 64-bit float" : "8-, 16-, 24- or 32-bit integer PCM",
      found: `${h.bits} bits`,
    });
  }
  const nCh = h.channels;
  const frames = h.dataBytes / h.blockAlign;
  const channels = Array.from({ length: nCh }, () => new Float32Array(frames));
  const view = new DataView(bytes.buffer, bytes.byteOffset + h.dataOffset, h.dataBytes);
  const width = h.bits / 8;
  for (let c = 0; c < nCh; c++) {
    const out = channels[c];
    let p = c * width;
    const step = h.blockAlign;
    if (isFloat && h.bits === 32) {
      for (let i = 0; i < frames; i++, p += step) out[i] = view.getFloat32(p, true);
    } else if (isFloat) {
      for (let i = 0; i < frames; i++, p += step) out[i] = view.getFloat64(p, true);
    } else if (h.bits === 8) {
      for (let i = 0; i < frames; i++, p += step) out[i] = (view.getUint8(p) - 128) / 128;
    } else if (h.bits === 16) {
      for (let i = 0; i < frames; i++, p += step) out[i] = view.getInt16(p, true) / 32768;
    } else if (h.bits === 24) {
      for (let i = 0; i < frames; i++, p += step) {
        const v = view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16);
        out[i] = v / 8388608;
      }
    } else {
      for (let i = 0; i < frames; i++, p += step) out[i] = view.getInt32(p, true) / 2147483648;
    }
  }
  return { sampleRate: h.sampleRate, channels, bits: h.bits, float: isFloat };
}

function quantize(x: number, scale: number): number {
  const v = Math.round(x * scale);
  // NaN becomes silence; values outside [-1, 1) clip to the integer range.
  return v >= scale ? scale - 1 : v < -scale ? -scale : v === v ? v : 0;
}

/**
 * Encodes channels of samples as a WAV file.
 *
 * @param channels one `[frames]` array per channel, all the same length, nominally in [-1, 1)
 * @param sampleRate frames per second (a positive integer)
 * @param format bits per sample and float or integer
 * @returns the complete file
 */
export function encodeWav(
  channels: Float32Array[],
  sampleRate: number,
  format: WavFormat,
): Uint8Array {
  const nCh = channels.length;
  const { bits } = format;
  const isFloat = format.float === true;
  if (nCh < 1 || nCh > 65535) throw new RangeError(`encodeWav: ${nCh} channels (1..65535)`);
  if (![8, 16, 24, 32].includes(bits)) throw new RangeError(`encodeWav: ${bits} bits`);
  if (isFloat && bits !== 32) throw new RangeError("encodeWav: float samples must be 32-bit");
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) {
    throw new RangeError(`encodeWav: sample rate ${sampleRate}`);
  }
  const frames = channels[0].length;
  if (channels.some((c) => c.length !== frames)) {
    throw new RangeError("encodeWav: channels have different lengths");
  }
  const extensible = format.extensible ?? (nCh > 2 || bits > 16);
  const width = bits / 8;
  const blockAlign = nCh * width;
  const dataBytes = frames * blockAlign;
  const fmtSize = extensible ? 40 : isFloat ? 18 : 16;
  // Non-PCM files carry a fact chunk (frame count), as the RIFF spec asks.
  const hasFact = isFloat;
  const headerBytes = 12 + 8 + fmtSize + (hasFact ? 12 : 0) + 8;
  const padded = dataBytes + (dataBytes & 1);
  const out = new Uint8Array(headerBytes + padded);
  const v = new DataView(out.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) out[offset + i] = text.charCodeAt(i);
  };
  const tag = isFloat ? WAVE_FORMAT_IEEE_FLOAT : WAVE_FORMAT_PCM;
  ascii(0, "RIFF");
  v.setUint32(4, out.length - 8, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, fmtSize, true);
  v.setUint16(20, extensible ? WAVE_FORMAT_EXTENSIBLE : tag, true);
  v.setUint16(22, nCh, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * blockAlign, true);
  v.setUint16(32, blockAlign, true);
  v.setUint16(34, bits, true);
  if (fmtSize > 16) v.setUint16(36, fmtSize - 18, true); // cbSize
  if (extensible) {
    v.setUint16(38, bits, true); // valid bits per sample
    // Channel mask: front centre for mono, front left/right for stereo, unassigned otherwise.
    v.setUint32(40, nCh === 1 ? 0x4 : nCh === 2 ? 0x3 : 0, true);
    v.setUint16(44, tag, true);
    out.set(SUBFORMAT_GUID_TAIL, 46);
  }
  let pos = 20 + fmtSize;
  if (hasFact) {
    ascii(pos, "fact");
    v.setUint32(pos + 4, 4, true);
    v.setUint32(pos + 8, frames, true);
    pos += 12;
  }
  ascii(pos, "data");
  v.setUint32(pos + 4, dataBytes, true);
  pos += 8;
  for (let c = 0; c < nCh; c++) {
    const src = channels[c];
    let p = pos + c * width;
    if (isFloat) {
      for (let i = 0; i < frames; i++, p += blockAlign) v.setFloat32(p, src[i], true);
    } else if (bits === 8) {
      for (let i = 0; i < frames; i++, p += blockAlign) v.setUint8(p, quantize(src[i], 128) + 128);
    } else if (bits === 16) {
      for (let i = 0; i < frames; i++, p += blockAlign) {
        v.setInt16(p, quantize(src[i], 32768), true);
      }
    } else if (bits === 24) {
      for (let i = 0; i < frames; i++, p += blockAlign) {
        const q = quantize(src[i], 8388608);
        v.setUint8(p, q & 0xff);
        v.setUint8(p + 1, (q >> 8) & 0xff);
        v.setUint8(p + 2, (q >> 16) & 0xff);
      }
    } else {
      for (let i = 0; i < frames; i++, p += blockAlign) {
        v.setInt32(p, quantize(src[i], 2147483648), true);
      }
    }
  }
  return out;
}
