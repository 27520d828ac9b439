/**
 * Host side of the embedding gradient: which batch rows hold each distinct
 * token, so the GPU can sum `dEm[token]` over those rows in a fixed order
 * without atomics.
 *
 * @module
 */
import { UserError } from "../../errors/mod.ts";

/**
 * A CSR list of the rows of each distinct non-padding token of a batch:
 * token `tokens[k]` occurs at rows `positions[offsets[k] .. offsets[k+1])`.
 */
export interface EmbeddingGradientPlan {
  /** Distinct token ids other than 0 (padding), ascending, `[n]`. */
  tokens: Uint32Array<ArrayBuffer>;
  /** `[n + 1]`, `offsets[0] = 0`, `offsets[n]` = number of non-padding rows. */
  offsets: Uint32Array<ArrayBuffer>;
  /** Row indices `b*S + t`, grouped by token, ascending within a token. */
  positions: Uint32Array<ArrayBuffer>;
}

/**
 * Builds the {@link EmbeddingGradientPlan} of a batch's input ids `[B*S]`
 * (a counting sort, O(B*S + V)). Throws a `UserError` for an id outside
 * `[0, V)`: the data does not match the model's vocabulary.
 */
export function planEmbeddingGradient(ids: Int32Array, V: number): EmbeddingGradientPlan {
  if (!Number.isInteger(V) || V < 1) {
    throw new RangeError(`planEmbeddingGradient: V = ${V}, expected a positive integer`);
  }
  const counts = new Uint32Array(V);
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (!(id >= 0 && id < V)) {
      throw new UserError(`token id ${id} at batch row ${r} is outside the model's vocabulary`, {
        field: "token ids",
        expected: `an integer id in [0, ${V})`,
        found: String(id),
        hint: "train on data tokenized with the vocabulary the model was built for",
      });
    }
    counts[id]++;
  }
  let n = 0;
  for (let v = 1; v < V; v++) if (counts[v] > 0) n++;
  const tokens = new Uint32Array(n);
  const offsets = new Uint32Array(n + 1);
  // start[v]: next free slot of token v in `positions`.
  const start = new Uint32Array(V);
  let k = 0;
  let total = 0;
  for (let v = 1; v < V; v++) {
    if (counts[v] === 0) continue;
    tokens[k] = v;
    offsets[k] = total;
    start[v] = total;
    total += counts[v];
    k++;
  }
  offsets[n] = total;
  const positions = new Uint32Array(total);
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (id !== 0) positions[start[id]++] = r;
  }
  return { tokens, offsets, positions };
}
