/**
 * Comparing figures between two runs or artifacts: which way is better for a
 * metric, and each metric's change.
 *
 * @module
 */
import type { FlatMetrics } from "../pipeline/metrics.ts";

/** Which way a metric improves; undefined when it has no direction (counts, timings, baselines). */
export type Direction = "lower" | "higher" | undefined;

/**
 * The direction of a metric from its name: losses, perplexities and errors
 * go down; accuracies, F1, recognition rates and gains over a baseline go up.
 * Baselines' own figures (uniform_, unigram_, bigram_, chance_, majority_,
 * repeat_previous_), the generation judge's, the splits' overlap with train
 * and everything else have none; copies of train go down.
 */
export function metricDirection(name: string): Direction {
  if (/^(uniform|unigram|bigram|chance|majority|repeat_previous|code)_/.test(name)) {
    return undefined;
  }
  // The judge's own figures are references for generation_recognised, and a split's overlap with
  // train describes the data, not the model.
  if (/^generation_judge_|_sequences_in_train$/.test(name)) return undefined;
  if (/(^|_)copies_of_train$/.test(name)) return "lower";
  if (/_vs_/.test(name)) return "higher";
  if (/(^|_)(accuracy|f1|recognised|usage)($|_)/.test(name)) return "higher";
  if (/(^|_)(loss|perplexity|lsd_db|error)($|_)/.test(name)) return "lower";
  return undefined;
}

/** One metric in two runs. */
export interface MetricChange {
  step: string;
  name: string;
  a: number | string | boolean | null | undefined;
  b: number | string | boolean | null | undefined;
  /** b - a, for two numbers. */
  change?: number;
  /** (b - a) / |a|, for two numbers with a != 0. */
  relative?: number;
  /** From {@link metricDirection}: "better", "worse", "same", or undefined without a direction. */
  verdict?: "better" | "worse" | "same";
}

/**
 * Every metric of the steps in `a` and `b` (step -> flat metrics): those
 * that differ, or all of them with `all`. Steps in one side only are compared
 * against nothing.
 */
export function diffMetrics(
  a: Record<string, FlatMetrics>,
  b: Record<string, FlatMetrics>,
  all = false,
): MetricChange[] {
  const out: MetricChange[] = [];
  const steps = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  for (const step of steps) {
    const ma = a[step] ?? {}, mb = b[step] ?? {};
    for (const name of [...new Set([...Object.keys(ma), ...Object.keys(mb)])]) {
      const va = ma[name], vb = mb[name];
      const c: MetricChange = { step, name, a: va, b: vb };
      if (typeof va === "number" && typeof vb === "number") {
        c.change = vb - va;
        if (va !== 0) c.relative = (vb - va) / Math.abs(va);
        const dir = metricDirection(name);
        if (dir) {
          c.verdict = vb === va ? "same" : (dir === "lower") === (vb < va) ? "better" : "worse";
        }
      }
      if (all || va !== vb) out.push(c);
    }
  }
  return out;
}

/** Compact number: integers as they are, others to 4 significant digits; strings as they are. */
export function fmt(x: unknown): string {
  if (x === undefined) return "—";
  if (x === null) return "null";
  if (typeof x === "number") {
    if (!Number.isFinite(x)) return String(x);
    if (Number.isInteger(x)) return String(x);
    return Number(x.toPrecision(4)).toString();
  }
  return String(x);
}

/** A signed change: `+0.012`, `-3`. */
export function fmtChange(x: number | undefined): string {
  if (x === undefined) return "";
  return `${x > 0 ? "+" : ""}${fmt(x)}`;
}

/** A signed percentage: `+1.2%`. */
export function fmtRelative(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "";
  return `${x > 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;
}
