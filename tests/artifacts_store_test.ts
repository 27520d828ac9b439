import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { LocalArtifactStore, type ManifestBits, sha256Hex } from "../lib/artifacts/mod.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { holdLockElsewhere } from "./fixtures/lock_holder.ts";
import { UserError } from "../lib/errors/mod.ts";

const KEY = "a".repeat(64);
const BITS: ManifestBits = {
  job: "write_text",
  job_version: "1",
  code_hash: "c".repeat(64),
  step: "s",
  params: { text: "x" },
  inputs: {},
  sources: {},
  started_at: "2026-01-01T00:00:00.000Z",
  finished_at: "2026-01-01T00:00:01.000Z",
  environment: { deno: "test" },
};

async function publish(store: LocalArtifactStore, key = KEY, text = "hello") {
  const release = await store.lock(key);
  try {
    const staging = await store.begin(key);
    await Deno.mkdir(join(staging.dir, "sub"));
    await Deno.writeTextFile(join(staging.dir, "sub", "a.txt"), text);
    return await store.commit(staging, BITS, { loss: 1.5 });
  } finally {
    release();
  }
}

Deno.test("commit publishes files with sizes and SHA-256 in the manifest, plus metrics.json", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const ref = await publish(store);
  assertEquals(ref.dir, join(dir.path, "objects", KEY));
  assertEquals(ref.manifest.files.map((f) => f.path), ["metrics.json", "sub/a.txt"]);
  const a = ref.manifest.files[1];
  assertEquals(a.size, 5);
  assertEquals(a.sha256, await sha256Hex("hello"));
  assertEquals(JSON.parse(await Deno.readTextFile(join(ref.dir, "metrics.json"))), { loss: 1.5 });
  const again = await store.get(KEY);
  assertEquals(again?.manifest, ref.manifest);
  assertEquals([...Deno.readDirSync(join(dir.path, "tmp"))], [], "no staging left behind");
});

Deno.test("an objects/ dir without a valid manifest is not trusted and is replaced on publish", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  await Deno.mkdir(join(dir.path, "objects", KEY), { recursive: true });
  await Deno.writeTextFile(join(dir.path, "objects", KEY, "half.txt"), "x");
  assertEquals(await store.has(KEY), false);
  await Deno.writeTextFile(join(dir.path, "objects", KEY, "manifest.json"), '{"key": "other"}');
  assertEquals(await store.get(KEY), undefined, "a manifest naming another key is not trusted");
  const ref = await publish(store);
  assertEquals(await store.has(KEY), true);
  assertEquals(ref.manifest.files.map((f) => f.path), ["metrics.json", "sub/a.txt"]);
});

Deno.test("begin removes stale staging dirs of the same key; workDir goes away on publish", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const stale = join(dir.path, "tmp", `${KEY}.99999.dead`);
  await Deno.mkdir(stale, { recursive: true });
  const other = join(dir.path, "tmp", `${"b".repeat(64)}.99999.dead`);
  await Deno.mkdir(other, { recursive: true });
  const work = await store.workDir(KEY);
  await Deno.writeTextFile(join(work, "ckpt"), "1");
  await publish(store);
  const left = [...Deno.readDirSync(join(dir.path, "tmp"))].map((e) => e.name);
  assertEquals(left, [`${"b".repeat(64)}.99999.dead`], "only the other key's staging survives");
  let workExists = true;
  try {
    Deno.statSync(work);
  } catch {
    workExists = false;
  }
  assertEquals(workExists, false);
});

Deno.test("lock(key) is exclusive until released", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const release = await store.lock(KEY);
  let second = false;
  const p = store.lock(KEY).then((r) => {
    second = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 150));
  assertEquals(second, false, "the second lock waits while the first is held");
  release();
  const r2 = await p;
  assert(second);
  r2();
});

Deno.test("verify reports changed, missing and unlisted files", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const ref = await publish(store);
  const ref2 = await publish(store, "b".repeat(64), "other");
  assertEquals(await store.verify(), { checked: 2, problems: [] });
  await Deno.writeTextFile(join(ref.dir, "sub", "a.txt"), "jello");
  await Deno.remove(join(ref2.dir, "metrics.json"));
  await Deno.writeTextFile(join(ref2.dir, "extra.txt"), "?");
  const report = await store.verify();
  assertEquals(report.checked, 2);
  const problems = report.problems.map((p) => `${p.key.slice(0, 1)} ${p.path} ${p.problem}`);
  assertEquals(problems.length, 3, problems.join("\n"));
  assertMatch(problems[0], /^a sub\/a.txt sha256 [0-9a-f]{64} does not match the manifest$/);
  assertEquals(problems[1], "b metrics.json file missing");
  assertEquals(problems[2], "b extra.txt file not listed in the manifest");
});

Deno.test("list returns published artifacts only", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  await publish(store);
  await Deno.mkdir(join(dir.path, "objects", "c".repeat(64)), { recursive: true });
  assertEquals((await store.list()).map((r) => r.key), [KEY]);
});

Deno.test("cleanStaleStaging removes staging whose key lock is free, never one whose lock is held", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const [held, inProcess, free] = ["a", "b", "d"].map((c) => c.repeat(64));
  // 2147483600: a PID no process has on this host, as a run in another PID namespace shows.
  const names = [held, inProcess, free].map((k) => `${k}.2147483600.live`);
  for (const n of names) await Deno.mkdir(join(dir.path, "tmp", n), { recursive: true });
  await Deno.mkdir(join(dir.path, "locks"), { recursive: true });
  await using _holder = await holdLockElsewhere(join(dir.path, "locks", `${held}.lock`));
  const release = await store.lock(inProcess); // another open file in this process: held too
  try {
    assertEquals(await store.cleanStaleStaging(), 1);
  } finally {
    release();
  }
  assertEquals(
    [...Deno.readDirSync(join(dir.path, "tmp"))].map((e) => e.name).sort(),
    names.slice(0, 2),
    "only the staging of the key nobody holds is removed",
  );
});

Deno.test("cleanStaleStaging is best effort: a lock file it cannot open or a leftover it cannot remove skips that key only", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const [dirLock, loopLock, undeletable, noLockFile] = ["a", "b", "d", "e"].map((c) =>
    c.repeat(64)
  );
  const tmp = join(dir.path, "tmp");
  const locks = join(dir.path, "locks");
  const leftover = (k: string) => `${k}.2147483600.live`;
  for (const k of [dirLock, loopLock, undeletable, noLockFile]) {
    await Deno.mkdir(join(tmp, leftover(k), "sub"), { recursive: true });
  }
  // Not writable as a file (opening it for writing fails); read-only, it locks, so nobody holds it.
  await Deno.mkdir(join(locks, `${dirLock}.lock`), { recursive: true });
  // Cannot be opened at all (even by root), as another user's lock file cannot be.
  await Deno.symlink(`${loopLock}.lock`, join(locks, `${loopLock}.lock`));
  // Cannot be removed by a user other than root: a read-only folder holding a file.
  await Deno.writeTextFile(join(tmp, leftover(undeletable), "sub", "f"), "x");
  await Deno.chmod(join(tmp, leftover(undeletable), "sub"), 0o555);
  try {
    const removed = await store.cleanStaleStaging();
    const left = [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
    assert(left.includes(leftover(loopLock)), "the staging of a lock it cannot open stays");
    assert(!left.includes(leftover(dirLock)), "a lock opened read-only is tried and found free");
    assert(!left.includes(leftover(noLockFile)), "a key with no lock file is cleaned");
    assertEquals(removed, 4 - left.length);
    assertEquals(
      [...Deno.readDirSync(locks)].map((e) => e.name).sort(),
      [`${dirLock}.lock`, `${loopLock}.lock`],
      "no lock file is created",
    );
  } finally {
    await Deno.chmod(join(tmp, leftover(undeletable), "sub"), 0o755).catch(() => {});
  }
});

Deno.test("an aborted re-publish leaves the published artifact as it was", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const ref = await publish(store);
  const staging = await store.begin(KEY);
  await Deno.writeTextFile(join(staging.dir, "half.bin"), "x");
  await store.abort(staging);
  assertEquals((await store.get(KEY))?.manifest, ref.manifest);
  assertEquals(await store.verify(), { checked: 1, problems: [] });
});

Deno.test("commit over a same-size corrupted artifact quarantines it and publishes the new output", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const ref = await publish(store);
  await Deno.writeTextFile(join(ref.dir, "sub", "a.txt"), "jello"); // one byte flipped, same size
  const again = await publish(store);
  assertEquals(again.outcome, "published", "not 'reproduced': the bytes on disk did not match");
  assert(again.quarantined, "the corrupted copy is set aside");
  assertEquals(await Deno.readTextFile(join(ref.dir, "sub", "a.txt")), "hello");
  assertEquals(await store.verify(), { checked: 1, problems: [] });
  const note = JSON.parse(await Deno.readTextFile(join(again.quarantined, "QUARANTINE.json")));
  assertMatch(note.problems[0].problem, /sha256 .* does not match the manifest/);
});

Deno.test("commit over a damaged artifact refuses a new output that differs from its manifest", async () => {
  await using dir = await tempDir();
  const store = new LocalArtifactStore(dir.path);
  const ref = await publish(store);
  await Deno.writeTextFile(join(ref.dir, "sub", "a.txt"), "jello"); // damaged, same size
  let err: unknown;
  try {
    await publish(store, KEY, "other output");
  } catch (e) {
    err = e;
  }
  assert(err instanceof UserError, `expected a UserError, got ${err}`);
  assertMatch(err.format(), /differs from the artifact that was published under key aaaaaaaaaaaa/);
  assertMatch(err.format(), /sub\/a\.txt: 5 bytes published, 12 new/);
  assertEquals(await store.get(KEY), undefined, "neither the damaged copy nor the new output");
  const aside = [...Deno.readDirSync(join(dir.path, "quarantine"))].map((e) => e.name).sort();
  assertEquals(aside.length, 2, aside.join(", "));
  assert(aside.every((n) => n.startsWith(`${KEY}.`)));
  const rerun = aside.find((n) => n.endsWith(".rerun"));
  assert(rerun, "the new output is set aside for comparison");
  assertEquals(
    await Deno.readTextFile(join(dir.path, "quarantine", rerun, "sub", "a.txt")),
    "other output",
  );
  assertEquals(await store.verify(), { checked: 0, problems: [] });
});
