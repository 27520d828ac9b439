/**
 * SamOut model sizes (see docs/SAMOUT.md, "Sizes") and their validation.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** The sizes that fix a SamOut model. */
export interface SamOutConfig {
  /** `V`: vocabulary size, token id 0 is padding. */
  vocabSize: number;
  /** `d`: hidden size. */
  hidden: number;
  /** `H`: heads; only the scale `sqrt(d / H)` depends on it. */
  heads: number;
  /** `L`: decoder layers. */
  layers: number;
  /** `P`: maximum sequence length (rows of the position table). */
  maxPositions: number;
}

/** SAMOUT.md's default maximum positions. */
export const DEFAULT_MAX_POSITIONS = 1024;

/** Where a config came from, for error messages. */
export interface ConfigSource {
  /** The file the sizes were read from. */
  file?: string;
  /** The pipeline step being validated. */
  step?: string;
  /** Prefix for field paths, e.g. `steps.train.params.model`. */
  fieldPrefix?: string;
}

const LIMITS: Record<keyof SamOutConfig, [number, number]> = {
  vocabSize: [2, 1 << 24],
  hidden: [1, 1 << 16],
  heads: [1, 1 << 16],
  layers: [1, 1024],
  maxPositions: [1, 1 << 24],
};

/**
 * Checks every size is an integer in range and `hidden % heads == 0`; returns a
 * copy of the config. Throws a `UserError` naming the offending field.
 */
export function validateConfig(cfg: SamOutConfig, source: ConfigSource = {}): SamOutConfig {
  const field = (name: string) => source.fieldPrefix ? `${source.fieldPrefix}.${name}` : name;
  for (const key of Object.keys(LIMITS) as (keyof SamOutConfig)[]) {
    const value = (cfg as unknown as Record<string, unknown>)[key];
    const [lo, hi] = LIMITS[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < lo || value > hi) {
      throw new UserError(`invalid model size ${key}`, {
        file: source.file,
        step: source.step,
        field: field(key),
        expected: `an integer from ${lo} to ${hi}`,
        found: String(value),
      });
    }
  }
  if (cfg.hidden % cfg.heads !== 0) {
    throw new UserError("the hidden size must be a multiple of the head count", {
      file: source.file,
      step: source.step,
      field: field("heads"),
      expected: `a divisor of hidden = ${cfg.hidden}`,
      found: String(cfg.heads),
    });
  }
  return {
    vocabSize: cfg.vocabSize,
    hidden: cfg.hidden,
    heads: cfg.heads,
    layers: cfg.layers,
    maxPositions: cfg.maxPositions,
  };
}

/** Head size `hs = d / H`. */
export function headSize(cfg: SamOutConfig): number {
  return cfg.hidden / cfg.heads;
}
