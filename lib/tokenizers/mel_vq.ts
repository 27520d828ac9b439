/**
 * The mel-vq tokenizer on the CPU: a log-mel frame's code is its nearest
 * codebook row, and codes go back to audio through the codebook, NNLS and
 * Griffin-Lim (`lib/audio/inverse.ts`). The tokenize job fits the codebook
 * and assigns codes on the GPU; this class is for one-off use (the `tokens`
 * CLI, tests) and gives the same codes up to float ties.
 *
 * @module
 */
import { codesToAudio, type CodesToAudioOptions, quantizeLogMel } from "../audio/inverse.ts";
import { logMelSpectrogram, type MelSettings } from "../audio/mel.ts";
import { UserError } from "../errors/mod.ts";

/** Audio ↔ codes with a `[K, n_mels]` log-mel codebook. */
export class MelVqTokenizer {
  /** Number of codes `K`. */
  readonly codebookSize: number;

  /**
   * @param mel the analysis settings the codebook was fitted with
   * @param codebook `[K, n_mels]` f32 log-mel centroids
   */
  constructor(readonly mel: MelSettings, readonly codebook: Float32Array) {
    if (codebook.length === 0 || codebook.length % mel.n_mels !== 0) {
      throw new UserError("the codebook is not [K, n_mels]", {
        field: "codebook",
        expected: `a multiple of n_mels = ${mel.n_mels} values`,
        found: `${codebook.length} values`,
      });
    }
    this.codebookSize = codebook.length / mel.n_mels;
  }

  /**
   * Audio → codes, one per frame (`1 + floor(n / hop_length)` frames).
   *
   * @param samples `[n]` f32 mono at `mel.sample_rate`
   */
  encode(samples: Float32Array): Uint32Array {
    const { data } = logMelSpectrogram(samples, this.mel);
    return quantizeLogMel(data, this.codebook, this.mel.n_mels);
  }

  /**
   * Codes → audio, `codes.length * hop_length` samples at `mel.sample_rate`.
   *
   * @param codes `[frames]` codes in `[0, K)`
   */
  decode(codes: Uint32Array, opts: CodesToAudioOptions = {}): Float32Array {
    return codesToAudio(codes, this.codebook, this.mel, opts);
  }
}
