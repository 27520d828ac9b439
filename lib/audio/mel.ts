/**
 * Log-mel spectrograms: the front end of the mel-vq tokenizer.
 *
 * Conventions (the same as `torchaudio.transforms.MelSpectrogram` with its
 * defaults `center=True, pad_mode="reflect", power=2, mel_scale="htk",
 * norm=None`):
 *
 * - frames are centred: the signal is reflect-padded by `n_fft / 2` on both
 *   sides and frame `t` covers padded samples `[t * hop, t * hop + n_fft)`, so
 *   a signal of `L` samples has `1 + floor(L / hop)` frames;
 * - the window is a periodic Hann window of `win_length` samples, zero-padded
 *   on both sides (centred) to `n_fft`;
 * - the mel scale is HTK's (`2595 log10(1 + f / 700)`), filters are triangles
 *   with peak 1 (NOT Slaney area-normalised), spaced evenly in mel between
 *   `f_min` and `f_max`;
 * - log-mel is the natural log of `max(mel power, 1e-10)`.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** Settings of the short-time Fourier transform and the mel filterbank. */
export interface MelSettings {
  /** Sample rate in Hz the audio is resampled to before analysis. */
  sample_rate: number;
  /** FFT size in samples; a power of two. */
  n_fft: number;
  /** Window length in samples, `<= n_fft`. */
  win_length: number;
  /** Hop between frames in samples. */
  hop_length: number;
  /** Number of mel bands. */
  n_mels: number;
  /** Lowest filter edge in Hz. */
  f_min: number;
  /** Highest filter edge in Hz, `<= sample_rate / 2`. */
  f_max: number;
}

/**
 * 16 kHz, 25 ms Hann window (400 samples) in a 512-point FFT, 10 ms hop
 * (100 frames per second), 40 HTK mel bands over 0..8000 Hz: the usual speech
 * front end, and small enough that k-means over the frames stays cheap.
 */
export const DEFAULT_MEL: MelSettings = Object.freeze({
  sample_rate: 16000,
  n_fft: 512,
  win_length: 400,
  hop_length: 160,
  n_mels: 40,
  f_min: 0,
  f_max: 8000,
});

/** Floor applied to mel power before the log (so silence gives ln(1e-10) ≈ -23.03). */
export const LOG_MEL_FLOOR = 1e-10;

/**
 * How mel-vq turns audio into codes, in words a reader can implement without
 * this project; the tokenize job writes it into `tokenizer.json`
 * (`conventions`), which the export bundle carries. The module doc above and
 * `lib/audio/features.ts` are the code it describes;
 * `tools/tokenize_by_conventions.py` follows it with numpy, and a test checks
 * that it gives the tokenize job's codes.
 */
export const MEL_VQ_CONVENTIONS = Object.freeze({
  audio:
    "decode; mix the channels to one by their mean; resample to sample_rate (libsamplerate, SRC_SINC_MEDIUM_QUALITY); samples as floats in [-1, 1)",
  frames:
    "centred: reflect-pad the signal by n_fft / 2 samples on both sides; frame t is padded samples [t * hop_length, t * hop_length + n_fft); 1 + floor(samples / hop_length) frames",
  window:
    "periodic Hann window of win_length samples (0.5 - 0.5 cos(2 pi n / win_length)), zero-padded on both sides to n_fft",
  spectrum: "power: |rfft(frame * window)|^2, n_fft / 2 + 1 bins from 0 Hz to sample_rate / 2",
  mel:
    "HTK scale mel = 2595 log10(1 + hz / 700); n_mels triangular filters with peak 1 (no area normalisation), their n_mels + 2 edges evenly spaced in mel from f_min to f_max",
  log: `natural log of max(mel power, ${LOG_MEL_FLOOR})`,
  code:
    "the index of the codebook row (codebook.f32, [codebook_size, n_mels] little-endian float32) nearest in Euclidean distance; token id = vocab.json's code_offset + code",
  torchaudio:
    "log(clamp(torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels=n_mels, power=2.0, mel_scale='htk', norm=None, center=True, pad_mode='reflect')(x), min=1e-10))",
});

/** Hz → HTK mel. */
export function hzToMel(hz: number): number {
  return 2595 * Math.log10(1 + hz / 700);
}

/** HTK mel → Hz. */
export function melToHz(mel: number): number {
  return 700 * (10 ** (mel / 2595) - 1);
}

/**
 * Checks settings and throws a `UserError` naming the offending field
 * (`field` is the settings key, e.g. `n_fft`).
 */
export function checkMelSettings(s: MelSettings): void {
  const bad = (field: keyof MelSettings, expected: string): never => {
    throw new UserError(`invalid mel setting ${field}`, {
      field,
      expected,
      found: String(s[field]),
    });
  };
  const isInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!isInt(s.sample_rate)) bad("sample_rate", "a positive integer (Hz)");
  if (!isInt(s.n_fft) || s.n_fft < 4 || (s.n_fft & (s.n_fft - 1)) !== 0) {
    bad("n_fft", "a power of two >= 4");
  }
  if (!isInt(s.win_length) || s.win_length > s.n_fft) bad("win_length", `1..n_fft (${s.n_fft})`);
  if (!isInt(s.hop_length)) bad("hop_length", "a positive integer (samples)");
  if (!isInt(s.n_mels)) bad("n_mels", "a positive integer");
  if (!(s.f_min >= 0)) bad("f_min", "a frequency >= 0 Hz");
  if (!(s.f_max > s.f_min && s.f_max <= s.sample_rate / 2)) {
    bad("f_max", `a frequency in (f_min, sample_rate / 2] = (${s.f_min}, ${s.sample_rate / 2}]`);
  }
}

/**
 * The mel filterbank, `[n_mels, n_fft / 2 + 1]` f32 row-major: row `m` is the
 * triangular weight of each FFT bin in band `m` (HTK mel, peak 1, no Slaney
 * normalisation; bin `k` is at `k * sample_rate / n_fft` Hz).
 */
export function melFilterbank(s: MelSettings): Float32Array {
  checkMelSettings(s);
  const bins = s.n_fft / 2 + 1;
  const fb = new Float32Array(s.n_mels * bins);
  const mMin = hzToMel(s.f_min);
  const mMax = hzToMel(s.f_max);
  // n_mels + 2 edge frequencies, evenly spaced in mel.
  const edges = new Float64Array(s.n_mels + 2);
  for (let i = 0; i < edges.length; i++) {
    edges[i] = melToHz(mMin + (mMax - mMin) * i / (s.n_mels + 1));
  }
  for (let m = 0; m < s.n_mels; m++) {
    const lo = edges[m], mid = edges[m + 1], hi = edges[m + 2];
    for (let k = 0; k < bins; k++) {
      const f = k * (s.sample_rate / 2) / (bins - 1);
      const up = (f - lo) / (mid - lo);
      const down = (hi - f) / (hi - mid);
      const w = Math.min(up, down);
      if (w > 0) fb[m * bins + k] = w;
    }
  }
  return fb;
}

/** Periodic Hann window of `win_length`, zero-padded centred to `n_fft` (f64, `[n_fft]`). */
export function paddedHann(nFft: number, winLength: number): Float64Array {
  const w = new Float64Array(nFft);
  const left = Math.floor((nFft - winLength) / 2);
  for (let i = 0; i < winLength; i++) {
    w[left + i] = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / winLength);
  }
  return w;
}

/** Index into a signal of length `n` after reflect padding (mirrors repeatedly for short signals). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

/**
 * Power spectrum of a real frame of `n` samples (a power of two >= 4) by a
 * complex radix-2 FFT of `n / 2` points: `z[m] = x[2m] + i x[2m + 1]`, then
 * `X[k] = (Z[k] + conj Z[h - k]) / 2 - i e^{-2πik/n} (Z[k] - conj Z[h - k]) / 2`.
 * Written here rather than taken from fft.js, whose CommonJS module alone
 * took ~40 ms to import, more than the FFTs of a minute of audio.
 */
class RealPowerFft {
  readonly n: number;
  readonly #h: number;
  /** `[h]` bit-reversal permutation of the half-size FFT. */
  readonly #rev: Uint32Array;
  /** `[h / 2]` cos and sin of `-2π j / h`, the half-size FFT's twiddles. */
  readonly #cos: Float64Array;
  readonly #sin: Float64Array;
  /** `[h + 1]` cos and sin of `-2π k / n`, the split into the real spectrum. */
  readonly #splitCos: Float64Array;
  readonly #splitSin: Float64Array;
  readonly #re: Float64Array;
  readonly #im: Float64Array;

  constructor(n: number) {
    this.n = n;
    const h = this.#h = n / 2;
    const bits = Math.log2(h);
    this.#rev = new Uint32Array(h);
    for (let i = 0; i < h; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.#rev[i] = r;
    }
    this.#cos = new Float64Array(Math.max(1, h / 2));
    this.#sin = new Float64Array(Math.max(1, h / 2));
    for (let j = 0; j < h / 2; j++) {
      this.#cos[j] = Math.cos(-2 * Math.PI * j / h);
      this.#sin[j] = Math.sin(-2 * Math.PI * j / h);
    }
    this.#splitCos = new Float64Array(h + 1);
    this.#splitSin = new Float64Array(h + 1);
    for (let k = 0; k <= h; k++) {
      this.#splitCos[k] = Math.cos(-2 * Math.PI * k / n);
      this.#splitSin[k] = Math.sin(-2 * Math.PI * k / n);
    }
    this.#re = new Float64Array(h);
    this.#im = new Float64Array(h);
  }

  /** `|X[k]|²` of `input` (`[n]`) into `out[offset + k]`, `k = 0 .. n / 2`. */
  power(input: Float64Array, out: Float32Array, offset: number): void {
    const h = this.#h, re = this.#re, im = this.#im, rev = this.#rev;
    for (let m = 0; m < h; m++) {
      const r = rev[m];
      re[r] = input[2 * m];
      im[r] = input[2 * m + 1];
    }
    let first = 2;
    if (h >= 4) {
      // The size-2 and size-4 stages in one pass: their twiddles are 1 and -i.
      for (let a = 0; a < h; a += 4) {
        const s0r = re[a] + re[a + 1], s0i = im[a] + im[a + 1];
        const d0r = re[a] - re[a + 1], d0i = im[a] - im[a + 1];
        const s1r = re[a + 2] + re[a + 3], s1i = im[a + 2] + im[a + 3];
        const d1r = re[a + 2] - re[a + 3], d1i = im[a + 2] - im[a + 3];
        re[a] = s0r + s1r;
        im[a] = s0i + s1i;
        re[a + 2] = s0r - s1r;
        im[a + 2] = s0i - s1i;
        re[a + 1] = d0r + d1i;
        im[a + 1] = d0i - d1r;
        re[a + 3] = d0r - d1i;
        im[a + 3] = d0i + d1r;
      }
      first = 8;
    }
    const cos = this.#cos, sin = this.#sin;
    for (let size = first; size <= h; size *= 2) {
      const half = size / 2, step = h / size;
      for (let j = 0; j < half; j++) {
        const wr = cos[j * step], wi = sin[j * step];
        for (let a = j; a < h; a += size) {
          const b = a + half;
          const tr = wr * re[b] - wi * im[b];
          const ti = wr * im[b] + wi * re[b];
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
    }
    const sc = this.#splitCos, ss = this.#splitSin;
    for (let k = 0; k <= h; k++) {
      const a = k === h ? 0 : k, b = k === 0 ? 0 : h - k;
      // E = (Z[k] + conj Z[h-k]) / 2, O = (Z[k] - conj Z[h-k]) / 2i.
      const er = (re[a] + re[b]) / 2, ei = (im[a] - im[b]) / 2;
      const or = (im[a] + im[b]) / 2, oi = -(re[a] - re[b]) / 2;
      const xr = er + sc[k] * or - ss[k] * oi;
      const xi = ei + sc[k] * oi + ss[k] * or;
      out[offset + k] = xr * xr + xi * xi;
    }
  }
}

interface FftPlan {
  fft: RealPowerFft;
  window: Float64Array;
  input: Float64Array;
}

const plans = new Map<string, FftPlan>();

function fftPlan(nFft: number, winLength: number): FftPlan {
  const key = `${nFft}/${winLength}`;
  let plan = plans.get(key);
  if (!plan) {
    plan = {
      fft: new RealPowerFft(nFft),
      window: paddedHann(nFft, winLength),
      input: new Float64Array(nFft),
    };
    plans.set(key, plan);
  }
  return plan;
}

/** Number of centred frames for `length` samples: `1 + floor(length / hop)`, 0 for an empty signal. */
export function frameCount(length: number, hopLength: number): number {
  return length === 0 ? 0 : 1 + Math.floor(length / hopLength);
}

/**
 * The power spectrogram `|STFT|^2`, `[frames, n_fft / 2 + 1]` f32 row-major,
 * with centred, reflect-padded frames and a periodic Hann window (see the
 * module notes). An empty signal has 0 frames.
 */
export function powerSpectrogram(
  samples: Float32Array,
  s: MelSettings,
): { frames: number; bins: number; data: Float32Array } {
  checkMelSettings(s);
  const n = samples.length;
  const nFft = s.n_fft;
  const bins = nFft / 2 + 1;
  const frames = frameCount(n, s.hop_length);
  const data = new Float32Array(frames * bins);
  const { fft, window, input } = fftPlan(nFft, s.win_length);
  const half = nFft / 2;
  for (let t = 0; t < frames; t++) {
    const start = t * s.hop_length - half; // in original sample coordinates
    if (start >= 0 && start + nFft <= n) {
      for (let i = 0; i < nFft; i++) input[i] = samples[start + i] * window[i];
    } else {
      for (let i = 0; i < nFft; i++) input[i] = samples[reflectIndex(start + i, n)] * window[i];
    }
    fft.power(input, data, t * bins);
  }
  return { frames, bins, data };
}

interface SparseFilterbank {
  /** First non-zero bin of each band. */
  start: Int32Array;
  /** One past the last non-zero bin of each band. */
  end: Int32Array;
  weights: Float32Array;
  bins: number;
}

const filterbanks = new Map<string, SparseFilterbank>();

function sparseFilterbank(s: MelSettings): SparseFilterbank {
  const key = JSON.stringify([
    s.sample_rate,
    s.n_fft,
    s.n_mels,
    s.f_min,
    s.f_max,
  ]);
  let sf = filterbanks.get(key);
  if (!sf) {
    const weights = melFilterbank(s);
    const bins = s.n_fft / 2 + 1;
    const start = new Int32Array(s.n_mels);
    const end = new Int32Array(s.n_mels);
    for (let m = 0; m < s.n_mels; m++) {
      let a = 0;
      while (a < bins && weights[m * bins + a] === 0) a++;
      let b = bins;
      while (b > a && weights[m * bins + b - 1] === 0) b--;
      start[m] = a;
      end[m] = b;
    }
    sf = { start, end, weights, bins };
    filterbanks.set(key, sf);
  }
  return sf;
}

/**
 * The log-mel spectrogram, `[frames, n_mels]` f32 row-major: natural log of
 * `max(filterbank · power, 1e-10)` per frame (mel power summed in f64).
 */
export function logMelSpectrogram(
  samples: Float32Array,
  s: MelSettings,
): { frames: number; data: Float32Array } {
  const power = powerSpectrogram(samples, s);
  const { start, end, weights, bins } = sparseFilterbank(s);
  const nMels = s.n_mels;
  const data = new Float32Array(power.frames * nMels);
  for (let t = 0; t < power.frames; t++) {
    const row = t * bins;
    for (let m = 0; m < nMels; m++) {
      let acc = 0;
      const w = m * bins;
      for (let k = start[m]; k < end[m]; k++) acc += weights[w + k] * power.data[row + k];
      data[t * nMels + m] = Math.log(Math.max(acc, LOG_MEL_FLOOR));
    }
  }
  return { frames: power.frames, data };
}
