/**
 * A step's flat metrics: the top-level scalars of its artifact's
 * `metrics.json` (numbers, strings, booleans, null), which run records carry
 * so that listing, gating and diffing runs never re-read artifacts. Nested
 * figures (per-split tables, confusion matrices) stay in the artifact.
 *
 * @module
 */

/** Metric name -> value. */
export type FlatMetrics = Record<string, number | string | boolean | null>;

/** The scalars of a metrics object, in its key order. */
export function flattenMetrics(metrics: unknown): FlatMetrics {
  const out: FlatMetrics = {};
  if (metrics === null || typeof metrics !== "object" || Array.isArray(metrics)) return out;
  for (const [k, v] of Object.entries(metrics as Record<string, unknown>)) {
    if (v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
      out[k] = v;
    }
  }
  return out;
}

/** The flat metrics of the artifact in `dir`; empty when it has no readable `metrics.json`. */
export function readFlatMetrics(dir: string): FlatMetrics {
  try {
    return flattenMetrics(JSON.parse(Deno.readTextFileSync(`${dir}/metrics.json`)));
  } catch {
    return {};
  }
}
