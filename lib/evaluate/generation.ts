/**
 * How good are the model's generated sounds, measured rather than asserted
 * by ear: samples per category are generated, turned into audio through the
 * tokenizer's way back, and named by an independent judge (k nearest
 * neighbours on log-mel statistics of the real training clips,
 * `recognise.ts`). The share recognised as their intended category is the
 * figure; the judge's own accuracy on the test clips, as recorded and as
 * rebuilt from their tokens, says how far to trust it.
 *
 * What "intended" means depends on the layout, and so does the fair
 * reference. Label-first: the category is in the prompt, so a sample's
 * intended category is the one asked for, and the judge's accuracy on the
 * test clips is the ceiling to compare with. Seed: the model cannot be told
 * a category; it generates audio, names a category itself, and a sample is
 * kept when that is the one asked for, so the figure is how often the judge
 * agrees with the model's own label. Its reference is the same agreement on
 * real clips: the judge against the model's category prediction on the test
 * clips, in the judge's feature space for generated samples
 * (`judge_model_agreement`). `copies_of_train` says how many samples are a
 * training clip's codes verbatim (trivially recognised).
 *
 * @module
 */
import { join } from "node:path";
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
import { occursIn, sequenceKey } from "./metrics.ts";
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
  /**
   * On the test clips (the same ones as `judge_test_accuracy`), the share where the judge
   * names the category the model predicts for the clip (as category_accuracy does), the
   * judge reading what it reads of a generated sample (the codebook frames, or the audio
   * rebuilt from the tokens); null without the model's predictions.
   */
  judge_model_agreement: number | null;
  /** Test clips compared for `judge_model_agreement`. */
  judge_model_compared: number;
  /** Share of the kept samples whose audio codes equal a train clip's (tokenize artifact); null without samples. */
  copies_of_train: number | null;
  /** The same share for the real test clips: what held-out clips of this data copy by themselves. */
  test_copies_of_train: number | null;
  /** Share of the kept samples that are not copies of a train clip recognised as their intended category; null without any. */
  recognised_not_copies: number | null;
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
  /** The folder the scan's file paths are relative to (lib/data/scan_source.ts). */
  audioRoot: string;
  perCategory: number;
  settings: SamplingSettings;
  gpu: Gpu;
  /** The model's category for each test clip, by its audio codes (lib/evaluate/mod.ts). */
  modelPredictions?: readonly { codes: ArrayLike<number>; predicted: string }[];
  log?: (m: string) => void;
}): Promise<{ figures: GenerationFigures; samples: JudgedSample[]; mel: MelSettings }> {
  const data = await readTokenizedData(opts.tokensDir);
  const root = opts.audioRoot;
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
    // The judge's verdict on each clip as it would read a generated sample.
    const verdicts: { codes: number[]; judged: string }[] = [];
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
        const judged = judge.classify(codeFeatures(codes));
        if (judged === s.category) recorded++;
        verdicts.push({ codes, judged });
        continue;
      }
      if (judge.classify(clipFeatures(await load(s.path), mel)) === s.category) recorded++;
      const audio = await tokenizer.decode(Uint32Array.from(codes));
      const judged = judge.classify(clipFeatures(audio, mel));
      if (judged === s.category) rebuilt++;
      verdicts.push({ codes, judged });
    }
    const agreement = judgeModelAgreement(verdicts, opts.modelPredictions ?? []);
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
    const trainCodes = train.map(({ i }) => codesOf(i));
    const copied = copiesOfTrain(trainCodes, judged);
    const testCopied = copiesOfTrain(
      trainCodes,
      data.sequences.flatMap((s, i) => s.split === "test" ? [{ codes: codesOf(i) }] : []),
    );
    opts.log?.(
      `generation: ${recognisedCount}/${want.length} samples recognised as intended; ` +
        `${copied.copies}/${judged.length} kept samples are copies of a train clip; the judge agrees ` +
        `with the model's category on ${
          agreement.compared ? `${agreement.agreed}/${agreement.compared}` : "no"
        } test clips`,
    );
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
        judge_model_agreement: agreement.compared ? agreement.agreed / agreement.compared : null,
        judge_model_compared: agreement.compared,
        copies_of_train: copied.share,
        test_copies_of_train: testCopied.share,
        recognised_not_copies: copied.recognised_not_copies,
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

/**
 * How often the judge names the category the model predicts: each verdict
 * is matched with the prediction for the same audio codes; clips without a
 * prediction are not compared.
 */
export function judgeModelAgreement(
  verdicts: readonly { codes: ArrayLike<number>; judged: string }[],
  predictions: readonly { codes: ArrayLike<number>; predicted: string }[],
): { agreed: number; compared: number } {
  const predicted = new Map(predictions.map((p) => [sequenceKey(p.codes), p.predicted]));
  let agreed = 0, compared = 0;
  for (const v of verdicts) {
    const p = predicted.get(sequenceKey(v.codes));
    if (p === undefined) continue;
    compared++;
    if (p === v.judged) agreed++;
  }
  return { agreed, compared };
}

/**
 * How many of `clips` have audio codes equal to a train clip's (`train`),
 * their share (null without clips), and, of the others, the share the judge
 * names as requested (null when every clip is a copy or none was judged).
 */
export function copiesOfTrain(
  train: Iterable<ArrayLike<number>>,
  clips: readonly { codes: ArrayLike<number>; requested?: string; judged?: string }[],
): { copies: number; share: number | null; recognised_not_copies: number | null } {
  const copy = occursIn(train, clips.map((c) => c.codes));
  const others = clips.filter((_, j) => !copy[j]);
  const copies = clips.length - others.length;
  return {
    copies,
    share: clips.length ? copies / clips.length : null,
    recognised_not_copies: others.length && others.every((c) => c.judged !== undefined)
      ? others.filter((c) => c.judged === c.requested).length / others.length
      : null,
  };
}

/** `codebook.f32`: `[K, n_mels]` f32 little-endian. */
function readCodebook(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength >> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}
