import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import {
  buildVocabulary,
  checkVocabulary,
  decodeSequence,
  encodeSequence,
  vocabularySize,
} from "./vocab.ts";

Deno.test("buildVocabulary: specials, then sorted categories, then codes", () => {
  const v = buildVocabulary(["dog", "cat", "bird"], 5, "seed");
  assertEquals(v.tokens, [
    "<|pad|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|wav|>",
    "bird",
    "cat",
    "dog",
    "0",
    "1",
    "2",
    "3",
    "4",
  ]);
  assertEquals([v.category_offset, v.code_offset, vocabularySize(v)], [4, 7, 12]);
  assertEquals(v.categories, ["bird", "cat", "dog"]);
});

Deno.test("seed layout: <|im_start|> audio… <category> <|im_end|>, and back", () => {
  const v = buildVocabulary(["dog", "cat"], 10, "seed");
  const ids = encodeSequence(v, "dog", [3, 0, 9]);
  assertEquals(ids, [1, 6 + 3, 6 + 0, 6 + 9, 5, 2]);
  assertEquals(decodeSequence(v, ids), { category: "dog", codes: [3, 0, 9] });
});

Deno.test("label-first layout: <|im_start|> <category> <|wav|> audio… <|im_end|>, and back", () => {
  const v = buildVocabulary(["dog", "cat"], 10, "label-first");
  const ids = encodeSequence(v, "cat", new Uint32Array([7, 7, 1]));
  assertEquals(ids, [1, 4, 3, 13, 13, 7, 2]);
  assertEquals(decodeSequence(v, ids), { category: "cat", codes: [7, 7, 1] });
});

Deno.test("decodeSequence skips padding and tolerates a missing category", () => {
  const v = buildVocabulary(["a", "b"], 4, "seed");
  assertEquals(decodeSequence(v, [1, 6, 7, 2, 0, 0]), { codes: [0, 1] });
  assertThrows(() => decodeSequence(v, [1, 10]), "not in [0, 10)");
});

Deno.test("encodeSequence rejects unknown categories and out-of-range codes", () => {
  const v = buildVocabulary(["a"], 4, "seed");
  assert(
    assertThrows(() => encodeSequence(v, "zebra", [1]), "unknown category") instanceof UserError,
  );
  assertThrows(() => encodeSequence(v, "a", [4]), "not in [0, 4)");
});

Deno.test("category names that collide with tokens are UserErrors naming the name", () => {
  for (const [name, why] of [["123", "digits-only"], ["<|pad|>", "special"], ["", "empty"]]) {
    const e = assertThrows(
      () => buildVocabulary(["ok", name], 8, "seed", { file: "files.json" }),
      why,
    );
    assert(e instanceof UserError);
    assertEquals(e.location.file, "files.json");
    assert(e.message.includes(JSON.stringify(name)), e.message);
  }
  assertThrows(() => buildVocabulary(["x", "x"], 8, "seed"), "twice");
  // Digits mixed with letters are fine.
  assertEquals(buildVocabulary(["7up", "a1"], 2, "seed").categories, ["7up", "a1"]);
});

Deno.test("checkVocabulary accepts a round-tripped vocabulary and rejects an edited one", () => {
  const v = buildVocabulary(["a", "b"], 3, "label-first");
  assertEquals(checkVocabulary(JSON.parse(JSON.stringify(v)), "vocab.json"), v);
  const edited = { ...v, code_offset: 5 };
  assertThrows(() => checkVocabulary(edited, "vocab.json"), "do not match");
});
