/**
 * The token batches the export's self-check runs, taken from real data (the
 * tokenize artifact's test split; validation, then train, where a split is
 * empty):
 *
 * - `sequences`: up to `rows` sequences spread over the length range
 *   (longest, …, shortest), each clipped to the model's maximum positions,
 *   padded to the longest; the step model runs this batch token by token;
 * - `long`: one row (two when `sequences` has one) of the pool's sequences
 *   concatenated and clipped to the maximum positions, so the running
 *   maximum's last doubling step and the last position rows are exercised,
 *   at a batch size and length other than the first batch's (dynamic shapes).
 *
 * @module
 */
import type { TokenizedData } from "../data/tokenized.ts";
import { sequenceTokens } from "../data/tokenized.ts";
import type { SamOutConfig } from "../model/config.ts";
import type { CheckBatch } from "./check.ts";

function padded(name: string, rows: Uint32Array[], step: boolean): CheckBatch {
  const length = Math.max(...rows.map((r) => r.length));
  const tokens = new Int32Array(rows.length * length);
  rows.forEach((r, i) => tokens.set(r, i * length));
  return { name, rows: rows.length, length, tokens, step };
}

/** The check batches (see the module doc); `rows` >= 1. */
export function checkBatchesFrom(
  data: TokenizedData,
  config: SamOutConfig,
  rows: number,
): CheckBatch[] {
  const P = config.maxPositions;
  const indices = (split: string) =>
    data.sequences.map((s, i) => ({ s, i })).filter(({ s }) => s.split === split).map(({ i }) => i);
  let pool = indices("test");
  if (pool.length === 0) pool = indices("val");
  if (pool.length === 0) pool = data.sequences.map((_, i) => i);
  const byLength = [...pool].sort((a, b) =>
    data.sequences[b].length - data.sequences[a].length || a - b
  );
  const n = Math.min(rows, byLength.length);
  const chosen: Uint32Array[] = [];
  for (let k = 0; k < n; k++) {
    const at = n === 1 ? 0 : Math.round((k * (byLength.length - 1)) / (n - 1));
    chosen.push(sequenceTokens(data, byLength[at]).subarray(0, P));
  }
  const concatenated: number[] = [];
  for (const i of pool) {
    if (concatenated.length >= P) break;
    concatenated.push(...sequenceTokens(data, i).subarray(0, P - concatenated.length));
  }
  const long = Uint32Array.from(concatenated);
  return [
    padded("sequences", chosen, true),
    padded("long", chosen.length === 1 ? [long, long] : [long], false),
  ];
}
