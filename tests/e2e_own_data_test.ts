/**
 * End-to-end with the user's own audio: `--set scan.root=DIR` on a folder of
 * labelled WAVs (plus two bad files) through `main.ts pipeline … --json`.
 */
import { join } from "node:path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertStringIncludes,
} from "./assert.ts";
import { Random } from "../lib/random/mod.ts";
import {
  byStep,
  E2E_PIPELINE,
  listTree,
  readJson,
  sandbox,
  toneWav,
  writeLabelledWavs,
} from "./fixtures/e2e/helpers.ts";

/** Category -> base pitch in Hz. */
const CATEGORIES = { bell: 880, drum: 110, hum: 220 };
const CLIPS = 6;

interface Reject {
  path: string;
  reason: string;
  detail: string;
}

Deno.test("e2e: --set scan.root reads your own folder; synth is pruned; bad files are rejects", async (t) => {
  await using box = await sandbox();
  const data = join(box.path, "data");
  const good = await writeLabelledWavs(data, CATEGORIES, CLIPS, 11);
  // Two bad files: text named .wav, and a WAV cut off inside its data chunk.
  await Deno.writeTextFile(join(data, "drum/x.wav"), "not audio, just a text file\n");
  const whole = toneWav(300, 0.3, new Random(11, "e2e/cut"));
  await Deno.writeFile(join(data, "hum/cut.wav"), whole.subarray(0, whole.length >> 2));

  const store = join(box.path, "store");
  const set = ["--set", `scan.root=${data}`];
  const first = await box.pipeline(E2E_PIPELINE, store, set);
  assertEquals(first.code, 0, `the run with scan.root failed:\n${first.stderr}`);
  const keys = byStep(first.summary, "key");

  await t.step("synth is pruned (not run, no artifact); the other steps ran", async () => {
    assertEquals(first.summary.status, "succeeded");
    assertEquals(byStep(first.summary, "status"), {
      synth: "pruned",
      scan: "ran",
      tokenize: "ran",
      bucket: "ran",
      train: "ran",
      evaluate: "ran",
      export: "ran",
    });
    assertEquals(keys.synth, undefined, "a pruned step has no key");
    const manifests = (await listTree(join(store, "objects"))).filter((p) =>
      p.endsWith("/manifest.json")
    );
    const jobs = await Promise.all(
      manifests.map(async (m) => (await readJson<{ job: string }>(join(store, "objects", m))).job),
    );
    assertEquals(jobs.sort(), ["bucket", "evaluate", "export", "scan", "tokenize", "train"]);
  });

  await t.step("scan read DIR: its files, its categories, DIR hashed as a source", async () => {
    const dir = join(store, "objects", keys.scan!);
    const m = await readJson<{ inputs: object; sources: Record<string, string>; params: object }>(
      join(dir, "manifest.json"),
    );
    assertEquals(m.inputs, {}, "no audio input when root is set");
    assertEquals(Object.keys(m.sources), [data]);
    assertMatch(m.sources[data], /^[0-9a-f]{64}$/);
    const listing = await readJson<
      { source: unknown; files: { path: string }[]; categories: object }
    >(
      join(dir, "files.json"),
    );
    assertEquals(listing.source, { param: "root", path: data }, "files.json names DIR as written");
    assertEquals(listing.files.map((f) => f.path), good);
    assertEquals(
      listing.categories,
      Object.fromEntries(Object.keys(CATEGORIES).map((c) => [c, CLIPS])),
    );
    const seqs = await readJson<{ path: string }[]>(
      join(store, "objects", keys.tokenize!, "sequences.json"),
    );
    assertEquals(seqs.map((s) => s.path), good, "tokenize used exactly the usable files");
  });

  await t.step("the bad files are in rejects.json with their reasons", async () => {
    const dir = join(store, "objects", keys.scan!);
    const rejects = await readJson<Reject[]>(join(dir, "rejects.json"));
    assertEquals(rejects.map((r) => [r.path, r.reason]), [
      ["drum/x.wav", "not-audio"],
      ["hum/cut.wav", "cannot-decode"],
    ]);
    assertStringIncludes(rejects[1].detail, "truncated");
    assert(rejects[0].detail.length > 0, "a not-audio reject says why");
    const metrics = await readJson<Record<string, unknown>>(join(dir, "metrics.json"));
    assertEquals(metrics.rejects, 2);
    assertEquals(metrics.files, good.length);
  });

  await t.step(
    "unchanged DIR: everything cached; a new file in DIR changes scan's key",
    async () => {
      const same = await box.pipeline(E2E_PIPELINE, store, [...set, "--dry-run"]);
      assertEquals(same.code, 0, same.stderr);
      assertEquals(byStep(same.summary, "key"), keys, "the same keys while DIR is unchanged");
      assertEquals(byStep(same.summary, "status").scan, "cached");

      await Deno.writeFile(
        join(data, "bell/bell_new.wav"),
        toneWav(1000, 0.2, new Random(11, "e2e/new")),
      );
      const next = await box.pipeline(E2E_PIPELINE, store, [...set, "--until", "scan"]);
      assertEquals(next.code, 0, next.stderr);
      const scan = next.summary.steps.find((s) => s.step === "scan")!;
      assertEquals(scan.status, "ran");
      assertEquals(scan.reason, `source changed (${data})`);
      assertNotEquals(scan.key, keys.scan, "adding a file to DIR changes scan's key");
      const listing = await readJson<{ files: { path: string }[] }>(
        join(store, "objects", scan.key!, "files.json"),
      );
      assertEquals(listing.files.map((f) => f.path), [...good, "bell/bell_new.wav"].sort());
    },
  );

  await t.step(
    "--set seed changes the tokenize, bucket and train keys (the split depends on it)",
    async () => {
      const dry = await box.pipeline(E2E_PIPELINE, store, [...set, "--dry-run", "--set", "seed=8"]);
      assertEquals(dry.code, 0, dry.stderr);
      const seeded = byStep(dry.summary, "key");
      const unseeded = byStep(
        (await box.pipeline(E2E_PIPELINE, store, [...set, "--dry-run"])).summary,
        "key",
      );
      for (const step of ["tokenize", "bucket", "train"]) {
        assertNotEquals(
          seeded[step],
          unseeded[step],
          `step ${step}: the same key under seeds 7 and 8, although scan's train/validation/test ` +
            `split (lib/data/split.ts) depends on the seed; the step key must include the pipeline seed`,
        );
      }
    },
  );
});
