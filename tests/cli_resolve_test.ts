/**
 * `--model` and `--store` as every model command reads them
 * (lib/cli/resolve.ts), on the hand-made store of `cli_fixture.ts`.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import { existingStoreDir, readModelWeights, resolveModel } from "../lib/cli/resolve.ts";
import { hasStackTrace, runCli, runRecord, shown, tinyStore } from "./cli_fixture.ts";

Deno.test("resolveModel: a blank --model is an error, not some model", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  for (const name of ["", "  "]) {
    const e = await assertRejects(() => resolveModel(name, t.store), "the model name is empty");
    assert(e instanceof UserError && e.location.field === "--model");
  }
});

Deno.test("resolveModel: an ambiguous run id prefix says how many runs it matches and lists them", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const ids = ["2026-02-01T00-00-00-000Z-train-aaaaaa", "2026-02-02T00-00-00-000Z-train-bbbbbb"];
  for (const id of ids) {
    await Deno.writeTextFile(
      join(t.store, "runs", `${id}.json`),
      JSON.stringify(runRecord(id, { train: t.keys.train })),
    );
  }
  const e = await assertRejects(() => resolveModel("2026-02", t.store), "matches 2 runs");
  assert(e instanceof UserError);
  for (const id of ids) assertStringIncludes(e.found ?? "", id);
  // A unique prefix and a whole id still name their run.
  assertEquals((await resolveModel("2026-02-02", t.store)).via, `run ${ids[1]}`);
  assertEquals((await resolveModel(ids[0], t.store)).key, t.keys.train);
});

Deno.test("resolveModel: an export artifact's key or prefix is the bundle, with its own key", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  for (const name of [t.keys.export, t.keys.export.slice(0, 6), t.exportDir]) {
    const m = await resolveModel(name, t.store);
    assertEquals(m.modelDir, t.exportDir, name);
    assertEquals(m.weightsFile, join(t.exportDir, "model.safetensors"));
    assertEquals(m.tokensDir, t.exportDir);
    assertEquals(m.key, t.keys.export, "the export artifact's key, not the word bundle");
    assertEquals(m.trainedModel, t.keys.train);
    assertEquals(m.dataDir, undefined);
  }
  // A bundle copied without its manifest is named by its weights' hash.
  const copy = join(dir.path, "copy");
  await Deno.mkdir(copy);
  for (const f of ["model.safetensors", "vocab.json", "tokenizer.json", "codebook.f32"]) {
    await Deno.copyFile(join(t.exportDir, f), join(copy, f));
  }
  const m = await resolveModel(copy, t.store);
  assert(/^sha256:[0-9a-f]{64}$/.test(m.key), m.key);
});

Deno.test("resolveModel: a corrupt newest run record is passed over with a warning naming it", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const bad = join(t.store, "runs", "2027-01-01T00-00-00-000Z-train-ffffff.json");
  await Deno.writeTextFile(bad, '{"format": 1, "id": ');
  const warnings: string[] = [];
  const m = await resolveModel("latest", t.store, { warn: (w) => warnings.push(w) });
  assertEquals(m.key, t.keys.train);
  assertEquals(warnings.length, 1, warnings.join(""));
  assertStringIncludes(warnings[0], `warning: skipped the run record ${bad}`);
});

Deno.test("--store naming a file or a missing folder is a UserError naming --store", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "README.md");
  await Deno.writeTextFile(file, "not a store");
  for (
    const [store, message] of [
      [file, "is a file, not a folder"],
      [join(dir.path, "none"), "does not exist"],
      [join(file, "sub"), "runs through a file"],
    ]
  ) {
    const e = await assertRejects(async () => await existingStoreDir(store), message);
    assert(e instanceof UserError && e.location.field === "--store", store);
    await assertRejects(() => resolveModel("latest", store), message);
  }
});

Deno.test("generate and classify on a model whose weights file is gone: exit 1 naming the file, no stack", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const weights = join(t.trainDir, "best.safetensors");
  await Deno.remove(weights);
  const m = await resolveModel(t.keys.train, t.store);
  await assertRejects(() => readModelWeights(m), "cannot read the trained weights");
  const clip = join(dir.path, "clip.wav");
  await Deno.writeFile(clip, new Uint8Array(0));
  for (
    const args of [
      ["generate", "--model", "latest", "--store", t.store, "--backend", "cpu", "--out", dir.path],
      ["classify", "--model", "latest", "--store", t.store, clip],
    ]
  ) {
    const r = await runCli(args);
    assertEquals(r.code, 1, shown(r));
    assertStringIncludes(
      r.stderr,
      `file ${weights}, field --model: cannot read the trained weights`,
    );
    assert(!hasStackTrace(r), shown(r));
  }
});

Deno.test("runs, show, gc and artifacts list on a store that is a file or missing: exit 1 naming --store", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "README.md");
  await Deno.writeTextFile(file, "not a store");
  for (const store of [file, join(dir.path, "none")]) {
    for (
      const args of [
        ["runs"],
        ["show", "latest"],
        ["gc", "--dry-run"],
        ["artifacts", "list"],
        ["generate", "--model", "latest"],
      ]
    ) {
      const r = await runCli([...args, "--store", store]);
      assertEquals(r.code, 1, `${args.join(" ")}: ${shown(r)}`);
      assertStringIncludes(r.stderr, "field --store: ", shown(r));
      assertStringIncludes(r.stderr, store, shown(r));
      assert(!hasStackTrace(r), shown(r));
    }
  }
});

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "cli-resolve-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
