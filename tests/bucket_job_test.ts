import { join } from "node:path";
import { BucketParams, job as bucketJob } from "../jobs/bucket.ts";
import { job as tokenizeJob, TokenizeParams } from "../jobs/tokenize.ts";
import { readBucketedData } from "../lib/data/bucket.ts";
import { readTokenizedData } from "../lib/data/tokenized.ts";
import { UserError } from "../lib/errors/mod.ts";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import {
  type ClipSpec,
  fakeRef,
  makeScannedFolder,
  readFlatDir,
  runJob,
  testContext,
} from "./tokenize_helpers.ts";

const CLIPS: ClipSpec[] = ["hiss", "hum", "ping"].flatMap((category, c) =>
  [0, 1, 2, 3].map((i) => ({ category, seconds: 0.1 + 0.07 * i + 0.03 * c, hz: 250 * (c + 1) }))
);

/** One tokenize run shared by the tests below (GPU k-means once). */
let shared: Promise<{ dir: string; tokens: string }> | undefined;
/** Its folder, removed when the test module's process ends. */
let sharedDir: string | undefined;
globalThis.addEventListener("unload", () => {
  if (sharedDir) Deno.removeSync(sharedDir, { recursive: true });
});
function tokenizedOnce(): Promise<{ dir: string; tokens: string }> {
  shared ??= (async () => {
    const dir = sharedDir = await Deno.makeTempDir({ prefix: "samout-bucket-test-" });
    const scan = await makeScannedFolder(dir, CLIPS);
    const tokens = join(dir, "tokens");
    const params = TokenizeParams.parse({
      codebook_size: 8,
      kmeans_iterations: 5,
      reconstruction_files: 0,
    });
    await runJob(tokenizeJob, testContext("tokenize", params, { scan }, tokens, 5));
    return { dir, tokens };
  })();
  return shared;
}

async function runBucket(params: Record<string, unknown>, outName: string, seed = 5) {
  const { dir, tokens } = await tokenizedOnce();
  const out = join(dir, outName);
  const ctx = testContext(
    "bucket",
    BucketParams.parse(params),
    { tokens: fakeRef(tokens, "tokenize") },
    out,
    seed,
  );
  return { out, result: await runJob(bucketJob, ctx) };
}

Deno.test("bucket: batches hold exactly the tokenize artifact's sequences, split for split", async () => {
  const { tokens } = await tokenizedOnce();
  const { out, result } = await runBucket({ batch_size: 4 }, "plain");
  const src = await readTokenizedData(tokens);
  const data = await readBucketedData(out, { maxPositions: 1024 });
  assertEquals(data.vocab, src.vocab);
  for (const split of ["train", "val"] as const) {
    const want = src.sequences.flatMap((s) =>
      s.split === split ? [src.tokens.subarray(s.offset, s.offset + s.length).join(",")] : []
    ).sort();
    const got = data[split].flatMap((b) =>
      Array.from({ length: b.rows }, (_, r) => {
        const row = Array.from(b.tokens.subarray(r * b.length, (r + 1) * b.length));
        while (row[row.length - 1] === 0) row.pop();
        return row.join(",");
      })
    ).sort();
    assertEquals(got, want, `${split} sequences`);
    assert(data[split].every((b) => b.rows <= 4), "batch_size 4");
  }
  const m = result.metrics!;
  assertEquals(m.sequences, 12);
  assertEquals(m.truncated, 0);
  assert((m.padding_efficiency as number) > 0.8, `padding efficiency ${m.padding_efficiency}`);
  const train = m.train as Record<string, number>;
  assert(train.padding_efficiency >= train.padding_efficiency_unsorted);
});

Deno.test("bucket: same seed, same bytes", async () => {
  const a = await runBucket({ batch_size: 3 }, "det-a", 9);
  const b = await runBucket({ batch_size: 3 }, "det-b", 9);
  const fa = await readFlatDir(a.out), fb = await readFlatDir(b.out);
  assertEquals([...fa.keys()], [
    "batches.json",
    "sequences.json",
    "test.tokens",
    "train.tokens",
    "val.tokens",
    "vocab.json",
  ]);
  for (const [name, bytes] of fa) assertEquals(bytes, fb.get(name), name);
});

Deno.test("bucket: overlong sequences are truncated (or dropped) and listed in metrics", async () => {
  const { tokens } = await tokenizedOnce();
  const src = await readTokenizedData(tokens);
  const maxLength = 30;
  const long = src.sequences.filter((s) => s.length > maxLength).map((s) => s.path);
  assert(
    long.length > 0 && long.length < src.sequences.length,
    "the fixture needs some long clips",
  );
  const t = await runBucket({ max_length: maxLength }, "trunc");
  assertEquals(t.result.metrics!.truncated, long.length);
  assertEquals(t.result.metrics!.truncated_paths, long);
  const data = await readBucketedData(t.out);
  assertEquals(data.maxLength, maxLength);
  for (const b of [...data.train, ...data.val]) {
    for (let r = 0; r < b.rows; r++) {
      const row = Array.from(b.tokens.subarray(r * b.length, (r + 1) * b.length));
      while (row[row.length - 1] === 0) row.pop();
      assertEquals(row[row.length - 1], 2, "every row still ends with <|im_end|>");
      assert(row[row.length - 2] >= 4 && row[row.length - 2] < 7, "…preceded by its category");
    }
  }
  const d = await runBucket({ max_length: 40, overflow: "drop" }, "drop");
  const dropped = src.sequences.filter((s) => s.length > 40).map((s) => s.path);
  assertEquals(d.result.metrics!.dropped_paths, dropped);
  assertEquals(d.result.metrics!.sequences, src.sequences.length - dropped.length);
});

Deno.test("bucket: bad parameters are clear errors", async () => {
  const e = await assertRejects(() => runBucket({ max_length: 3 }, "bad"), "leaves no room");
  assert(e instanceof UserError);
  assertEquals(e.location.field, "steps.bucket.params.max_length");
  assertEquals(e.location.step, "bucket");
  const empty = await assertRejects(
    () => runBucket({ max_length: 5, overflow: "drop" }, "bad2"),
    "a split is empty",
  );
  assert(empty instanceof UserError);
  assert(!BucketParams.safeParse({ batch_size: 0 }).success, "batch_size 0");
  assert(!BucketParams.safeParse({ max_len: 10 }).success, "unknown key");
  // A model shorter than the data: the train job's reader refuses with a hint.
  const { out } = await runBucket({}, "ok");
  const short = await assertRejects(() => readBucketedData(out, { maxPositions: 8 }), "positions");
  assertEquals((short as UserError).location.field, "max_length");
});
