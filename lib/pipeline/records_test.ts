import { join } from "./path.ts";
import { assertEquals } from "../../tests/assert.ts";
import { holdLockElsewhere } from "../../tests/fixtures/lock_holder.ts";
import {
  holdRunLock,
  runLockPath,
  type RunRecord,
  settleRunStatus,
  writeRunRecord,
} from "./records.ts";

const running: RunRecord = {
  format: 1,
  id: "2026-01-01T00-00-00-000Z-p-abcdef",
  pipeline: { name: "p", file: "p.yaml", sha256: "0".repeat(64), text: "" },
  overrides: [],
  seed: 1,
  jobs_dir: "jobs",
  options: {},
  started_at: "2026-01-01T00:00:00.000Z",
  status: "running",
  steps: {},
};

Deno.test("settleRunStatus: running while another process holds the run lock, died once it is free or gone", async () => {
  const store = await Deno.makeTempDir();
  try {
    const file = writeRunRecord(join(store, "runs"), running);
    await Deno.mkdir(join(store, "locks"));
    {
      await using _run = await holdLockElsewhere(runLockPath(store, running.id));
      assertEquals(settleRunStatus(file, running).status, "running");
    }
    assertEquals(settleRunStatus(file, running).status, "died", "lock file left, lock free");
    await Deno.remove(runLockPath(store, running.id));
    assertEquals(settleRunStatus(file, running).status, "died", "no lock file");
    assertEquals(
      JSON.parse(await Deno.readTextFile(file)).status,
      "running",
      "the record is not rewritten",
    );
  } finally {
    await Deno.remove(store, { recursive: true });
  }
});

Deno.test("settleRunStatus: a run that finished after its record was read is shown finished, not died", async () => {
  const store = await Deno.makeTempDir();
  try {
    const release = holdRunLock(store, running.id);
    const file = writeRunRecord(join(store, "runs"), running);
    writeRunRecord(join(store, "runs"), { ...running, status: "succeeded" });
    release();
    assertEquals(settleRunStatus(file, running).status, "succeeded");
  } finally {
    await Deno.remove(store, { recursive: true });
  }
});
