import { assert, assertEquals } from "../../tests/assert.ts";
import { buildVocabulary, encodeSequence, type Layout } from "../data/vocab.ts";
import { requestGpu } from "../gpu/device.ts";
import { Random } from "../random/mod.ts";
import { SamOutInference } from "../model/inference.ts";
import { initParameters } from "../model/params.ts";
import { samoutForward } from "../model/reference.ts";
import { categoryScores } from "./categories.ts";

const CATEGORIES = ["bird", "door", "laser"];
const CODEBOOK = 29;

/** Clips of awkward, different lengths (one empty). */
function clips(seed: number): number[][] {
  const rng = new Random(seed, "categories_test");
  return [7, 1, 12, 0, 9].map((n) => Array.from({ length: n }, () => rng.int(CODEBOOK)));
}

/** The float64 reference's log-softmax of `logits` row `t` at `id`. */
function logProb(logits: Float64Array, V: number, t: number, id: number): number {
  const row = logits.subarray(t * V, (t + 1) * V);
  const max = Math.max(...row);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  return row[id] - max - Math.log(sum);
}

for (const layout of ["seed", "label-first"] as Layout[]) {
  Deno.test(`categoryScores (${layout}): the reference's scores, and a clip's scores do not depend on its batch`, async () => {
    const vocab = buildVocabulary(CATEGORIES, CODEBOOK, layout);
    const V = vocab.code_offset + vocab.codebook_size;
    const cfg = { vocabSize: V, hidden: 24, heads: 4, layers: 2, maxPositions: 20 };
    const weights = initParameters(cfg, 3);
    const gpu = await requestGpu();
    // Batches of 2: the five clips run in three batches of different lengths.
    const model = await SamOutInference.create(gpu, { config: cfg, maxBatch: 2, maxLength: 20 });
    try {
      model.uploadWeights(weights);
      const all = clips(1);
      const scores = await categoryScores(model, vocab, all);
      assertEquals(scores.length, all.length);
      for (const [i, codes] of all.entries()) {
        const expected = CATEGORIES.map((name, c) => {
          const seq = Int32Array.from(encodeSequence(vocab, name, codes));
          const { logits } = samoutForward(weights, cfg, seq, 1, seq.length);
          if (layout === "seed") {
            // The logit of category c after the last audio token.
            return logits[(seq.length - 3) * V + vocab.category_offset + c];
          }
          let sum = 0;
          for (let t = 1; t < seq.length - 1; t++) sum += logProb(logits, V, t, seq[t + 1]);
          return sum;
        });
        for (let c = 0; c < CATEGORIES.length; c++) {
          const err = Math.abs(scores[i][c] - expected[c]);
          assert(
            err < 1e-4 * Math.max(1, Math.abs(expected[c])),
            `clip ${i} (${codes.length} codes), ${CATEGORIES[c]}: ${
              scores[i][c]
            } against the reference's ${expected[c]}`,
          );
        }
        const alone = await categoryScores(model, vocab, [codes]);
        assertEquals(
          new Uint32Array(alone[0].buffer),
          new Uint32Array(scores[i].buffer),
          `clip ${i} alone and in its batch`,
        );
      }
    } finally {
      model.destroy();
    }
  });
}
