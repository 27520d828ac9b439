import { assert, assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import { headlineLines } from "./summary.ts";

const common = {
  reported_split: "test",
  test_loss: 1.676,
  bigram_test_loss: 2.08,
  test_sequences_in_train: 40 / 425,
  test_unseen_loss: 1.7004,
  bigram_test_unseen_loss: 2.0999,
  test_unseen_token_accuracy: 0.4523,
  test_unseen_category_accuracy: 0.9792,
  generation_recognised: 0.955,
  generation_judge_test_accuracy: 0.991,
  generation_judge_reconstruction_accuracy: null,
  generation_judge_model_agreement: 0.974,
  generation_copies_of_train: 18 / 112,
  generation: { test_copies_of_train: 40 / 425 },
};

Deno.test("headlineLines: the figures without test copies of train, beside the bigram on the same targets", () => {
  const line = headlineLines({ ...common, layout: "seed" }).find((l) =>
    l.startsWith("test sequences")
  );
  assertEquals(
    line,
    "test sequences also in the train split 9.4%; on the others: loss 1.700 vs bigram 2.100, token accuracy 45.2%, category accuracy 97.9%",
  );
});

Deno.test("headlineLines: seed-layout generation is compared with the judge agreeing with the model on test clips, not chance", () => {
  const lines = headlineLines({ ...common, layout: "seed", chance_category_accuracy: 1 / 7 });
  const gen = lines.filter((l) => l.startsWith("generated samples"));
  assertEquals(gen, [
    "generated samples recognised as the category the model named 95.5% by an independent judge (on test clips it agrees with the model's category 97.4% and with the true one 99.1%)",
    "generated samples that copy a train clip 16.1% (test clips 9.4%)",
  ]);
});

Deno.test("headlineLines: label-first generation is compared with the judge's accuracy on test clips", () => {
  const gen = headlineLines({
    ...common,
    layout: "label-first",
    generation_judge_reconstruction_accuracy: 0.8,
  }).filter((l) => l.startsWith("generated samples"));
  assertStringIncludes(gen[0], "recognised as their prompt's category 95.5%");
  assertStringIncludes(gen[0], "it recognises 99.1% of test clips, 80.0% rebuilt from tokens");
  assert(!gen[0].includes("model's category"), gen[0]);
});
