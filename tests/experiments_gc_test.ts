/**
 * `gc`: keeps what kept runs need (transitively through manifests' inputs)
 * and removes the rest; a dry run removes nothing; killed at any moment it
 * leaves a store that verifies with every kept run still cached; beside a
 * running pipeline it waits, and the pipeline loses nothing it needs.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { JOBS, PIPELINE, runExperiment } from "./fixtures/experiments_run.ts";
import { captureOutput, tempDir } from "./fixtures/pipeline_helpers.ts";
import { rerunFromRecord } from "../lib/pipeline/runner.ts";
import { LocalArtifactStore } from "../lib/artifacts/store.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { collectGarbage, neededKeys } from "../lib/experiments/gc.ts";
import { loadRuns } from "../lib/experiments/runs.ts";

async function objects(store: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(store, "objects"))) out.push(e.name);
  return out.sort();
}

/** Every step of the run in `record` is a cache hit when it is re-run. */
async function allCached(store: string, record: string): Promise<boolean> {
  const s = await rerunFromRecord(record, { jobsDir: JOBS, store, output: captureOutput() });
  return s.steps.every((x) => x.status === "cached");
}

function gcCli(store: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), "gc", "--store", store, ...args],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("gc keeps the newest runs and named ones, removes the rest; a dry run removes nothing", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const base = await runExperiment(store, [], "base");
  const mid = await runExperiment(store, ["train.lr=0.002"]);
  const last = await runExperiment(store, ["train.layers=3"]);
  await Deno.mkdir(join(store, "tmp", "leftover"), { recursive: true });
  await Deno.writeTextFile(join(store, "locks", "run-killed.lock"), ""); // a killed run's
  const before = await objects(store);
  const dry = await collectGarbage(store, { keepLast: 1, keep: ["base"], dryRun: true });
  assertEquals(await objects(store), before);
  const midOnly = ["train", "evaluate"].map((s) => mid.steps.find((x) => x.step === s)!.key!);
  assertEquals(dry.removed_artifacts.sort(), midOnly.sort());
  const r = await collectGarbage(store, { keepLast: 1, keep: ["base"] });
  assertEquals(r.removed_artifacts.sort(), midOnly.sort());
  assert(r.freed_bytes > 0 && r.freed_bytes === dry.freed_bytes);
  assertEquals(r.removed_tmp, ["leftover"]);
  assertEquals([dry.removed_run_locks, r.removed_run_locks], [1, 1]);
  const gone = await Deno.stat(join(store, "locks", "run-killed.lock")).then(
    () => false,
    () => true,
  );
  assert(gone, "the dead run's lock is gone");
  assertEquals((await objects(store)).length, before.length - 2);
  assertEquals((await new LocalArtifactStore(store).verify()).problems, []);
  assert(await allCached(store, base.record!), "base is still cached");
  assert(await allCached(store, last.record!), "the newest run is still cached");
  assert(!(await allCached(store, mid.record!)), "the removed run is rebuilt");
});

Deno.test("what a kept run needs is followed through manifests' inputs", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const s = await runExperiment(store);
  const [stored] = await loadRuns(store);
  // A record that names only its last step (as an --only run's would name its inputs as not run).
  const onlyEval = {
    ...stored,
    record: { ...stored.record, steps: { evaluate: stored.record.steps.evaluate } },
  };
  const needed = await neededKeys(store, [onlyEval]);
  assertEquals([...needed].sort(), s.steps.map((x) => x.key!).sort());
});

Deno.test("gc killed at any moment leaves a store that verifies, with the kept run cached", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  for (let i = 1; i <= 12; i++) {
    await runExperiment(store, [`train.lr=0.00${i}`, "train.files=150"]);
  }
  const kept = await runExperiment(store, ["train.lr=0.5", "train.files=150"], "kept");
  const storeObj = new LocalArtifactStore(store);
  let finished = false;
  let kills = 0;
  let partial = 0; // kills that landed while gc was removing artifacts
  const initial = (await objects(store)).length;
  for (let delay = 250; !finished && delay < 6000; delay += 200) {
    const child = gcCli(store, ["--keep-last", "1"]);
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
        kills++;
      } catch { /* already ended */ }
    }, delay);
    const status = await child.status;
    clearTimeout(timer);
    await child.stdout.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    finished = status.success;
    const left = (await objects(store)).length;
    if (!finished && left < initial && left > 3) partial++;
    assertEquals((await storeObj.verify()).problems, [], `after a kill at ${delay} ms`);
    for (const s of kept.steps) {
      assert(await storeObj.has(s.key!), `kept ${s.step} after ${delay} ms`);
    }
  }
  assert(finished, "gc finished in the end");
  assert(kills > 0, "gc was killed at least once");
  console.log(`${kills} kills, ${partial} of them part-way through the removals`);
  assertEquals((await objects(store)).length, 3);
  assert(await allCached(store, kept.record!));
});

Deno.test("gc beside a running pipeline waits for it; the pipeline loses nothing", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await runExperiment(store); // data, train, evaluate published
  const pipeline = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(REPO_ROOT, "main.ts"),
      "pipeline",
      PIPELINE,
      "--jobs-dir",
      JOBS,
      "--store",
      store,
      "--set",
      "train.sleep_ms=2500",
      "--set",
      "train.lr=0.005",
    ],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
  }).output();
  // Wait until the pipeline has found data cached and is training (its record says "running").
  for (let i = 0; i < 200 && (await loadRuns(store)).length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assertEquals((await loadRuns(store))[0].record.status, "running");
  const t0 = Date.now();
  const gc = await gcCli(store, ["--keep-last", "0"]).output();
  const waited = Date.now() - t0;
  const p = await pipeline;
  assertEquals(p.code, 0, new TextDecoder().decode(p.stderr));
  assertEquals(gc.code, 0);
  assertStringIncludes(new TextDecoder().decode(gc.stderr), "waiting for running pipelines");
  assert(waited > 500, `gc waited (${waited} ms)`);
  assertEquals((await new LocalArtifactStore(store).verify()).problems, []);
});
