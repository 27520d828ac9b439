import { join } from "node:path";
import { assertEquals } from "../../tests/assert.ts";
import { TINY, writeTinyArtifacts } from "../../tests/export_fixture.ts";
import { readTokenizedData, sequenceTokens } from "../data/tokenized.ts";
import { checkBatchesFrom } from "./check_batches.ts";

Deno.test("checkBatchesFrom: test sequences spread over the lengths, clipped to P; a long row of another shape", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { tokensDir } = await writeTinyArtifacts(join(root, "in"));
    const data = await readTokenizedData(tokensDir);
    const test = data.sequences.map((s, i) => ({ s, i })).filter(({ s }) => s.split === "test");
    // test lengths 26 (clipped to P = 20), 20, 13, 6, 3: three rows take the longest, the middle and the shortest
    const [rows, long] = checkBatchesFrom(data, TINY, 3);
    assertEquals([rows.name, rows.rows, rows.length, rows.step], ["sequences", 3, 20, true]);
    const row = (r: number) => Array.from(rows.tokens.subarray(r * 20, (r + 1) * 20));
    const seq = (k: number) => Array.from(sequenceTokens(data, test[k].i));
    assertEquals(row(0), seq(0).slice(0, 20));
    assertEquals(row(1), [...seq(2), ...new Array(7).fill(0)]);
    assertEquals(row(2), [...seq(4), ...new Array(17).fill(0)]);
    assertEquals([long.name, long.rows, long.length, long.step], ["long", 1, 20, false]);
    // one row asked for: the long batch takes two rows, so the batch sizes still differ
    const [one, two] = checkBatchesFrom(data, TINY, 1);
    assertEquals([one.rows, two.rows], [1, 2]);
    // more rows than test sequences: every test sequence, once
    assertEquals(checkBatchesFrom(data, TINY, 9)[0].rows, 5);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
