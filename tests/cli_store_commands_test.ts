/**
 * `plots`, `gc` and `diff` on the hand-built store of `cli_fixture.ts` (no
 * pipeline run): what they say when a run's artifact is gone, a run record is
 * broken, or an argument names nothing.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { hasStackTrace, runCli, shown, tinyStore } from "./cli_fixture.ts";

Deno.test("plots of a run whose train artifact gc removed: exit 1 with the --rerun that rebuilds it", async () => {
  await using dir = await tempDir();
  const s = await tinyStore(dir.path);
  await Deno.remove(s.trainDir, { recursive: true });
  const out = join(dir.path, "plots");
  const r = await runCli(["plots", s.runId, "--store", s.store, "--out", out]);
  assertEquals(r.code, 1, `an empty series was drawn instead\n${shown(r)}`);
  assertStringIncludes(r.stderr, "is not in the store", shown(r));
  assertStringIncludes(r.stderr, "deno task pipeline --rerun", shown(r));
  assert(!hasStackTrace(r), shown(r));
  const drawn = await Deno.stat(join(out, "plots.html")).then(() => true, () => false);
  assert(!drawn, "no page is written");
});
