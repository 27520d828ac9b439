/**
 * The model as a classifier: a score for each category of a clip, higher
 * meaning likelier. The evaluate job ranks these scores for its category
 * accuracy and `classify` turns them into probabilities, so both predict the
 * category the same way:
 *
 * - seed layout (`<|im_start|> audio <category> <|im_end|>`): the logits of the
 *   category tokens after the clip's last audio token, the model's own guess
 *   of the token that comes next;
 * - label-first layout (`<|im_start|> <category> <|wav|> audio <|im_end|>`):
 *   each category's prompt in turn, scored by minus the loss of everything
 *   after the category token (`<|wav|>`, the audio tokens, `<|im_end|>`), the
 *   clip's log-likelihood under that category.
 *
 * A row's result does not depend on the other rows of its batch (no op mixes
 * rows, and padding comes after every position read), so clips may be
 * batched in any way.
 *
 * @module
 */
import { padBatch } from "../data/bucket.ts";
import type { Vocabulary } from "../data/types.ts";
import { encodeSequence } from "../data/vocab.ts";
import type { SamOutInference } from "../model/inference.ts";

/** How {@link categoryScores} predicts the category, per layout (evaluation.json's `category_method`). */
export function categoryMethod(vocab: Vocabulary): string {
  return vocab.layout === "seed"
    ? "argmax over the category tokens at the position before the category token"
    : "likelihood: the category whose prompt gives the clip's audio tokens the lowest loss";
}

/**
 * Every clip's score for each category, `[clips][C]` (see the module doc).
 * `clips` are the clips' audio codes (codebook indices, not token ids), each
 * short enough that its sequence fits the model's `maxLength`.
 */
export async function categoryScores(
  model: SamOutInference,
  vocab: Vocabulary,
  clips: readonly (Uint32Array | readonly number[])[],
): Promise<Float64Array[]> {
  const C = vocab.categories.length;
  const V = model.config.vocabSize;
  const scores = clips.map(() => new Float64Array(C));
  const chunk = Math.min(model.maxBatch, model.maxPicks);
  for (let first = 0; first < clips.length; first += chunk) {
    const codes = clips.slice(first, first + chunk);
    if (vocab.layout === "seed") {
      // The sequence up to the last audio token: the category token comes next.
      const rows = codes.map((c) => {
        const full = encodeSequence(vocab, vocab.categories[0], c);
        return full.slice(0, full.length - 2);
      });
      const logits = await model.logitsAt(
        padBatch(rows),
        rows.map((r, row) => ({ row, position: r.length - 1 })),
      );
      rows.forEach((_, i) => {
        const at = i * V + vocab.category_offset;
        scores[first + i].set(logits.subarray(at, at + C));
      });
      continue;
    }
    for (let c = 0; c < C; c++) {
      const rows = codes.map((codes) => encodeSequence(vocab, vocab.categories[c], codes));
      const batch = padBatch(rows);
      const s = await model.score(batch);
      const S = batch.length - 1;
      rows.forEach((r, i) => {
        // Targets after the category token (position 1): <|wav|>, the audio, <|im_end|>.
        let sum = 0;
        for (let t = 1; t < r.length - 1; t++) sum += s.nll[i * S + t];
        scores[first + i][c] = -sum;
      });
    }
  }
  return scores;
}
