import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { UserError } from "../../errors/mod.ts";
import { planEmbeddingGradient } from "./embedding_plan.ts";

Deno.test("planEmbeddingGradient lists distinct non-padding tokens ascending with their rows ascending", () => {
  const ids = new Int32Array([5, 0, 2, 5, 5, 0, 9, 2]);
  const plan = planEmbeddingGradient(ids, 10);
  assertEquals(Array.from(plan.tokens), [2, 5, 9]);
  assertEquals(Array.from(plan.offsets), [0, 2, 5, 6]);
  assertEquals(Array.from(plan.positions), [2, 7, 0, 3, 4, 6]);
});

Deno.test("planEmbeddingGradient of an all-padding batch is empty", () => {
  const plan = planEmbeddingGradient(new Int32Array([0, 0, 0]), 4);
  assertEquals(plan.tokens.length, 0);
  assertEquals(Array.from(plan.offsets), [0]);
  assertEquals(plan.positions.length, 0);
});

Deno.test("planEmbeddingGradient rejects an id outside the vocabulary with a UserError", () => {
  for (const bad of [7, -1]) {
    const err = assertThrows(() => planEmbeddingGradient(new Int32Array([1, bad, 2]), 7));
    if (!(err instanceof UserError)) throw new Error(`expected a UserError, got ${err}`);
    assertEquals(err.location.field, "token ids");
    assertEquals(err.expected, "an integer id in [0, 7)");
    assertEquals(err.found, String(bad));
  }
});
