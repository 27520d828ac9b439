/**
 * Decodes audio files to float samples. The format is found from the file's
 * first bytes, never its name. WAV goes through this project's own reader
 * (`wav.ts`); FLAC, Ogg Vorbis and MP3, and WAV files in compressed encodings
 * (A-law, mu-law, ADPCM), go through `audio-decode`, imported on first use.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { decodeWav, parseWavHeader } from "./wav.ts";

/** The audio container formats the project reads. */
export type AudioFormat = "wav" | "flac" | "ogg" | "mp3";

/** A decoded audio file. */
export interface DecodedAudio {
  /** Frames per second. */
  sampleRate: number;
  /** One `[frames]` f32 array per channel, nominally in [-1, 1]. */
  channels: Float32Array[];
  format: AudioFormat;
  /** frames / sampleRate, in seconds. */
  durationS: number;
}

/** Why a file could not be decoded; scan uses it as the reject reason. */
export type AudioDecodeFailure = "empty" | "not-audio" | "unsupported" | "cannot-decode";

/** A `UserError` from decoding, with a machine-readable {@link AudioDecodeFailure}. */
export class AudioDecodeError extends UserError {
  /** The kind of failure. */
  readonly failure: AudioDecodeFailure;

  constructor(
    failure: AudioDecodeFailure,
    message: string,
    options: { file?: string; expected?: string; found?: string; hint?: string; cause?: unknown },
  ) {
    super(message, options);
    this.name = "AudioDecodeError";
    this.failure = failure;
  }
}

const EXPECTED_FORMATS =
  "a WAV (RIFF/WAVE), FLAC (fLaC), Ogg Vorbis (OggS) or MP3 (ID3 tag or MPEG audio frame) file";

/** What the bytes inside an Ogg stream's first page say it carries. */
type OggCodec = "vorbis" | "opus" | "flac" | "unknown";

function startsWith(bytes: Uint8Array, text: string, offset = 0): boolean {
  if (bytes.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) {
    if (bytes[offset + i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function oggCodec(bytes: Uint8Array): OggCodec {
  // The first page's header is 27 bytes plus a segment table; its packet is the codec's id header.
  if (bytes.length < 28) return "unknown";
  const packet = 27 + bytes[26];
  if (startsWith(bytes, "\x01vorbis", packet)) return "vorbis";
  if (startsWith(bytes, "OpusHead", packet)) return "opus";
  if (startsWith(bytes, "\x7fFLAC", packet)) return "flac";
  return "unknown";
}

/** An MPEG audio frame header: 11 sync bits, a valid version and layer, and a valid bitrate. */
function isMpegFrame(bytes: Uint8Array, offset: number): boolean {
  if (bytes.length < offset + 4) return false;
  const b1 = bytes[offset + 1], b2 = bytes[offset + 2];
  if (bytes[offset] !== 0xff || (b1 & 0xe0) !== 0xe0) return false;
  const version = (b1 >> 3) & 3, layer = (b1 >> 1) & 3, bitrate = b2 >> 4, rate = (b2 >> 2) & 3;
  // version 01 and layer 00 are reserved (layer 00 with sync is AAC ADTS, not MPEG audio).
  return version !== 1 && layer !== 0 && bitrate !== 15 && rate !== 3;
}

/**
 * The format of a file from its first bytes, or `null` when it is none of the supported ones.
 * An ID3v2 tag is skipped and the bytes after it decide (MP3 or FLAC).
 */
export function detectAudioFormat(bytes: Uint8Array): AudioFormat | null {
  if (startsWith(bytes, "RIFF") && startsWith(bytes, "WAVE", 8)) return "wav";
  if (startsWith(bytes, "fLaC")) return "flac";
  if (startsWith(bytes, "OggS")) return "ogg";
  if (startsWith(bytes, "ID3") && bytes.length >= 10) {
    // ID3v2 size: four 7-bit bytes (synchsafe), plus a 10-byte footer when flag bit 4 is set.
    const size = ((bytes[6] & 0x7f) << 21) | ((bytes[7] & 0x7f) << 14) |
      ((bytes[8] & 0x7f) << 7) | (bytes[9] & 0x7f);
    const after = 10 + size + (bytes[5] & 0x10 ? 10 : 0);
    if (startsWith(bytes, "fLaC", after)) return "flac";
    return "mp3";
  }
  if (isMpegFrame(bytes, 0)) return "mp3";
  return null;
}

function printable(bytes: Uint8Array): string {
  const head = Array.from(
    bytes.subarray(0, 8),
    (b) => b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`,
  );
  return JSON.stringify(head.join(""));
}

interface AudioDecodeModule {
  default: (bytes: Uint8Array) => Promise<{ channelData: Float32Array[]; sampleRate: number }>;
}

let audioDecode: Promise<AudioDecodeModule> | undefined;

async function decodeWithLibrary(
  bytes: Uint8Array,
  format: AudioFormat,
  file: string | undefined,
): Promise<{ channels: Float32Array[]; sampleRate: number }> {
  audioDecode ??= import("audio-decode") as Promise<AudioDecodeModule>;
  const decode = (await audioDecode).default;
  let result;
  try {
    result = await decode(bytes);
  } catch (e) {
    throw new AudioDecodeError(
      "cannot-decode",
      `cannot decode ${format.toUpperCase()} data: ${e instanceof Error ? e.message : String(e)}`,
      { file, expected: `a valid ${format.toUpperCase()} stream`, cause: e },
    );
  }
  return { channels: result.channelData, sampleRate: result.sampleRate };
}

/**
 * Decodes a whole audio file held in memory.
 *
 * @param bytes the file's bytes
 * @param file the file's path, for error messages
 * @throws AudioDecodeError (a UserError) naming the file and what was expected
 */
export async function decodeAudioBytes(bytes: Uint8Array, file?: string): Promise<DecodedAudio> {
  if (bytes.length === 0) {
    throw new AudioDecodeError("empty", "empty file (0 bytes)", {
      file,
      expected: EXPECTED_FORMATS,
      found: "0 bytes",
    });
  }
  const format = detectAudioFormat(bytes);
  if (format === null) {
    throw new AudioDecodeError("not-audio", "not a recognised audio file", {
      file,
      expected: EXPECTED_FORMATS,
      found: `first bytes ${printable(bytes)}`,
    });
  }
  if (format === "ogg") {
    const codec = oggCodec(bytes);
    if (codec !== "vorbis") {
      throw new AudioDecodeError("unsupported", `unsupported Ogg stream (${codec})`, {
        file,
        expected: "an Ogg Vorbis stream",
        found: codec === "unknown" ? "an Ogg stream of unknown codec" : `Ogg ${codec}`,
        hint: "convert it to WAV, FLAC or Ogg Vorbis",
      });
    }
  }
  let decoded: { channels: Float32Array[]; sampleRate: number };
  if (format === "wav") {
    let header;
    try {
      header = parseWavHeader(bytes, file);
    } catch (e) {
      const u = e as UserError;
      throw new AudioDecodeError("cannot-decode", u.message, {
        file,
        expected: u.expected,
        found: u.found,
        cause: e,
      });
    }
    // PCM and float: our reader. Compressed WAV encodings: the library, which knows them.
    if (header.formatTag === 1 || header.formatTag === 3) {
      try {
        decoded = decodeWav(bytes, file);
      } catch (e) {
        const u = e as UserError;
        throw new AudioDecodeError("unsupported", u.message, {
          file,
          expected: u.expected,
          found: u.found,
          cause: e,
        });
      }
    } else {
      decoded = await decodeWithLibrary(bytes, format, file);
    }
  } else {
    decoded = await decodeWithLibrary(bytes, format, file);
  }
  const { channels, sampleRate } = decoded;
  if (!(sampleRate > 0) || channels.length === 0) {
    throw new AudioDecodeError("cannot-decode", `${format.toUpperCase()} stream holds no audio`, {
      file,
      expected: "at least one channel at a positive sample rate",
      found: `${channels.length} channels at ${sampleRate} Hz`,
    });
  }
  return { sampleRate, channels, format, durationS: channels[0].length / sampleRate };
}

/**
 * Reads and decodes an audio file.
 *
 * @param path the file to read
 * @throws AudioDecodeError (a UserError) for an empty, unrecognised or corrupt file;
 *   UserError when the file cannot be read
 */
export async function decodeAudioFile(path: string): Promise<DecodedAudio> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new UserError(`cannot read the file: ${e instanceof Error ? e.message : String(e)}`, {
      file: path,
      expected: "a readable audio file",
      cause: e,
    });
  }
  return await decodeAudioBytes(bytes, path);
}
