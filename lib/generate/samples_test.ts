import { assertEquals } from "../../tests/assert.ts";
import { MAX_ROUND_ROWS, roundRows } from "./samples.ts";

Deno.test("roundRows: one category of seven draws as many rows as all seven at that count", () => {
  // `generate --category explosion --count 4` on a 7-category model: 56 rows a round, not 8.
  assertEquals(roundRows([4], 7), 56);
  assertEquals(roundRows([4, 4, 4, 4, 4, 4, 4], 7), 56);
  // The evaluate job's 16 per category of 7: 224 rows, as before this rule.
  assertEquals(roundRows(Array(7).fill(16), 7), 224);
});

Deno.test("roundRows: at least 8 rows, at most MAX_ROUND_ROWS", () => {
  assertEquals(roundRows([1], 2), 8);
  assertEquals(roundRows([], 7), 8);
  assertEquals(roundRows([100], 50), MAX_ROUND_ROWS);
});
