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

Deno.test("gc with a broken run record: refused with a hint naming --ignore-unreadable-records, which goes on", async () => {
  await using dir = await tempDir();
  const s = await tinyStore(dir.path);
  await Deno.writeTextFile(join(s.store, "runs", "2026-01-02T00-00-00-000Z-x-broken.json"), "{");
  const orphan = join(s.store, "objects", "f".repeat(64));
  await Deno.mkdir(orphan);
  await Deno.writeTextFile(join(orphan, "manifest.json"), "{}");
  const refused = await runCli(["gc", "--store", s.store]);
  assertEquals(refused.code, 1, shown(refused));
  assertStringIncludes(refused.stderr, "removes nothing", shown(refused));
  assertStringIncludes(refused.stderr, "--ignore-unreadable-records", shown(refused));
  assertStringIncludes(refused.stderr, "move the broken record out of runs/", shown(refused));
  assert(await Deno.stat(orphan).then(() => true, () => false), "nothing removed");
  const r = await runCli(["gc", "--store", s.store, "--ignore-unreadable-records", "--json"]);
  assertEquals(r.code, 0, shown(r));
  const report = JSON.parse(r.stdout);
  assertEquals(report.removed_artifacts, ["f".repeat(64)], shown(r));
  assertStringIncludes(r.stderr, "cannot be read", `the broken record is warned of\n${shown(r)}`);
  assert(
    await Deno.stat(s.trainDir).then(() => true, () => false),
    "the kept run's artifacts stay",
  );
});

Deno.test("diff RUN TYPO names the argument that is neither a run nor an artifact", async () => {
  await using dir = await tempDir();
  const s = await tinyStore(dir.path);
  for (const [args, field] of [[[s.runId, "TYPO"], "B"], [["TYPO", s.runId], "A"]] as const) {
    const r = await runCli(["diff", ...args, "--store", s.store]);
    assertEquals(r.code, 1, shown(r));
    assertStringIncludes(r.stderr, `field ${field}: no run named "TYPO"`, shown(r));
    assertStringIncludes(r.stderr, "deno task runs lists them", shown(r));
    assertStringIncludes(r.stderr, "or an artifact", shown(r));
    assert(!r.stderr.includes("cannot compare a run with an artifact"), shown(r));
  }
  const mixed = await runCli(["diff", s.runId, s.trainDir, "--store", s.store]);
  assertEquals(mixed.code, 1, shown(mixed));
  assertStringIncludes(mixed.stderr, "cannot compare a run with an artifact", shown(mixed));
});
