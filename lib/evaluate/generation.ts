/**
 * How good are the model's generated sounds, measured rather than asserted
 * by ear: samples per category are generated, turned into audio through the
 * tokenizer's way back, and named by an independent judge (k nearest
 * neighbours on log-mel statistics of the real training clips,
 * `recognise.ts`). The share recognised as their intended category is the
 * figure; the judge's own accuracy on the test clips, as recorded and as
 * rebuilt from their tokens, says how far to trust it.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { decodeAudioFile } from "../audio/decode.ts";
import { DEFAULT_MEL, type MelSettings } from "../audio/mel.ts";
import { resample, toMono } from "../audio/resample.ts";
import { readTokenizedData, sequenceTokens } from "../data/tokenized.ts";
import { decodeSequence } from "../data/vocab.ts";
import type { Gpu } from "../gpu/device.ts";
import { type GeneratedSample, generateSamples } from "../generate/samples.ts";
import type { SamplingSettings } from "../generate/mod.ts";
import { samoutFromSafetensors } from "../model/safetensors.ts";
import { openTokenizerDir } from "../tokenizers/mod.ts";
import { clipFeatures, framesFeatures, NearestNeighbourJudge } from "./recognise.ts";

/** Generated samples per category given audio (for the report) when the judge needs none. */
const AUDIO_PER_CATEGORY = 2;

/** What {@link judgeGeneration} measures. */
export interface GenerationFigures {
  /** Share of the requested samples the judge names as their intended category. */
  recognised: number;
  requested: number;
  /** Samples generated and kept (seed layout: the model named a category asked for). */
  produced: number;
  /** Per category: recognised share of the samples asked for. */
  by_category: Record<string, number>;
  /** The judge on the recorded test clips (its ceiling; at most `perCategory` per category). */
  judge_test_accuracy: number;
  /**
   * The judge on the test clips rebuilt from their tokens (audio judge only; null when the
   * judge works on the codebook's log-mel, where a clip and its tokens are the same thing).
   */
  judge_reconstruction_accuracy: number | null;
  /** What the judge compares: the codebook frames of token sequences, or decoded audio. */
  judge_space: "codebook log-mel" | "audio log-mel";
  /** Mean generated length in audio frames, and the test clips' mean. */
  mean_frames: number;
  test_mean_frames: number;
  settings: SamplingSettings;
  layout: string;
}

/** A generated sample with its audio and the judge's verdict. */
export interface JudgedSample extends GeneratedSample {
  audio: Float32Array;
  judged: string;
}

/** Generates `perCategory` samples per category and judges them (see the module doc). */
export async function judgeGeneration(opts: {
  modelDir: string;
  tokensDir: string;
  scanDir: string;
  perCategory: number;
  settings: SamplingSettings;
  gpu: Gpu;
  log?: (m: string) => void;
}): Promise<{ figures: GenerationFigures; samples: JudgedSample[]; mel: MelSettings }> {
  const data = await readTokenizedData(opts.tokensDir);
  const listing = JSON.parse(await Deno.readTextFile(join(opts.scanDir, "files.json")));
  const root = resolve(opts.scanDir, listing.root);
  const { tokenizer } = await openTokenizerDir(opts.tokensDir);
  try {
    const settings = JSON.parse(await Deno.readTextFile(join(opts.tokensDir, "tokenizer.json")));
    const mel: MelSettings = settings.kind === "mel-vq"
      ? Object.fromEntries(
        Object.keys(DEFAULT_MEL).map((k) => [k, settings[k] ?? (DEFAULT_MEL as never)[k]]),
      ) as unknown as MelSettings
      : { ...DEFAULT_MEL, sample_rate: tokenizer.sampleRate };
    const load = async (path: string) => {
      const audio = await decodeAudioFile(join(root, path));
      return await resample(toMono(audio.channels), audio.sampleRate, tokenizer.sampleRate);
    };
    // The judge. With a mel-vq tokenizer it works on what token sequences denote: the
    // codebook's log-mel frames, for the real clips' sequences and the generated ones
    // alike (no Griffin-Lim in the way). Otherwise on the audio: recorded clips, and
    // the decoder's output for the rebuilt and generated ones.
    const codebook = settings.kind === "mel-vq"
      ? readCodebook(await Deno.readFile(join(opts.tokensDir, "codebook.f32")))
      : undefined;
    const codeFeatures = (codes: ArrayLike<number>) => framesFeatures(codes, codebook!, mel.n_mels);
    const codesOf = (i: number) => decodeSequence(data.vocab, sequenceTokens(data, i)).codes;
    const train = data.sequences.map((s, i) => ({ s, i })).filter(({ s }) => s.split === "train");
    const examples = [];
    for (const { s, i } of train) {
      const features = codebook ? codeFeatures(codesOf(i)) : clipFeatures(await load(s.path), mel);
      examples.push({ features, label: s.category });
    }
    const judge = new NearestNeighbourJudge(examples);
    // Its ceiling, on test clips (at most `perCategory` per category when audio is rebuilt).
    let recorded = 0, rebuilt = 0, testFrames = 0;
    const seen = new Map<string, number>();
    const testIdx = data.sequences.map((s, i) => ({ s, i })).filter(({ s }) => {
      if (s.split !== "test") return false;
      const n = seen.get(s.category) ?? 0;
      seen.set(s.category, n + 1);
      return codebook !== undefined || n < opts.perCategory;
    });
    for (const { s, i } of testIdx) {
      const codes = codesOf(i);
      testFrames += codes.length;
      if (codebook) {
        if (judge.classify(codeFeatures(codes)) === s.category) recorded++;
        continue;
      }
      if (judge.classify(clipFeatures(await load(s.path), mel)) === s.category) recorded++;
      const audio = await tokenizer.decode(Uint32Array.from(codes));
      if (judge.classify(clipFeatures(audio, mel)) === s.category) rebuilt++;
    }
    opts.log?.(
      `judge (${
        codebook ? "codebook log-mel" : "audio log-mel"
      }): ${recorded}/${testIdx.length} test clips` +
        (codebook ? "" : `, ${rebuilt} rebuilt from tokens`),
    );
    // The samples.
    const weightsFile = join(opts.modelDir, "best.safetensors");
    const { cfg, params } = samoutFromSafetensors(await Deno.readFile(weightsFile), {
      file: weightsFile,
    });
    const want = data.vocab.categories.flatMap((c) =>
      Array.from({ length: opts.perCategory }, () => c)
    );
    const samples = await generateSamples({
      config: cfg,
      weights: params,
      vocab: data.vocab,
      want,
      settings: opts.settings,
      backend: "gpu",
      gpu: opts.gpu,
    });
    const judged: JudgedSample[] = [];
    const shown = new Map<string, number>();
    for (const s of samples) {
      // Audio for the report's players: the first `AUDIO_PER_CATEGORY` of each category
      // (and every sample when the judge listens to audio).
      const c = s.requested ?? "";
      const n = shown.get(c) ?? 0;
      shown.set(c, n + 1);
      const needAudio = !codebook || n < AUDIO_PER_CATEGORY;
      const audio = needAudio && s.codes.length > 0
        ? await tokenizer.decode(Uint32Array.from(s.codes))
        : new Float32Array(0);
      const verdict = s.codes.length === 0
        ? "(silence)"
        : judge.classify(codebook ? codeFeatures(s.codes) : clipFeatures(audio, mel));
      judged.push({ ...s, audio, judged: verdict });
    }
    const by_category: Record<string, number> = {};
    for (const c of data.vocab.categories) {
      by_category[c] = judged.filter((s) => s.requested === c && s.judged === c).length /
        opts.perCategory;
    }
    const recognisedCount = judged.filter((s) => s.judged === s.requested).length;
    opts.log?.(`generation: ${recognisedCount}/${want.length} samples recognised as intended`);
    return {
      figures: {
        recognised: want.length > 0 ? recognisedCount / want.length : 0,
        requested: want.length,
        produced: samples.length,
        by_category,
        judge_test_accuracy: testIdx.length ? recorded / testIdx.length : 0,
        judge_reconstruction_accuracy: codebook
          ? null
          : testIdx.length
          ? rebuilt / testIdx.length
          : 0,
        judge_space: codebook ? "codebook log-mel" : "audio log-mel",
        mean_frames: samples.length
          ? samples.reduce((n, s) => n + s.codes.length, 0) / samples.length
          : 0,
        test_mean_frames: testIdx.length ? testFrames / testIdx.length : 0,
        settings: opts.settings,
        layout: data.vocab.layout,
      },
      samples: judged,
      mel,
    };
  } finally {
    await tokenizer.close();
  }
}

/** `codebook.f32`: `[K, n_mels]` f32 little-endian. */
function readCodebook(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength >> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}
