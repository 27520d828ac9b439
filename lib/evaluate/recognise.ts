/**
 * An independent judge of generated sounds: k nearest neighbours on clip
 * features (per-band mean and standard deviation of the log-mel
 * spectrogram, z-scored with the training clips' statistics), fitted on the
 * real training clips. It shares nothing with the model, so "recognised as
 * its intended category" is not the model grading itself.
 *
 * @module
 */
import { logMelSpectrogram, type MelSettings } from "../audio/mel.ts";

/** Neighbours that vote. */
export const NEIGHBOURS = 5;

/** `[2 * n_mels]`: per-band mean, then per-band standard deviation, of the log-mel frames. */
export function clipFeatures(samples: Float32Array, mel: MelSettings): Float64Array {
  const { frames, data } = logMelSpectrogram(samples, mel);
  const n = mel.n_mels;
  const out = new Float64Array(2 * n);
  if (frames === 0) return out;
  for (let t = 0; t < frames; t++) for (let m = 0; m < n; m++) out[m] += data[t * n + m];
  for (let m = 0; m < n; m++) out[m] /= frames;
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < n; m++) out[n + m] += (data[t * n + m] - out[m]) ** 2;
  }
  for (let m = 0; m < n; m++) out[n + m] = Math.sqrt(out[n + m] / frames);
  return out;
}

/**
 * The same statistics over the log-mel frames a code sequence denotes:
 * `codebook [K, n_mels]` rows, one per code.
 */
export function framesFeatures(
  codes: ArrayLike<number>,
  codebook: Float32Array,
  nMels: number,
): Float64Array {
  const out = new Float64Array(2 * nMels);
  const n = codes.length;
  if (n === 0) return out;
  for (let t = 0; t < n; t++) {
    for (let m = 0; m < nMels; m++) out[m] += codebook[codes[t] * nMels + m];
  }
  for (let m = 0; m < nMels; m++) out[m] /= n;
  for (let t = 0; t < n; t++) {
    for (let m = 0; m < nMels; m++) {
      out[nMels + m] += (codebook[codes[t] * nMels + m] - out[m]) ** 2;
    }
  }
  for (let m = 0; m < nMels; m++) out[nMels + m] = Math.sqrt(out[nMels + m] / n);
  return out;
}

/** A k-NN classifier over clip features. */
export class NearestNeighbourJudge {
  readonly #features: Float64Array[];
  readonly #labels: string[];
  readonly #mean: Float64Array;
  readonly #std: Float64Array;

  /** Fits on (features, label) pairs of real clips. */
  constructor(examples: { features: Float64Array; label: string }[]) {
    if (examples.length === 0) throw new RangeError("NearestNeighbourJudge: no examples");
    const dim = examples[0].features.length;
    this.#mean = new Float64Array(dim);
    this.#std = new Float64Array(dim);
    for (const e of examples) for (let i = 0; i < dim; i++) this.#mean[i] += e.features[i];
    for (let i = 0; i < dim; i++) this.#mean[i] /= examples.length;
    for (const e of examples) {
      for (let i = 0; i < dim; i++) this.#std[i] += (e.features[i] - this.#mean[i]) ** 2;
    }
    for (let i = 0; i < dim; i++) this.#std[i] = Math.sqrt(this.#std[i] / examples.length) || 1;
    this.#features = examples.map((e) => this.#normalise(e.features));
    this.#labels = examples.map((e) => e.label);
  }

  #normalise(f: Float64Array): Float64Array {
    return f.map((x, i) => (x - this.#mean[i]) / this.#std[i]);
  }

  /** The majority label of the k nearest examples (ties: the label of the nearest among them). */
  classify(features: Float64Array): string {
    const x = this.#normalise(features);
    const dist = this.#features.map((f, j) => {
      let d = 0;
      for (let i = 0; i < f.length; i++) d += (f[i] - x[i]) ** 2;
      return { d, j };
    }).sort((a, b) => a.d - b.d || a.j - b.j).slice(0, NEIGHBOURS);
    const votes = new Map<string, number>();
    for (const { j } of dist) votes.set(this.#labels[j], (votes.get(this.#labels[j]) ?? 0) + 1);
    const top = Math.max(...votes.values());
    return dist.map(({ j }) => this.#labels[j]).find((l) => votes.get(l) === top)!;
  }
}
