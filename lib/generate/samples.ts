/**
 * Sounds from a trained model: prompts for the model's layout, batched
 * generation, the category each sample is of, and its audio through the
 * tokenizer's way back. Used by `deno task generate` and the evaluate job.
 *
 * - label-first layout: the prompt is `<|im_start|> <category> <|wav|>`, so
 *   a sample is of the category asked for;
 * - seed layout (category after the audio): the model cannot be told the
 *   category up front; it generates audio and then names the category
 *   itself. When categories are asked for, samples are drawn in rounds (each
 *   round's seed is `seed + round`, each round {@link roundRows} rows) and kept when
 *   the model names the category asked for ("named" in the output), up to
 *   {@link MAX_ROUNDS}.
 *
 * @module
 */
import type { Vocabulary } from "../data/types.ts";
import type { Gpu } from "../gpu/device.ts";
import type { SamOutConfig } from "../model/config.ts";
import {
  type GenerateBackend,
  generateOnCpu,
  generateOnGpu,
  type GenerateRequest,
  readGenerated,
  type SamplingSettings,
} from "./mod.ts";

/** Rounds of generate-and-keep for a seed-layout model asked for categories. */
export const MAX_ROUNDS = 8;

/** Most rows a seed-layout round draws at once. */
export const MAX_ROUND_ROWS = 512;

/**
 * Rows each seed-layout round draws for a request: twice the largest count
 * asked for one category times the number of categories the model can
 * name (a model that names every category equally often would then fill the
 * request in about half a round), at least 8, at most {@link MAX_ROUND_ROWS}.
 * Asking for one category of many draws as many rows as asking for all of
 * them the same number of times.
 */
export function roundRows(need: Iterable<number>, categories: number): number {
  const most = Math.max(0, ...need);
  return Math.min(MAX_ROUND_ROWS, Math.max(8, 2 * most * categories));
}

/** One generated sample. */
export interface GeneratedSample {
  /** The category asked for (undefined: unconditional). */
  requested?: string;
  /** The sample's category: the prompt's (label-first) or the one the model named (seed). */
  category?: string;
  /** "prompt": the category was in the prompt; "named": the model named it after the audio. */
  category_source: "prompt" | "named" | "none";
  /** Prompt + generated token ids. */
  tokens: number[];
  /** Audio codes (tokenizer codes, not token ids). */
  codes: number[];
  /** True when the sequence reached `<|im_end|>` within the length limit. */
  ended: boolean;
  /** Seed and row of the generator that drew it. */
  seed: number;
  row: number;
}

/** What to generate. */
export interface SampleRequest {
  config: SamOutConfig;
  weights: Map<string, Float32Array>;
  vocab: Vocabulary;
  /** Categories to generate, one entry per sample; or a count of unconditional samples. */
  want: string[] | number;
  settings: SamplingSettings;
  /** Most tokens per sequence, prompt included (default: the model's max positions). */
  maxLength?: number;
  backend: GenerateBackend;
  gpu?: Gpu;
}

/** Generates samples (see the module doc); deterministic for a seed, backend and adapter. */
export async function generateSamples(req: SampleRequest): Promise<GeneratedSample[]> {
  const { vocab } = req;
  const maxLength = Math.min(req.maxLength ?? req.config.maxPositions, req.config.maxPositions);
  const labelFirst = vocab.layout === "label-first";
  const wanted = typeof req.want === "number" ? undefined : req.want;
  for (const c of wanted ?? []) {
    if (!vocab.categories.includes(c)) {
      throw new RangeError(`generateSamples: unknown category ${c}`);
    }
  }
  const run = async (prompts: Int32Array[], seed: number) => {
    const g: GenerateRequest = {
      config: req.config,
      weights: req.weights,
      prompts,
      maxNewTokens: Math.max(1, maxLength - prompts[0].length),
      settings: { ...req.settings, seed },
      endId: vocab.im_end_id,
    };
    return req.backend === "gpu" ? await generateOnGpu(req.gpu!, g) : generateOnCpu(g);
  };
  const toSample = (
    prompt: Int32Array,
    generated: Int32Array,
    seed: number,
    row: number,
    requested: string | undefined,
  ): GeneratedSample => {
    const read = readGenerated(vocab, prompt, generated);
    return {
      requested,
      category: labelFirst ? requested : read.category,
      category_source: labelFirst && requested ? "prompt" : read.category ? "named" : "none",
      tokens: [...prompt, ...generated],
      codes: read.codes,
      ended: read.ended,
      seed,
      row,
    };
  };
  if (labelFirst && wanted) {
    const prompts = wanted.map((c) =>
      Int32Array.from([
        vocab.im_start_id,
        vocab.category_offset + vocab.categories.indexOf(c),
        vocab.wav_id,
      ])
    );
    const out = await run(prompts, req.settings.seed);
    return out.map((g, r) => toSample(prompts[r], g, req.settings.seed, r, wanted[r]));
  }
  const count = wanted ? wanted.length : req.want as number;
  const prompt = Int32Array.from([vocab.im_start_id]);
  if (!wanted) {
    const out = await run(Array.from({ length: count }, () => prompt), req.settings.seed);
    return out.map((g, r) => toSample(prompt, g, req.settings.seed, r, undefined));
  }
  // Seed layout, categories asked for: keep the samples the model names as asked.
  const need = new Map<string, number>();
  for (const c of wanted) need.set(c, (need.get(c) ?? 0) + 1);
  const kept: GeneratedSample[] = [];
  const rows = roundRows(need.values(), vocab.categories.length);
  for (let round = 0; round < MAX_ROUNDS && [...need.values()].some((n) => n > 0); round++) {
    const seed = (req.settings.seed + round) >>> 0;
    const out = await run(Array.from({ length: rows }, () => prompt), seed);
    out.forEach((g, r) => {
      const s = toSample(prompt, g, seed, r, undefined);
      if (s.category && s.ended && (need.get(s.category) ?? 0) > 0) {
        need.set(s.category, need.get(s.category)! - 1);
        kept.push({ ...s, requested: s.category });
      }
    });
  }
  // Order as asked; categories the model never named in time are missing (the caller reports it).
  const order = new Map<string, GeneratedSample[]>();
  for (const s of kept) order.set(s.category!, [...(order.get(s.category!) ?? []), s]);
  const result: GeneratedSample[] = [];
  for (const c of wanted) {
    const s = order.get(c)?.shift();
    if (s) result.push(s);
  }
  return result;
}
