import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { buildVocabulary, encodeSequence } from "../data/vocab.ts";
import { occursIn, type ScoredSequence, sequenceKey, unseenFigures } from "./metrics.ts";

const vocab = buildVocabulary(["a", "b"], 5, "seed");

Deno.test("occursIn: only a sequence with the same ids and length counts as in the reference", () => {
  const train = [encodeSequence(vocab, "a", [1, 2, 3]), encodeSequence(vocab, "b", [4, 4])];
  const rows = [
    encodeSequence(vocab, "a", [1, 2, 3]), // a copy
    encodeSequence(vocab, "b", [1, 2, 3]), // the same audio, another category
    encodeSequence(vocab, "a", [1, 2]), // a prefix of the audio
    Uint32Array.from(encodeSequence(vocab, "b", [4, 4])), // a copy in another array type
  ];
  assertEquals(occursIn(train, rows), [true, false, false, true]);
  assertEquals(sequenceKey([12, 3]) === sequenceKey([1, 23]), false, "keys keep ids apart");
});

/** A scored sequence whose every target has loss `nll` and the given hits. */
function scored(category: string, codes: number[], nll: number, hits: number[]): ScoredSequence {
  const tokens = encodeSequence(vocab, category, codes);
  return { category, tokens, nll: tokens.slice(1).map(() => nll), hit: hits };
}

Deno.test("unseenFigures: the split's figures without its sequences that occur in train", () => {
  // Three test sequences; the first copies a train sequence. Targets: 5, 6 and 4.
  const model = [
    scored("a", [1, 2, 3], 0.1, [1, 1, 1, 1, 1]),
    scored("b", [1, 2, 3, 4], 1.0, [1, 0, 0, 0, 1, 1]),
    scored("a", [0, 0], 2.0, [0, 0, 1, 1]),
  ];
  const bigram = model.map((s, i) => ({
    ...s,
    nll: Array.from(s.nll, () => 3 + i),
    hit: Array.from(s.hit, () => 0),
  }));
  const truth = [0, 1, 0];
  const ranking = [[0, 1], [0, 1], [0, 1]]; // right, wrong, right
  const u = unseenFigures(
    vocab,
    model,
    { bigram: { scored: bigram, hasLoss: true }, repeat: { scored: bigram, hasLoss: false } },
    truth,
    ranking,
    [true, false, false],
    { majority_class: [[1], [1], [1]] },
  );
  assertEquals([u.share_in_train, u.in_train, u.sequences], [1 / 3, 1, 2]);
  // 6 targets at 1.0 and 4 at 2.0; 3 + 2 hits.
  assertAlmostEquals(u.model.loss!, (6 * 1 + 4 * 2) / 10, 1e-12);
  assertEquals([u.model.tokens, u.model.token_accuracy], [10, 5 / 10]);
  assertAlmostEquals(u.baselines.bigram.loss!, (6 * 4 + 4 * 5) / 10, 1e-12);
  assertEquals(u.baselines.repeat.loss, null, "a baseline without loss keeps none");
  assertEquals(u.category_accuracy, 1 / 2);
  assertEquals(u.category_baselines, { majority_class: 1 / 2 });
});

Deno.test("unseenFigures: when every sequence occurs in train, nothing is left to measure", () => {
  const model = [scored("a", [1], 0.5, [1, 1, 1])];
  const u = unseenFigures(vocab, model, {}, [0], [[0, 1]], [true], { majority_class: [[0]] });
  assertEquals([u.share_in_train, u.sequences, u.model.loss, u.model.token_accuracy], [
    1,
    0,
    null,
    null,
  ]);
  assertEquals([u.category_accuracy, u.category_baselines.majority_class], [null, null]);
});
