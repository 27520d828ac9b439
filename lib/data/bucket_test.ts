import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import {
  bucketBySequenceLength,
  bucketTokenizedData,
  fitToLength,
  paddingEfficiency,
  readBucketedData,
  summariseLengths,
  writeBucketedData,
} from "./bucket.ts";
import type { SequenceRecord, TokenizedData } from "./tokenized.ts";
import { buildVocabulary, decodeSequence, encodeSequence } from "./vocab.ts";

/** A tokenize artifact in memory: `lengths[i]` audio codes, alternating categories, every 4th val. */
function tokenized(
  lengths: number[],
  layout: "seed" | "label-first" = "seed",
  codebookSize = 8,
): TokenizedData {
  const vocab = buildVocabulary(["a", "b"], codebookSize, layout);
  const sequences: SequenceRecord[] = [];
  const parts: number[][] = [];
  let offset = 0;
  lengths.forEach((n, i) => {
    const ids = encodeSequence(
      vocab,
      i % 2 ? "b" : "a",
      Array.from({ length: n }, (_, t) => (i + t) % codebookSize),
    );
    sequences.push({
      path: `f${i}.wav`,
      category: i % 2 ? "b" : "a",
      sha256: "0".repeat(64),
      split: i % 4 === 3 ? "val" : "train",
      offset,
      length: ids.length,
    });
    parts.push(ids);
    offset += ids.length;
  });
  return { vocab, sequences, tokens: Uint32Array.from(parts.flat()) };
}

const opts = {
  batchSize: 3,
  maxLength: 64,
  overflow: "truncate" as const,
  shuffle: false,
  seed: 1,
};

Deno.test("fitToLength keeps the framing: seed keeps <category> <|im_end|>, label-first its prefix", () => {
  const seed = buildVocabulary(["a", "b"], 8, "seed");
  const ids = Uint32Array.from(encodeSequence(seed, "b", [1, 2, 3, 4, 5]));
  const cut = fitToLength(ids, seed, 6);
  assertEquals(Array.from(cut), [1, 6 + 1, 6 + 2, 6 + 3, 5, 2]);
  assertEquals(decodeSequence(seed, cut), { category: "b", codes: [1, 2, 3] });
  const lf = buildVocabulary(["a", "b"], 8, "label-first");
  const ids2 = Uint32Array.from(encodeSequence(lf, "a", [1, 2, 3, 4, 5]));
  assertEquals(Array.from(fitToLength(ids2, lf, 6)), [1, 4, 3, 7, 8, 2]);
  assert(fitToLength(ids2, lf, 100) === ids2, "a fitting sequence is returned as is");
  assertThrows(() => fitToLength(ids2, lf, 4), "maxLength 4 < 5");
});

Deno.test("bucketBySequenceLength sorts by length and cuts batches in order", () => {
  const lengths = [5, 1, 9, 3, 3, 7, 2];
  assertEquals(bucketBySequenceLength(lengths, 3), [[1, 6, 3], [4, 0, 5], [2]]);
  // A tie key reorders equal lengths only.
  assertEquals(bucketBySequenceLength(lengths, 3, [0, 0, 0, 9, 1, 0, 0]), [[1, 6, 4], [3, 0, 5], [
    2,
  ]]);
  assertEquals(paddingEfficiency(lengths, [[1, 6, 3], [4, 0, 5], [2]]), 30 / (9 + 21 + 9));
  assertEquals(paddingEfficiency([], []), 1);
});

Deno.test("each batch is padded with 0 only to its own longest row", () => {
  const data = tokenized([4, 30, 5, 2, 6, 29, 3, 31, 1, 4]);
  const r = bucketTokenizedData(data, opts);
  for (const split of [r.train, r.val]) {
    split.batches.forEach((b, k) => {
      const lens = split.members[k].map((i) => r.sequences[i].length);
      assertEquals(b.length, Math.max(...lens), `batch ${k} length`);
      split.members[k].forEach((i, row) => {
        const rowIds = b.tokens.subarray(row * b.length, (row + 1) * b.length);
        assertEquals(Array.from(rowIds.subarray(0, lens[row])), Array.from(r.tokens[i]));
        assert(rowIds.subarray(lens[row]).every((v) => v === 0), "padding must be 0");
      });
    });
  }
  assert(r.train.efficiency > r.train.efficiencyUnsorted, "sorting by length should pad less");
  assertEquals(r.val.members.flat().map((i) => r.sequences[i].split), ["val", "val"]);
});

Deno.test("overlong sequences are truncated or dropped, and reported by path", () => {
  const data = tokenized([4, 30, 5, 2, 6, 29, 3, 31, 1, 4]);
  const t = bucketTokenizedData(data, { ...opts, maxLength: 20 });
  assertEquals(t.truncated, ["f1.wav", "f5.wav", "f7.wav"]);
  assertEquals(t.sequences.length, 10);
  assertEquals(t.sequences[1].length, 20);
  assertEquals(t.sequences[1].original_length, 33);
  const d = bucketTokenizedData(data, { ...opts, maxLength: 20, overflow: "drop" });
  assertEquals(d.dropped, ["f1.wav", "f5.wav", "f7.wav"]);
  assertEquals(d.sequences.map((s) => s.path), [0, 2, 3, 4, 6, 8, 9].map((i) => `f${i}.wav`));
});

Deno.test("shuffle_within_buckets is seeded: same seed same batches, equal lengths mixed", () => {
  const data = tokenized(Array(24).fill(5));
  const a = bucketTokenizedData(data, { ...opts, shuffle: true, seed: 1 });
  const b = bucketTokenizedData(data, { ...opts, shuffle: true, seed: 1 });
  const c = bucketTokenizedData(data, { ...opts, shuffle: true, seed: 2 });
  assertEquals(a.train.members, b.train.members);
  assert(JSON.stringify(a.train.members) !== JSON.stringify(c.train.members), "seed 2 differs");
  const plain = bucketTokenizedData(data, opts);
  assertEquals(plain.train.members[0], [0, 1, 2], "without shuffling, ties keep file order");
});

Deno.test("write → readBucketedData round trip, uint16 and uint32 token files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [k, dtype] of [[8, "uint16"], [70000, "uint32"]] as const) {
      const data = tokenized([4, 30, 5, 2, 6, 29, 3, 31, 1, 4], "label-first", k);
      const r = bucketTokenizedData(data, opts);
      const index = await writeBucketedData(dir, r);
      assertEquals(index.dtype, dtype);
      const back = await readBucketedData(dir);
      assertEquals(back.vocab, data.vocab);
      assertEquals(back.train, r.train.batches);
      assertEquals(back.val, r.val.batches);
      assertEquals(back.maxLength, 35);
      const bytes = (await Deno.stat(join(dir, "train.tokens"))).size;
      const slots = r.train.batches.reduce((n, b) => n + b.rows * b.length, 0);
      assertEquals(bytes, slots * (dtype === "uint16" ? 2 : 4));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readBucketedData: longer than the model's positions, or damaged files, are UserErrors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeBucketedData(dir, bucketTokenizedData(tokenized([4, 30, 5, 2, 6, 29, 3]), opts));
    const e = await assertRejects(
      () => readBucketedData(dir, { maxPositions: 16 }),
      "16 positions",
    );
    assert(e instanceof UserError);
    assertEquals(e.location.field, "max_length");
    assert((e.hint ?? "").includes("max_length"), "the hint names the bucket parameter");
    await readBucketedData(dir, { maxPositions: 33 });

    const train = join(dir, "train.tokens");
    const bytes = await Deno.readFile(train);
    await Deno.writeFile(train, bytes.subarray(0, bytes.length - 2));
    const short = await assertRejects(() => readBucketedData(dir), "shorter than batches.json");
    assertEquals((short as UserError).location.file, train);
    const bad = bytes.slice();
    bad[0] = 0xff;
    bad[1] = 0xff;
    await Deno.writeFile(train, bad);
    await assertRejects(() => readBucketedData(dir), "outside the vocabulary");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("summariseLengths gives quantiles and a power-of-two histogram", () => {
  const s = summariseLengths([10, 70, 70, 200, 1000]);
  assertEquals([s.count, s.min, s.p50, s.max], [5, 10, 70, 1000]);
  assertEquals(s.histogram, { "<=64": 1, "<=128": 2, "<=256": 1, "<=1024": 1 });
});
