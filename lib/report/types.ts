/**
 * What the evaluate report (`report.html`) shows: the contract between the
 * evaluate job (which measures) and the report renderer (which draws). Every
 * field is plain data, so the renderer can inline it as JSON.
 *
 * @module
 */

/** One training-curve point (from train's `curves.jsonl`, kind "train"). */
export interface TrainCurvePoint {
  step: number;
  loss: number;
  token_accuracy: number;
  lr: number;
  grad_norm: number;
}

/** One evaluation point (from train's `curves.jsonl`, kind "eval"). */
export interface EvalCurvePoint {
  step: number;
  val_loss: number;
  val_token_accuracy: number;
}

/** A row of the metrics table: the model's figure beside its baselines. */
export interface MetricRow {
  /** Human label, e.g. "test loss (nats/token)". */
  label: string;
  /** The stable metrics.json name, e.g. "test.loss". */
  name: string;
  /** The model's value; null when not applicable. */
  model: number | null;
  /** Which direction is better. */
  better: "lower" | "higher";
  /** How to print: "nats" (3 decimals), "percent" (x100, 1 decimal), "number" (4 significant). */
  format: "nats" | "percent" | "number";
  /** Baselines on the same split and targets, e.g. { name: "bigram", value: 2.44 }. */
  baselines: { name: string; value: number | null }[];
}

/** A spectrogram: `[frames, bins]` row-major log-magnitude (dB or log-mel), low bins first. */
export interface Spectrogram {
  frames: number;
  bins: number;
  /** frames x bins values, row-major (frame-major). */
  data: number[];
  /** Seconds per frame (hop / sample rate). */
  frame_seconds: number;
}

/** One playable sound with its picture. */
export interface ReportSound {
  /** Caption, e.g. "original" or "token reconstruction" or "generated #3". */
  label: string;
  spectrogram: Spectrogram;
  /** A complete WAV file (16-bit PCM), inlined in the page as a data: URL. */
  wav: Uint8Array;
}

/** A clip from the test split: its original and its reconstruction from tokens. */
export interface ReportClip {
  category: string;
  /** Path relative to the data root, for the caption. */
  path: string;
  sounds: ReportSound[];
}

/** Everything the report shows. */
export interface EvaluateReportData {
  /** Page title, e.g. "SamOut evaluation — train.yaml". */
  title: string;
  /** Short facts shown at the top: [label, value] pairs (model sizes, data, split counts, artifact keys). */
  facts: [string, string][];
  curves: {
    train: TrainCurvePoint[];
    eval: EvalCurvePoint[];
    /** The step whose weights were kept (lowest validation loss). */
    best_step: number;
  };
  /** The metrics table against baselines (test split first, then validation). */
  table: MetricRow[];
  /** Category confusion on the test split: matrix[true][predicted] counts. Null when not measured. */
  confusion: { categories: string[]; matrix: number[][] } | null;
  /** Test clips per category: original and token reconstruction. */
  clips: ReportClip[];
  /** Generated samples per category, when generation exists; empty otherwise. */
  generated: ReportClip[];
}
