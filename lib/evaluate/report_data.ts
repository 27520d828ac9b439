/**
 * Builds the evaluate report's data (`lib/report/types.ts`) from an
 * evaluation, the train artifact's curves and a few test clips: each clip's
 * original audio and its reconstruction from its tokens (the tokenizer's way
 * back), with spectrograms.
 *
 * @module
 */
import { join } from "node:path";
import { decodeAudioFile } from "../audio/decode.ts";
import { DEFAULT_MEL, logMelSpectrogram, type MelSettings } from "../audio/mel.ts";
import { resample, toMono } from "../audio/resample.ts";
import { encodeWav } from "../audio/wav.ts";
import { readTokenizedData, sequenceTokens } from "../data/tokenized.ts";
import { decodeSequence } from "../data/vocab.ts";
import { openTokenizerDir } from "../tokenizers/mod.ts";
import type {
  EvalCurvePoint,
  EvaluateReportData,
  MetricRow,
  ReportClip,
  ReportSound,
  Spectrogram,
  TrainCurvePoint,
} from "../report/types.ts";
import type { GenerationFigures } from "./generation.ts";
import type { Evaluation } from "./mod.ts";

/** Seconds of each clip shown and played (longer clips are cut). */
export const REPORT_CLIP_SECONDS = 3;

/** The training curves and the kept step, from a train artifact. */
export async function readCurves(modelDir: string): Promise<EvaluateReportData["curves"]> {
  const train: TrainCurvePoint[] = [];
  const evals: EvalCurvePoint[] = [];
  let text = "";
  try {
    text = await Deno.readTextFile(join(modelDir, "curves.jsonl"));
  } catch {
    // A train artifact without curves still evaluates; the charts say "no data".
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    if (r.kind === "train") {
      train.push({
        step: r.step,
        loss: r.loss,
        token_accuracy: r.token_accuracy,
        lr: r.lr,
        grad_norm: r.grad_norm,
      });
    } else if (r.kind === "eval") {
      evals.push({ step: r.step, val_loss: r.val_loss, val_token_accuracy: r.val_token_accuracy });
    }
  }
  let best_step = 0;
  try {
    best_step = JSON.parse(await Deno.readTextFile(join(modelDir, "metrics.json"))).best_step ?? 0;
  } catch {
    best_step = 0;
  }
  return { train, eval: evals, best_step };
}

/** The metrics table: each model figure beside the baselines a skeptic would use. */
export function metricRows(e: Evaluation): MetricRow[] {
  const rows: MetricRow[] = [];
  for (const split of ["test", "val"] as const) {
    const s = e.splits[split];
    if (!s) continue;
    const b = s.baselines;
    const name = split === "test" ? "test" : "validation";
    rows.push(
      {
        label: `${name} loss (nats/token)`,
        name: `${split}_loss`,
        model: s.model.loss,
        better: "lower",
        format: "nats",
        baselines: [
          { name: "bigram", value: b.bigram.loss },
          { name: "unigram", value: b.unigram.loss },
          { name: "uniform", value: b.uniform.loss },
        ],
      },
      {
        label: `${name} loss on audio tokens`,
        name: `${split}_audio_loss`,
        model: s.model.by_kind.audio.loss,
        better: "lower",
        format: "nats",
        baselines: [
          { name: "bigram", value: b.bigram.by_kind.audio.loss },
          { name: "unigram", value: b.unigram.by_kind.audio.loss },
          { name: "uniform", value: b.uniform.by_kind.audio.loss },
        ],
      },
      {
        label: `${name} token accuracy`,
        name: `${split}_token_accuracy`,
        model: s.model.token_accuracy,
        better: "higher",
        format: "percent",
        baselines: [
          { name: "bigram", value: b.bigram.token_accuracy },
          { name: "unigram", value: b.unigram.token_accuracy },
          { name: "repeat previous", value: b.repeat_previous.token_accuracy },
        ],
      },
      {
        label: `${name} category accuracy`,
        name: `${split}_category_accuracy`,
        model: s.category.category_accuracy,
        better: "higher",
        format: "percent",
        baselines: [
          ...(s.category_baselines.bigram !== undefined
            ? [{ name: "bigram", value: s.category_baselines.bigram }]
            : []),
          { name: "majority class", value: s.category_baselines.majority_class },
          { name: "chance", value: s.category_baselines.chance },
        ],
      },
      {
        label: `${name} category top-3 accuracy`,
        name: `${split}_category_top3_accuracy`,
        model: s.category.category_top3_accuracy,
        better: "higher",
        format: "percent",
        baselines: [{
          name: "chance",
          value: Math.min(1, 3 * s.category_baselines.chance),
        }],
      },
      {
        label: `${name} macro-F1`,
        name: `${split}_macro_f1`,
        model: s.category.macro_f1,
        better: "higher",
        format: "number",
        baselines: [],
      },
    );
    if (split === "test") rows.push(...unseenRows(s));
  }
  return rows;
}

/**
 * The test figures again without the test sequences that occur token for
 * token in the train split, each beside the baselines on the same targets.
 */
function unseenRows(s: NonNullable<Evaluation["splits"]["test"]>): MetricRow[] {
  const u = s.unseen;
  const b = u.baselines;
  const on = `the ${u.sequences} test sequences not in the train split`;
  return [
    {
      label:
        `test sequences that occur token for token in the train split (${u.in_train} of ${s.sequences})`,
      name: "test_sequences_in_train",
      model: u.share_in_train,
      better: "lower",
      format: "percent",
      baselines: [],
    },
    {
      label: `test loss on ${on} (nats/token)`,
      name: "test_unseen_loss",
      model: u.model.loss,
      better: "lower",
      format: "nats",
      baselines: [
        { name: "bigram", value: b.bigram.loss },
        { name: "unigram", value: b.unigram.loss },
        { name: "uniform", value: b.uniform.loss },
      ],
    },
    {
      label: `test token accuracy on ${on}`,
      name: "test_unseen_token_accuracy",
      model: u.model.token_accuracy,
      better: "higher",
      format: "percent",
      baselines: [
        { name: "bigram", value: b.bigram.token_accuracy },
        { name: "unigram", value: b.unigram.token_accuracy },
        { name: "repeat previous", value: b.repeat_previous.token_accuracy },
      ],
    },
    {
      label: `test category accuracy on ${on}`,
      name: "test_unseen_category_accuracy",
      model: u.category_accuracy,
      better: "higher",
      format: "percent",
      baselines: [
        ...(u.category_baselines.bigram !== undefined
          ? [{ name: "bigram", value: u.category_baselines.bigram }]
          : []),
        { name: "majority class", value: u.category_baselines.majority_class ?? null },
        { name: "chance", value: s.category_baselines.chance },
      ],
    },
  ];
}

/**
 * The generation rows, each beside the same figure on real test clips (not
 * chance). Seed layout: a sample is kept when the model names the category
 * asked for, so "recognised" is the judge agreeing with the model's own
 * label, and its reference is the judge agreeing with the model's category
 * prediction on the test clips. Label-first: the category is in the prompt,
 * and the reference is the judge's accuracy on the test clips.
 */
export function generationRows(g: GenerationFigures): MetricRow[] {
  const seed = g.layout === "seed";
  return [
    {
      label: seed
        ? "generated samples the independent judge names as the category the model named for them " +
          "(the model names a category after the audio; a sample is kept when it is the one asked for)"
        : "generated samples the independent judge names as the category in their prompt",
      name: "generation_recognised",
      model: g.recognised,
      better: "higher",
      format: "percent",
      baselines: [
        ...(seed
          ? [{ name: "test clips: judge = model's category", value: g.judge_model_agreement }]
          : []),
        { name: "test clips: judge = true category", value: g.judge_test_accuracy },
        ...(g.judge_reconstruction_accuracy !== null
          ? [{
            name: "rebuilt test clips: judge = true category",
            value: g.judge_reconstruction_accuracy,
          }]
          : []),
      ],
    },
    {
      label: "generated samples whose audio codes copy a train clip's" +
        (g.recognised_not_copies !== null
          ? ` (the others recognised: ${(100 * g.recognised_not_copies).toFixed(1)}%)`
          : ""),
      name: "generation_copies_of_train",
      model: g.copies_of_train,
      better: "lower",
      format: "percent",
      baselines: [{ name: "test clips: copies of train", value: g.test_copies_of_train }],
    },
  ];
}

function spectrogramOf(samples: Float32Array, mel: MelSettings): Spectrogram {
  const { frames, data } = logMelSpectrogram(samples, mel);
  // Natural log of power → dB.
  return {
    frames,
    bins: mel.n_mels,
    data: Array.from(data, (x) => x * 10 / Math.LN10),
    frame_seconds: mel.hop_length / mel.sample_rate,
  };
}

/** A playable sound for the report: its spectrogram and a peak-normalised 16-bit WAV. */
export function sound(label: string, samples: Float32Array, mel: MelSettings): ReportSound {
  let peak = 0;
  for (const x of samples) peak = Math.max(peak, Math.abs(x));
  // Players get a normalised copy (Griffin-Lim output has an arbitrary level).
  const gain = peak > 0 ? 0.9 / peak : 1;
  const scaled = samples.map((x) => x * gain);
  return {
    label,
    spectrogram: spectrogramOf(samples, mel),
    wav: encodeWav([scaled], mel.sample_rate, { bits: 16 }),
  };
}

/**
 * The first `perCategory` test clips of each category (by path): the original
 * (decoded, mono, at the tokenizer's rate, cut to {@link REPORT_CLIP_SECONDS})
 * and its token reconstruction. `audioRoot`: the folder the scan's file paths
 * are relative to (lib/data/scan_source.ts).
 */
export async function reportClips(
  tokensDir: string,
  audioRoot: string,
  perCategory: number,
  log?: (m: string) => void,
): Promise<ReportClip[]> {
  if (perCategory <= 0) return [];
  const data = await readTokenizedData(tokensDir);
  const root = audioRoot;
  const { tokenizer } = await openTokenizerDir(tokensDir);
  try {
    const settings = JSON.parse(await Deno.readTextFile(join(tokensDir, "tokenizer.json")));
    const mel: MelSettings = settings.kind === "mel-vq"
      ? { ...DEFAULT_MEL, ...pickMel(settings) }
      : { ...DEFAULT_MEL, sample_rate: tokenizer.sampleRate };
    const clips: ReportClip[] = [];
    for (const category of data.vocab.categories) {
      const picks = data.sequences
        .map((s, i) => ({ s, i }))
        .filter(({ s }) => s.split === "test" && s.category === category)
        .sort((a, b) => a.s.path < b.s.path ? -1 : 1)
        .slice(0, perCategory);
      for (const { s, i } of picks) {
        const audio = await decodeAudioFile(join(root, s.path));
        let samples = await resample(
          toMono(audio.channels),
          audio.sampleRate,
          tokenizer.sampleRate,
        );
        const maxSamples = REPORT_CLIP_SECONDS * tokenizer.sampleRate;
        if (samples.length > maxSamples) samples = samples.slice(0, maxSamples);
        const { codes } = decodeSequence(data.vocab, sequenceTokens(data, i));
        const frames = Math.ceil(REPORT_CLIP_SECONDS * mel.sample_rate / mel.hop_length);
        const rebuilt = await tokenizer.decode(Uint32Array.from(codes.slice(0, frames)));
        clips.push({
          category,
          path: s.path,
          sounds: [
            sound("original", samples, mel),
            sound(`from its ${codes.length} tokens`, rebuilt, mel),
          ],
        });
        log?.(`report: ${s.path}`);
      }
    }
    return clips;
  } finally {
    await tokenizer.close();
  }
}

function pickMel(s: Record<string, unknown>): Partial<MelSettings> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_MEL)) if (k in s) out[k] = s[k];
  return out as Partial<MelSettings>;
}
