/**
 * `main.ts generate` on the tiny store of `cli_fixture.ts` (CPU backend):
 * `--out` checked before any work, an earlier run's samples replaced, and a
 * shortfall of samples an error exit that says why.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { hasStackTrace, runCli, shown, tinyStore } from "./cli_fixture.ts";

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "cli-generate-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

Deno.test("generate --out naming a file, or a path under one: exit 1 naming --out, before the model is read", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "notes.txt");
  await Deno.writeTextFile(file, "x");
  for (const out of [file, join(file, "samples")]) {
    // A model that does not exist: the --out error must come first.
    const r = await runCli(["generate", "--model", "no-such-model", "--out", out]);
    assertEquals(r.code, 1, shown(r));
    assertStringIncludes(r.stderr, "field --out: the output folder", shown(r));
    assertStringIncludes(r.stderr, `a file at ${file}`, shown(r));
    assert(!hasStackTrace(r), shown(r));
  }
  assertEquals(await Deno.readTextFile(file), "x");
});

Deno.test("generate with --temperature 0 short of samples: writes what it got, exits 1 saying greedy rows are identical", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const out = join(dir.path, "out");
  const r = await runCli([
    ...["generate", "--model", "latest", "--store", t.store, "--out", out],
    ...["--backend", "cpu", "--temperature", "0", "--count", "2"],
  ]);
  assertEquals(r.code, 1, shown(r));
  assertStringIncludes(r.stderr, "fewer samples than asked for: ", shown(r));
  assertStringIncludes(r.stderr, "--temperature 0 is greedy", shown(r));
  assert(!hasStackTrace(r), shown(r));
  const written = JSON.parse(await Deno.readTextFile(join(out, "samples.json")));
  const short = written.short as { category: string; asked: number; got: number }[];
  // Greedy rows are one sequence: at most one category can be named, so two or three fall short.
  assert(short.length >= 2, JSON.stringify(short));
  for (const s of short) assertStringIncludes(r.stderr, `${s.category} ${s.got} of 2`);
  for (const s of written.samples) await Deno.stat(join(out, s.file));
});

Deno.test("generate into a folder of an earlier run replaces its samples.json and listed WAVs, keeps other files", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const out = join(dir.path, "out");
  await Deno.mkdir(out);
  const stale = ["coin_001.wav", "coin_002.wav", "coin_003.wav", "laser_009.wav"];
  for (const f of stale) await Deno.writeFile(join(out, f), new Uint8Array(44));
  await Deno.writeTextFile(join(out, "mine.wav"), "a file the user put here");
  await Deno.writeTextFile(
    join(out, "samples.json"),
    JSON.stringify({ model: "old", samples: stale.map((file) => ({ file })) }),
  );
  const r = await runCli([
    ...["generate", "--model", "latest", "--store", t.store, "--out", out],
    ...["--backend", "cpu", "--count", "1", "--temperature", "1", "--seed", "3"],
  ]);
  assert(r.code === 0 || r.code === 1, shown(r)); // a random tiny model may fall short
  assert(!hasStackTrace(r), shown(r));
  const written = JSON.parse(await Deno.readTextFile(join(out, "samples.json")));
  assertEquals(written.model, t.keys.train);
  const listed = new Set<string>(written.samples.map((s: { file: string }) => s.file));
  const present = new Set<string>();
  for await (const e of Deno.readDir(out)) present.add(e.name);
  for (const f of stale) {
    assertEquals(
      present.has(f),
      listed.has(f),
      `${f}: on disk only when the new samples.json lists it`,
    );
  }
  assert(present.has("mine.wav"), "a file generate did not write stays");
  assertStringIncludes(r.stderr, "replaced the previous samples.json", shown(r));
  assertStringIncludes(r.stderr, "also holds 1 WAV file samples.json does not list", shown(r));
});
