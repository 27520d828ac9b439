import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { headSize, type SamOutConfig, validateConfig } from "./config.ts";

const good: SamOutConfig = { vocabSize: 100, hidden: 512, heads: 8, layers: 8, maxPositions: 1024 };

Deno.test("validateConfig accepts the reference configuration", () => {
  assertEquals(validateConfig(good), good);
  assertEquals(headSize(good), 64);
});

Deno.test("validateConfig names the field of a bad size", () => {
  const cases: [Partial<SamOutConfig>, string][] = [
    [{ vocabSize: 1 }, "vocabSize"],
    [{ hidden: 0 }, "hidden"],
    [{ layers: 2.5 }, "layers"],
    [{ maxPositions: -1 }, "maxPositions"],
    [{ heads: 0 }, "heads"],
  ];
  for (const [patch, field] of cases) {
    const e = assertThrows(() => validateConfig({ ...good, ...patch }, { fieldPrefix: "model" }));
    assert(e instanceof UserError, `${field}: expected a UserError`);
    assertEquals(e.location.field, `model.${field}`);
  }
});

Deno.test("validateConfig rejects a hidden size that the heads do not divide", () => {
  const e = assertThrows(() => validateConfig({ ...good, heads: 6 }, { file: "p.yaml" }));
  assert(e instanceof UserError);
  assertEquals(e.location, { file: "p.yaml", step: undefined, field: "heads" });
  assertEquals(e.expected, "a divisor of hidden = 512");
});
