/**
 * Channel mixing and sample-rate conversion. Resampling uses libsamplerate
 * (WebAssembly, `@alexanderolsen/libsamplerate-js`), imported on first use;
 * its output is a pure function of the input, so results are deterministic.
 *
 * @module
 */

/** Mixes channels to one by their mean. `channels`: one `[frames]` array each, equal lengths. */
export function toMono(channels: Float32Array[]): Float32Array {
  if (channels.length === 0) throw new RangeError("toMono: no channels");
  if (channels.length === 1) return channels[0];
  const frames = channels[0].length;
  if (channels.some((c) => c.length !== frames)) {
    throw new RangeError("toMono: channels have different lengths");
  }
  const out = new Float32Array(frames);
  const scale = 1 / channels.length;
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels.length; c++) sum += channels[c][i];
    out[i] = sum * scale;
  }
  return out;
}

/** Converter quality, libsamplerate's names: sinc filters from best (slowest) to fastest. */
export type ResampleQuality = "best" | "medium" | "fastest";

interface SrcConverter {
  simple(data: Float32Array): Float32Array;
  destroy(): void;
}
interface LibSampleRate {
  create(
    channels: number,
    fromRate: number,
    toRate: number,
    options: { converterType: number },
  ): Promise<SrcConverter>;
  ConverterType: Record<string, number>;
}

let libsamplerate: Promise<LibSampleRate> | undefined;

/** The number of frames {@link resample} returns for `frames` input frames. */
export function resampledLength(frames: number, fromRate: number, toRate: number): number {
  return Math.round(frames * toRate / fromRate);
}

/**
 * Resamples mono audio from `fromRate` to `toRate` (Hz) with a band-limited
 * sinc filter. Returns the input itself when the rates match. The output has
 * exactly {@link resampledLength} frames (libsamplerate may return one or two
 * fewer; the tail is padded with the last sample, or trimmed).
 *
 * @param samples `[frames]` f32 mono
 * @param quality sinc filter; "medium" (default) is transparent for 16-bit audio
 */
export async function resample(
  samples: Float32Array,
  fromRate: number,
  toRate: number,
  quality: ResampleQuality = "medium",
): Promise<Float32Array> {
  for (const [name, rate] of [["fromRate", fromRate], ["toRate", toRate]] as const) {
    if (!Number.isInteger(rate) || rate < 1 || rate > 192000) {
      throw new RangeError(`resample: ${name} ${rate} is not an integer from 1 to 192000`);
    }
  }
  if (fromRate === toRate) return samples;
  const target = resampledLength(samples.length, fromRate, toRate);
  if (samples.length === 0 || target === 0) return new Float32Array(target);
  // The package is CommonJS: its API sits on the default export.
  libsamplerate ??= import("@alexanderolsen/libsamplerate-js").then((m) =>
    (m as unknown as { default: LibSampleRate }).default
  );
  const lib = await libsamplerate;
  const converterType = {
    best: lib.ConverterType.SRC_SINC_BEST_QUALITY,
    medium: lib.ConverterType.SRC_SINC_MEDIUM_QUALITY,
    fastest: lib.ConverterType.SRC_SINC_FASTEST,
  }[quality];
  const src = await lib.create(1, fromRate, toRate, { converterType });
  let out: Float32Array;
  try {
    out = src.simple(samples);
  } finally {
    src.destroy();
  }
  if (out.length === target) return out;
  const fixed = new Float32Array(target);
  fixed.set(out.subarray(0, target));
  if (out.length < target && out.length > 0) fixed.fill(out[out.length - 1], out.length);
  return fixed;
}
