/**
 * The way back from log-mel frames (and mel-vq codes) to audio, and the
 * log-spectral distance that scores a reconstruction.
 *
 * codes ─(codebook rows)→ log-mel `[frames, n_mels]` ─exp→ mel power
 *   ─(non-negative least squares against the filterbank)→ power `[frames, bins]`
 *   ─sqrt→ magnitude ─(fast Griffin-Lim)→ samples.
 *
 * The STFT here uses exactly the framing of {@link powerSpectrogram} in
 * `mel.ts` (centred frames, reflect padding of `n_fft / 2`, periodic Hann
 * window of `win_length` centred in `n_fft`), so frame `t` of a magnitude is
 * centred on sample `t * hop_length` of the reconstruction, and `F` frames
 * give `F * hop_length` samples.
 *
 * Everything is computed in f64 in a fixed order and seeded through
 * `lib/random`, so the same inputs give the same bytes.
 *
 * @module
 */
import FFT from "fft.js";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import {
  checkMelSettings,
  logMelSpectrogram,
  melFilterbank,
  type MelSettings,
  paddedHann,
  powerSpectrogram,
  reflectIndex,
} from "./mel.ts";

/** Options of {@link melToLinear}. */
export interface MelToLinearOptions {
  /** Accelerated projected-gradient iterations per frame (default 60). */
  iterations?: number;
}

/** Options of {@link griffinLim}. */
export interface GriffinLimOptions {
  /** Iterations (default 32). */
  iterations?: number;
  /** Seed of the uniform random initial phase (default 0); drawn from `Random(seed, "griffin-lim")`. */
  seed?: number;
  /** Momentum of fast Griffin-Lim (Perraudin et al. 2013); 0 gives plain Griffin-Lim. Default 0.99. */
  momentum?: number;
  /** Output length in samples (default `frames * hop_length`). */
  length?: number;
}

/** Options of {@link codesToAudio} and {@link reconstructionErrorDb}. */
export interface CodesToAudioOptions extends Omit<GriffinLimOptions, "length"> {
  /** Non-negative least-squares iterations per frame (default 60). */
  nnlsIterations?: number;
}

/** The filterbank as one non-zero run of bins per band (each triangle is contiguous). */
interface BandedFilterbank {
  nMels: number;
  bins: number;
  /** First non-zero bin of each band. */
  start: Int32Array;
  /** One past the last non-zero bin of each band. */
  end: Int32Array;
  /** `[n_mels, bins]` f64, the dense filterbank. */
  w: Float64Array;
  /** Lipschitz constant of the least-squares gradient: the largest eigenvalue of `F Fᵀ`. */
  lipschitz: number;
}

const filterbankCache = new Map<string, BandedFilterbank>();

function bandedFilterbank(s: MelSettings): BandedFilterbank {
  const key = JSON.stringify([s.sample_rate, s.n_fft, s.n_mels, s.f_min, s.f_max]);
  const cached = filterbankCache.get(key);
  if (cached) return cached;
  const w = Float64Array.from(melFilterbank(s));
  const nMels = s.n_mels;
  const bins = s.n_fft / 2 + 1;
  const start = new Int32Array(nMels);
  const end = new Int32Array(nMels);
  for (let m = 0; m < nMels; m++) {
    let a = 0;
    while (a < bins && w[m * bins + a] === 0) a++;
    let b = bins;
    while (b > a && w[m * bins + b - 1] === 0) b--;
    start[m] = a;
    end[m] = b;
  }
  // Largest eigenvalue of the [n_mels, n_mels] Gram matrix F Fᵀ by power iteration
  // from the all-ones vector (deterministic); 5 % margin keeps the step 1/L safe.
  const gram = new Float64Array(nMels * nMels);
  for (let i = 0; i < nMels; i++) {
    for (let j = 0; j < nMels; j++) {
      let acc = 0;
      const a = Math.max(start[i], start[j]), b = Math.min(end[i], end[j]);
      for (let k = a; k < b; k++) acc += w[i * bins + k] * w[j * bins + k];
      gram[i * nMels + j] = acc;
    }
  }
  let v = new Float64Array(nMels).fill(1);
  let lambda = 0;
  for (let it = 0; it < 100; it++) {
    const next = new Float64Array(nMels);
    for (let i = 0; i < nMels; i++) {
      let acc = 0;
      for (let j = 0; j < nMels; j++) acc += gram[i * nMels + j] * v[j];
      next[i] = acc;
    }
    let norm = 0;
    for (let i = 0; i < nMels; i++) norm += next[i] * next[i];
    norm = Math.sqrt(norm);
    if (norm === 0) break;
    for (let i = 0; i < nMels; i++) next[i] /= norm;
    lambda = norm;
    v = next;
  }
  const fb: BandedFilterbank = { nMels, bins, start, end, w, lipschitz: lambda * 1.05 };
  filterbankCache.set(key, fb);
  return fb;
}

/**
 * Non-negative least squares per frame: for each frame's mel power
 * `m = exp(logMel[t])`, the power spectrum `x >= 0` minimising `|F x - m|²`
 * (`F` the `[n_mels, bins]` filterbank), by FISTA-accelerated projected
 * gradient with step `1 / λmax(F Fᵀ)`. Since `F >= 0`, no bin of an exact
 * solution can exceed `u_k = min_j m_j / F[j, k]` (its share of any band it
 * falls in), so iterates are projected onto the box `[0, u]`: this holds
 * bins next to silent bands at 0 from the first step instead of after
 * hundreds. The start point spreads each band's mean density
 * `m_j / Σ_k F[j, k]` over its bins (weighted by the filter, then clipped to
 * the box), so a flat-within-band spectrum is already exact; bins outside
 * every band stay 0.
 * Returns the magnitude `sqrt(x)`.
 *
 * @param logMel `[frames, n_mels]` natural-log mel power
 * @returns `[frames, n_fft / 2 + 1]` f32 STFT magnitude
 */
export function melToLinear(
  logMel: Float32Array,
  s: MelSettings,
  opts: MelToLinearOptions = {},
): Float32Array {
  checkMelSettings(s);
  const iterations = opts.iterations ?? 60;
  const fb = bandedFilterbank(s);
  const { nMels, bins, start, end, w } = fb;
  if (logMel.length % nMels !== 0) {
    throw new RangeError(
      `melToLinear: ${logMel.length} values is not a multiple of n_mels ${nMels}`,
    );
  }
  const frames = logMel.length / nMels;
  const out = new Float32Array(frames * bins);
  const step = fb.lipschitz > 0 ? 1 / fb.lipschitz : 0;
  const rowSum = new Float64Array(nMels);
  const colSum = new Float64Array(bins);
  for (let m = 0; m < nMels; m++) {
    for (let k = start[m]; k < end[m]; k++) {
      rowSum[m] += w[m * bins + k];
      colSum[k] += w[m * bins + k];
    }
  }
  const target = new Float64Array(nMels);
  const x = new Float64Array(bins);
  const xPrev = new Float64Array(bins);
  const y = new Float64Array(bins);
  const residual = new Float64Array(nMels);
  const upper = new Float64Array(bins);
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < nMels; m++) target[m] = Math.exp(logMel[t * nMels + m]);
    x.fill(0);
    upper.fill(Infinity);
    for (let m = 0; m < nMels; m++) {
      if (rowSum[m] === 0) continue;
      const density = target[m] / rowSum[m];
      for (let k = start[m]; k < end[m]; k++) {
        x[k] += w[m * bins + k] * density;
        upper[k] = Math.min(upper[k], target[m] / w[m * bins + k]);
      }
    }
    for (let k = 0; k < bins; k++) {
      if (colSum[k] > 0) x[k] = Math.min(x[k] / colSum[k], upper[k]);
      else upper[k] = 0;
    }
    xPrev.set(x);
    y.set(x);
    let tk = 1;
    for (let it = 0; it < iterations; it++) {
      // residual = F y - m
      for (let m = 0; m < nMels; m++) {
        let acc = 0;
        for (let k = start[m]; k < end[m]; k++) acc += w[m * bins + k] * y[k];
        residual[m] = acc - target[m];
      }
      // x = clip(y - step · Fᵀ residual, 0, upper)
      x.set(y);
      for (let m = 0; m < nMels; m++) {
        const r = step * residual[m];
        for (let k = start[m]; k < end[m]; k++) x[k] -= w[m * bins + k] * r;
      }
      const tNext = (1 + Math.sqrt(1 + 4 * tk * tk)) / 2;
      const beta = (tk - 1) / tNext;
      for (let k = 0; k < bins; k++) {
        x[k] = Math.min(Math.max(x[k], 0), upper[k]);
        y[k] = Math.min(Math.max(x[k] + beta * (x[k] - xPrev[k]), 0), upper[k]);
        xPrev[k] = x[k];
      }
      tk = tNext;
    }
    for (let k = 0; k < bins; k++) out[t * bins + k] = Math.sqrt(x[k]);
  }
  return out;
}

/** Minimal typing of the parts of fft.js used here (the package ships no types). */
interface ComplexFft {
  realTransform(out: Float64Array, input: Float64Array): void;
  completeSpectrum(spectrum: Float64Array): void;
  inverseTransform(out: Float64Array, input: Float64Array): void;
}

/** Complex STFT for Griffin-Lim: the same framing as `powerSpectrogram`, for a fixed number of frames. */
class Stft {
  readonly bins: number;
  readonly window: Float64Array;
  /** Σ_t window²(n - t·hop) over the padded signal `[(frames - 1) · hop + n_fft]`. */
  readonly windowSumSq: Float64Array;
  #windowSumSqPeak = 0;
  #fft: ComplexFft;
  #frame = new Float64Array(0);
  #spectrum = new Float64Array(0);
  #time = new Float64Array(0);

  constructor(readonly s: MelSettings, readonly frames: number) {
    this.bins = s.n_fft / 2 + 1;
    this.window = paddedHann(s.n_fft, s.win_length);
    this.#fft = new FFT(s.n_fft) as unknown as ComplexFft;
    this.#frame = new Float64Array(s.n_fft);
    this.#spectrum = new Float64Array(2 * s.n_fft);
    this.#time = new Float64Array(2 * s.n_fft);
    this.windowSumSq = new Float64Array((frames - 1) * s.hop_length + s.n_fft);
    for (let t = 0; t < frames; t++) {
      for (let i = 0; i < s.n_fft; i++) {
        this.windowSumSq[t * s.hop_length + i] += this.window[i] * this.window[i];
      }
    }
    for (const x of this.windowSumSq) this.#windowSumSqPeak = Math.max(this.#windowSumSqPeak, x);
  }

  /** `samples` → `[frames, bins]` complex, interleaved re/im, into `out`. */
  forward(samples: Float64Array, out: Float64Array): void {
    const { n_fft: nFft, hop_length: hop } = this.s;
    const n = samples.length;
    const half = nFft / 2;
    for (let t = 0; t < this.frames; t++) {
      const startAt = t * hop - half;
      for (let i = 0; i < nFft; i++) {
        const j = startAt + i;
        this.#frame[i] = (j >= 0 && j < n ? samples[j] : samples[reflectIndex(j, n)]) *
          this.window[i];
      }
      this.#fft.realTransform(this.#spectrum, this.#frame);
      out.set(this.#spectrum.subarray(0, 2 * this.bins), t * 2 * this.bins);
    }
  }

  /**
   * Least-squares inverse (windowed overlap-add divided by the summed squared
   * window) of `[frames, bins]` complex `spec`, written as `length` samples
   * starting at the first frame's centre.
   */
  inverse(spec: Float64Array, length: number, out: Float64Array): void {
    const { n_fft: nFft, hop_length: hop } = this.s;
    const half = nFft / 2;
    const bins = this.bins;
    out.fill(0);
    for (let t = 0; t < this.frames; t++) {
      const row = t * 2 * bins;
      for (let k = 0; k < bins; k++) {
        this.#spectrum[2 * k] = spec[row + 2 * k];
        this.#spectrum[2 * k + 1] = spec[row + 2 * k + 1];
      }
      // Hermitian completion: X[n - k] = conj(X[k]).
      for (let k = bins; k < nFft; k++) {
        this.#spectrum[2 * k] = spec[row + 2 * (nFft - k)];
        this.#spectrum[2 * k + 1] = -spec[row + 2 * (nFft - k) + 1];
      }
      this.#fft.inverseTransform(this.#time, this.#spectrum);
      const offset = t * hop - half;
      for (let i = 0; i < nFft; i++) {
        const j = offset + i;
        if (j >= 0 && j < length) out[j] += this.#time[2 * i] * this.window[i];
      }
    }
    // Divide by the summed squared window, floored at a tenth of its peak: past the
    // last frame's centre only the tail of one window covers a sample, and dividing by
    // that near-zero sum turned the GL estimate's rounding there into a full-scale
    // click that the caller's peak normalisation then made the whole clip quiet
    // under (hop >= win/2). Inside, the sum never drops below half its peak (Hann
    // squared at 50% overlap), so the floor only fades the edges out.
    const floor = 0.1 * this.#windowSumSqPeak;
    for (let j = 0; j < length; j++) {
      const wss = j + half < this.windowSumSq.length ? this.windowSumSq[j + half] : 0;
      out[j] = out[j] / Math.max(wss, floor);
    }
  }
}

/**
 * Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013, as in librosa):
 * alternately imposes the target magnitude and projects onto consistent
 * spectrograms, with momentum. The initial phase is uniform random from
 * `Random(seed, "griffin-lim")`, so the output is a pure function of the inputs.
 *
 * @param magnitude `[frames, n_fft / 2 + 1]` STFT magnitude (the framing of `powerSpectrogram`)
 * @returns `[length]` f32 samples, `length` defaulting to `frames * hop_length`
 */
export function griffinLim(
  magnitude: Float32Array,
  s: MelSettings,
  opts: GriffinLimOptions = {},
): Float32Array {
  checkMelSettings(s);
  const bins = s.n_fft / 2 + 1;
  if (magnitude.length % bins !== 0) {
    throw new RangeError(
      `griffinLim: ${magnitude.length} values is not a multiple of ${bins} bins`,
    );
  }
  const frames = magnitude.length / bins;
  const length = opts.length ?? frames * s.hop_length;
  if (frames === 0 || length === 0) return new Float32Array(length);
  const iterations = opts.iterations ?? 32;
  const momentum = opts.momentum ?? 0.99;
  const alpha = momentum / (1 + momentum);
  const stft = new Stft(s, frames);
  const rng = new Random(opts.seed ?? 0, "griffin-lim");
  // angles: unit-modulus phase factors, [frames, bins] interleaved complex.
  const angles = new Float64Array(2 * frames * bins);
  for (let i = 0; i < frames * bins; i++) {
    const phi = 2 * Math.PI * rng.uniform();
    angles[2 * i] = Math.cos(phi);
    angles[2 * i + 1] = Math.sin(phi);
  }
  const spec = new Float64Array(2 * frames * bins);
  const rebuilt = new Float64Array(2 * frames * bins);
  const previous = new Float64Array(2 * frames * bins);
  const signal = new Float64Array(length);
  const applyMagnitude = () => {
    for (let i = 0; i < frames * bins; i++) {
      spec[2 * i] = magnitude[i] * angles[2 * i];
      spec[2 * i + 1] = magnitude[i] * angles[2 * i + 1];
    }
  };
  for (let it = 0; it < iterations; it++) {
    previous.set(rebuilt);
    applyMagnitude();
    stft.inverse(spec, length, signal);
    stft.forward(signal, rebuilt);
    for (let i = 0; i < frames * bins; i++) {
      const re = rebuilt[2 * i] - alpha * previous[2 * i];
      const im = rebuilt[2 * i + 1] - alpha * previous[2 * i + 1];
      const mod = Math.hypot(re, im) + 1e-16;
      angles[2 * i] = re / mod;
      angles[2 * i + 1] = im / mod;
    }
  }
  applyMagnitude();
  stft.inverse(spec, length, signal);
  return Float32Array.from(signal);
}

/**
 * Spectral convergence `‖ |STFT(samples)| - M ‖_F / ‖M‖_F` over the frames both
 * have (the usual Griffin-Lim quality figure; 0 is a perfect match).
 *
 * @param magnitude `[frames, n_fft / 2 + 1]` target magnitude
 */
export function spectralConvergence(
  magnitude: Float32Array,
  samples: Float32Array,
  s: MelSettings,
): number {
  const p = powerSpectrogram(samples, s);
  const frames = Math.min(p.frames, magnitude.length / p.bins);
  let num = 0, den = 0;
  for (let i = 0; i < frames * p.bins; i++) {
    const d = Math.sqrt(p.data[i]) - magnitude[i];
    num += d * d;
    den += magnitude[i] * magnitude[i];
  }
  return Math.sqrt(num / den);
}

/** Number of rows `K` of a `[K, n_mels]` codebook, checking its size. */
function codebookRows(codebook: Float32Array, nMels: number): number {
  if (codebook.length === 0 || codebook.length % nMels !== 0) {
    throw new UserError("codebook size does not match n_mels", {
      field: "codebook",
      expected: `a [K, ${nMels}] f32 array (a multiple of ${nMels} values)`,
      found: `${codebook.length} values`,
    });
  }
  return codebook.length / nMels;
}

/**
 * mel-vq codes → audio: codebook rows give log-mel frames, {@link melToLinear}
 * gives magnitudes, {@link griffinLim} gives `codes.length * hop_length` samples.
 *
 * @param codes `[frames]` code indices in `[0, K)`
 * @param codebook `[K, n_mels]` f32 log-mel centroids
 * @returns `[frames * hop_length]` f32 samples at `s.sample_rate`
 */
export function codesToAudio(
  codes: Uint32Array,
  codebook: Float32Array,
  s: MelSettings,
  opts: CodesToAudioOptions = {},
): Float32Array {
  checkMelSettings(s);
  const nMels = s.n_mels;
  const k = codebookRows(codebook, nMels);
  const logMel = new Float32Array(codes.length * nMels);
  for (let t = 0; t < codes.length; t++) {
    const c = codes[t];
    if (c >= k) {
      throw new UserError(`code ${c} at position ${t} is outside the codebook`, {
        field: `codes[${t}]`,
        expected: `a code in [0, ${k})`,
        found: String(c),
      });
    }
    logMel.set(codebook.subarray(c * nMels, (c + 1) * nMels), t * nMels);
  }
  const magnitude = melToLinear(logMel, s, { iterations: opts.nnlsIterations });
  return griffinLim(magnitude, s, {
    iterations: opts.iterations,
    seed: opts.seed,
    momentum: opts.momentum,
  });
}

/**
 * Nearest codebook row per frame (squared Euclidean distance in log-mel
 * space; ties go to the lower index), on the CPU.
 *
 * @param logMel `[frames, n_mels]`
 * @param codebook `[K, n_mels]`
 * @returns `[frames]` codes
 */
export function quantizeLogMel(
  logMel: Float32Array,
  codebook: Float32Array,
  nMels: number,
): Uint32Array {
  const k = codebookRows(codebook, nMels);
  const frames = Math.floor(logMel.length / nMels);
  const codes = new Uint32Array(frames);
  for (let t = 0; t < frames; t++) {
    let best = Infinity, bestIndex = 0;
    for (let c = 0; c < k; c++) {
      let d = 0;
      for (let m = 0; m < nMels; m++) {
        const diff = logMel[t * nMels + m] - codebook[c * nMels + m];
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        bestIndex = c;
      }
    }
    codes[t] = bestIndex;
  }
  return codes;
}

/** Dynamic range kept by {@link logSpectralDistanceDb}: powers more than 80 dB below the reference's peak are floored. */
export const LSD_DYNAMIC_RANGE_DB = 80;

/**
 * Log-spectral distance in dB between the power spectrograms (`powerSpectrogram`,
 * `s`'s framing) of two signals, frames aligned from the start, over the
 * `T = min(frames)` frames both have:
 *
 * `LSD = (1/T) Σ_t sqrt( (1/K) Σ_k (10 log10((P_ref[t,k] + ε) / (P_rec[t,k] + ε)))² )`
 *
 * with `K = n_fft / 2 + 1` bins and `ε = max(1e-10, 10^(-80/10) · max P_ref)`:
 * differences more than 80 dB below the reference's loudest bin count as
 * silence on both sides (as `top_db = 80` in librosa), so float noise in
 * silent stretches does not dominate. 0 for identical signals.
 */
export function logSpectralDistanceDb(
  reference: Float32Array,
  reconstructed: Float32Array,
  s: MelSettings,
): number {
  const a = powerSpectrogram(reference, s);
  const b = powerSpectrogram(reconstructed, s);
  const frames = Math.min(a.frames, b.frames);
  if (frames === 0) {
    throw new RangeError("logSpectralDistanceDb: both signals need at least one sample");
  }
  const bins = a.bins;
  let peak = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] > peak) peak = a.data[i];
  const eps = Math.max(1e-10, peak * 10 ** (-LSD_DYNAMIC_RANGE_DB / 10));
  let total = 0;
  for (let t = 0; t < frames; t++) {
    let acc = 0;
    for (let k = 0; k < bins; k++) {
      const d = 10 * Math.log10((a.data[t * bins + k] + eps) / (b.data[t * bins + k] + eps));
      acc += d * d;
    }
    total += Math.sqrt(acc / bins);
  }
  return total / frames;
}

/**
 * How well the mel-vq round trip keeps a signal: quantise its log-mel frames
 * to the nearest codebook rows ({@link quantizeLogMel}), reconstruct
 * ({@link codesToAudio}) and return {@link logSpectralDistanceDb} against the
 * original.
 *
 * @param samples `[n]` f32 at `s.sample_rate`
 * @param codebook `[K, n_mels]` f32 log-mel centroids
 */
export function reconstructionErrorDb(
  samples: Float32Array,
  codebook: Float32Array,
  s: MelSettings,
  opts: CodesToAudioOptions = {},
): number {
  const mel = logMelSpectrogram(samples, s);
  const codes = quantizeLogMel(mel.data, codebook, s.n_mels);
  const rebuilt = codesToAudio(codes, codebook, s, opts);
  return logSpectralDistanceDb(samples, rebuilt, s);
}
