/**
 * `generate`'s counts read as English: one WAV file, two WAV files.
 */
import { join } from "node:path";
import { assert, assertStringIncludes } from "./assert.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { hasStackTrace, runCli, shown, tinyStore } from "./cli_fixture.ts";

Deno.test("generate says 1 WAV file, not 1 WAV files", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const out = join(dir.path, "out");
  await Deno.mkdir(out);
  // An earlier run's one listed WAV, and one WAV it did not write.
  await Deno.writeFile(join(out, "coin_009.wav"), new Uint8Array(44));
  await Deno.writeFile(join(out, "mine.wav"), new Uint8Array(44));
  await Deno.writeTextFile(
    join(out, "samples.json"),
    JSON.stringify({ model: "old", samples: [{ file: "coin_009.wav" }] }),
  );
  const r = await runCli([
    ...["generate", "--model", "latest", "--store", t.store, "--out", out],
    ...["--backend", "cpu", "--count", "1", "--temperature", "1", "--seed", "3"],
  ]);
  assert(r.code === 0 || r.code === 1, shown(r)); // a random tiny model may fall short
  assert(!hasStackTrace(r), shown(r));
  assertStringIncludes(
    r.stderr,
    "replaced the previous samples.json and its 1 WAV file\n",
    shown(r),
  );
  assertStringIncludes(r.stderr, "also holds 1 WAV file samples.json", shown(r));
  assert(!/\b1 (WAV files|samples)\b/.test(r.stderr), shown(r));
  assert(/wrote \d+ WAV files? and samples.json/.test(r.stderr), shown(r));
});
