/**
 * Whether decoded audio is usable for training: not empty, finite, within
 * the duration limits and not silent. The scan job rejects files with these
 * reasons, and `classify` gives the same reasons (with scan's default limits).
 *
 * @module
 */
import type { DecodedAudio } from "./decode.ts";

/** The limits a usable file keeps within (the scan job's parameters of the same names). */
export interface AudioLimits {
  /** Shorter files are rejected (`too-short`), in seconds. */
  min_duration_s: number;
  /** Longer files are rejected (`too-long`), in seconds. */
  max_duration_s: number;
  /** A file whose peak absolute sample is below this is rejected (`silent`); 1e-3 is -60 dBFS. */
  silence_threshold: number;
}

/** The scan job's default {@link AudioLimits}. */
export const DEFAULT_AUDIO_LIMITS: Readonly<AudioLimits> = Object.freeze({
  min_duration_s: 0.05,
  max_duration_s: 30,
  silence_threshold: 1e-3,
});

/** Why decoded audio is not usable. */
export type AudioRejectReason = "empty" | "cannot-decode" | "too-short" | "too-long" | "silent";

/**
 * Why `audio` is not usable, checked in this order: no samples (`empty`), a
 * non-finite sample (`cannot-decode`), `too-short`, `too-long`, `silent`;
 * `null` when it is usable. `detail` says what exactly, for people.
 */
export function audioRejectReason(
  audio: DecodedAudio,
  limits: AudioLimits,
): { reason: AudioRejectReason; detail: string } | null {
  if (audio.channels[0].length === 0) {
    return { reason: "empty", detail: `${audio.format} file with no samples` };
  }
  let peak = 0;
  for (const ch of audio.channels) {
    for (let i = 0; i < ch.length; i++) {
      const a = Math.abs(ch[i]);
      if (!(a <= peak)) {
        if (!Number.isFinite(a)) {
          return { reason: "cannot-decode", detail: `non-finite sample at frame ${i}` };
        }
        peak = a;
      }
    }
  }
  const seconds = audio.durationS;
  if (seconds < limits.min_duration_s) {
    return {
      reason: "too-short",
      detail: `${seconds.toFixed(3)} s, shorter than min_duration_s ${limits.min_duration_s}`,
    };
  }
  if (seconds > limits.max_duration_s) {
    return {
      reason: "too-long",
      detail: `${seconds.toFixed(3)} s, longer than max_duration_s ${limits.max_duration_s}`,
    };
  }
  if (peak < limits.silence_threshold) {
    return {
      reason: "silent",
      detail: `peak ${peak.toExponential(2)} below silence_threshold ${limits.silence_threshold}`,
    };
  }
  return null;
}
