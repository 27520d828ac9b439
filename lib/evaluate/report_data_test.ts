import { assertEquals } from "../../tests/assert.ts";
import type { GenerationFigures } from "./generation.ts";
import { generationRows } from "./report_data.ts";

const figures: GenerationFigures = {
  recognised: 0.955,
  requested: 112,
  produced: 112,
  by_category: {},
  judge_test_accuracy: 0.991,
  judge_reconstruction_accuracy: null,
  judge_model_agreement: 0.974,
  judge_model_compared: 425,
  copies_of_train: 18 / 112,
  test_copies_of_train: 40 / 425,
  recognised_not_copies: 0.957,
  judge_space: "codebook log-mel",
  mean_frames: 20,
  test_mean_frames: 21,
  settings: { temperature: 0.7, topK: 0, topP: 0.9, seed: 1 },
  layout: "seed",
};

Deno.test("generationRows: a seed-layout sample is compared with the judge agreeing with the model on test clips, never chance", () => {
  const [recognised, copies] = generationRows(figures);
  assertEquals(recognised.name, "generation_recognised");
  assertEquals(recognised.baselines, [
    { name: "test clips: judge = model's category", value: 0.974 },
    { name: "test clips: judge = true category", value: 0.991 },
  ]);
  assertEquals([copies.name, copies.model, copies.better], [
    "generation_copies_of_train",
    18 / 112,
    "lower",
  ]);
  assertEquals(copies.baselines, [{ name: "test clips: copies of train", value: 40 / 425 }]);
});

Deno.test("generationRows: a label-first sample is compared with the judge's accuracy on test clips (and rebuilt ones)", () => {
  const [recognised] = generationRows({
    ...figures,
    layout: "label-first",
    judge_reconstruction_accuracy: 0.8,
  });
  assertEquals(recognised.baselines, [
    { name: "test clips: judge = true category", value: 0.991 },
    { name: "rebuilt test clips: judge = true category", value: 0.8 },
  ]);
});
