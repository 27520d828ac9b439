/**
 * Why a step will run is explained against the earlier run that differs least:
 * a cached input re-used from an older run is not reported as "input changed"
 * when only the step's own parameters moved.
 */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { byStep, E2E_PIPELINE, sandbox } from "./fixtures/e2e/helpers.ts";

Deno.test("a re-used cached input is not 'input changed' when only a parameter changed", async () => {
  await using box = await sandbox();
  const store = join(box.path, "store");
  const until = ["--until", "train"];
  assertEquals((await box.pipeline(E2E_PIPELINE, store, until)).code, 0);
  const other = await box.pipeline(E2E_PIPELINE, store, [...until, "--set", "bucket.batch_size=4"]);
  assertEquals(other.code, 0, other.stderr);
  // The first run's bucket artifact is re-used; train differs from it in epochs only.
  const dry = await box.pipeline(E2E_PIPELINE, store, [
    ...until,
    "--set",
    "train.epochs=3",
    "--dry-run",
  ]);
  assertEquals(dry.code, 0, dry.stderr);
  assertEquals(byStep(dry.summary, "status").bucket, "cached");
  assertEquals(byStep(dry.summary, "reason").train, "parameters changed (epochs: 2 -> 3)");
});
