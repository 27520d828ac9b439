import { join } from "node:path";
import { assert, assertEquals } from "../../tests/assert.ts";
import { bucketTokenizedData, writeBucketedData } from "../data/bucket.ts";
import type { SequenceRecord, TokenizedData } from "../data/tokenized.ts";
import { buildVocabulary, encodeSequence } from "../data/vocab.ts";
import type { Split } from "../data/split.ts";
import { initParameters } from "../model/params.ts";
import { samoutForward } from "../model/reference.ts";
import { samoutToSafetensors } from "../model/safetensors.ts";
import { Random } from "../random/mod.ts";
import { evaluateModel } from "./mod.ts";
import { evaluationMetrics } from "./summary.ts";

const CATEGORIES = ["bird", "door", "laser"];
const CODEBOOK = 13;

Deno.test("evaluateModel: test sequences copied from train are counted and left out of the unseen figures, which match the float64 reference", async () => {
  const vocab = buildVocabulary(CATEGORIES, CODEBOOK, "seed");
  const rng = new Random(5, "evaluate/mod_test");
  const clip = (n: number) => Array.from({ length: n }, () => rng.int(CODEBOOK));
  const train = [3, 7, 4, 9, 5, 6].map((n, i) => ({ category: CATEGORIES[i % 3], codes: clip(n) }));
  const test = [
    train[1], // copied token for token
    { category: "bird", codes: train[2].codes }, // train[2]'s audio (a laser) as a bird: not a copy
    train[4], // copied
    { category: "bird", codes: clip(8) },
    { category: "door", codes: clip(2) },
  ];
  const unseen = [test[1], test[3], test[4]];
  const sequences: SequenceRecord[] = [];
  const parts: number[][] = [];
  let offset = 0;
  const add = (split: Split) => (c: { category: string; codes: number[] }, i: number) => {
    const ids = encodeSequence(vocab, c.category, c.codes);
    sequences.push({
      path: `${split}/${i}.wav`,
      category: c.category,
      sha256: "0".repeat(64),
      split,
      offset,
      length: ids.length,
    });
    parts.push(ids);
    offset += ids.length;
  };
  train.forEach(add("train"));
  test.forEach(add("test"));
  const data: TokenizedData = { vocab, sequences, tokens: Uint32Array.from(parts.flat()) };
  const V = vocab.code_offset + vocab.codebook_size;
  const cfg = { vocabSize: V, hidden: 16, heads: 2, layers: 2, maxPositions: 16 };
  const params = initParameters(cfg, 11);
  const dir = await Deno.makeTempDir({ prefix: "evaluate_mod_test_" });
  try {
    await Deno.mkdir(join(dir, "data"));
    await writeBucketedData(
      join(dir, "data"),
      bucketTokenizedData(data, {
        batchSize: 2,
        maxLength: 16,
        overflow: "truncate",
        shuffle: false,
        seed: 1,
      }),
    );
    await Deno.mkdir(join(dir, "model"));
    await Deno.writeFile(join(dir, "model", "best.safetensors"), samoutToSafetensors(cfg, params));
    const e = await evaluateModel({
      modelDir: join(dir, "model"),
      dataDir: join(dir, "data"),
      splits: ["test"],
    });
    const metrics = evaluationMetrics(e);

    // The float64 reference on the sequences left, and the bigram (add-0.1, fitted on train).
    let loss = 0, hits = 0, n = 0, catHits = 0, bigramLoss = 0;
    const pair = new Map<string, number>(), from = new Map<number, number>();
    for (const c of train) {
      const row = encodeSequence(vocab, c.category, c.codes);
      for (let t = 0; t + 1 < row.length; t++) {
        pair.set(`${row[t]},${row[t + 1]}`, (pair.get(`${row[t]},${row[t + 1]}`) ?? 0) + 1);
        from.set(row[t], (from.get(row[t]) ?? 0) + 1);
      }
    }
    const predicted = new Map<string, string>();
    for (const c of test) {
      const row = encodeSequence(vocab, c.category, c.codes);
      const input = Int32Array.from(row.slice(0, -1));
      const { logits } = samoutForward(params, cfg, input, 1, input.length);
      const cat = (t: number) =>
        CATEGORIES[
          [0, 1, 2].reduce((a, b) =>
            logits[t * V + vocab.category_offset + b] > logits[t * V + vocab.category_offset + a]
              ? b
              : a
          )
        ];
      predicted.set(c.codes.join(","), cat(row.length - 3));
      if (!unseen.includes(c)) continue;
      if (cat(row.length - 3) === c.category) catHits++;
      for (let t = 0; t < input.length; t++) {
        const z = logits.subarray(t * V, (t + 1) * V);
        const max = Math.max(...z);
        const lse = max + Math.log(z.reduce((a, x) => a + Math.exp(x - max), 0));
        loss += lse - z[row[t + 1]];
        hits += z.indexOf(max) === row[t + 1] ? 1 : 0;
        n++;
        bigramLoss -= Math.log(
          ((pair.get(`${row[t]},${row[t + 1]}`) ?? 0) + 0.1) /
            ((from.get(row[t]) ?? 0) + 0.1 * (V - 1)),
        );
      }
    }
    const close = (name: string, expected: number, tol: number) =>
      assert(
        typeof metrics[name] === "number" && Math.abs(metrics[name] as number - expected) <= tol,
        `${name}: ${metrics[name]}, expected ${expected}`,
      );
    close("test_sequences_in_train", 2 / 5, 0);
    close("test_unseen_loss", loss / n, 1e-4);
    close("test_unseen_token_accuracy", hits / n, 1e-9);
    close("test_unseen_category_accuracy", catHits / unseen.length, 1e-9);
    close("bigram_test_unseen_loss", bigramLoss / n, 1e-9);
    const u = e.splits.test!.unseen;
    assertEquals([u.in_train, u.sequences, u.model.tokens], [2, 3, n]);
    // Each test clip's codes with the category the model names for it (generation's reference).
    const predictions = e.splits.test!.predictions;
    assertEquals(predictions.length, test.length);
    for (const p of predictions) {
      assertEquals(p.predicted, predicted.get(p.codes.join(",")), `clip ${p.codes}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
