import { join } from "node:path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import { LocalArtifactStore } from "../lib/artifacts/store.ts";
import { readRunRecord } from "../lib/pipeline/records.ts";
import { rerunFromRecord } from "../lib/pipeline/runner.ts";
import {
  BASIC_YAML,
  captureOutput,
  FIXTURE_JOBS,
  keys,
  runQuiet,
  statuses,
  tempDir,
  writePipeline,
} from "./fixtures/pipeline_helpers.ts";
import { holdLockElsewhere } from "./fixtures/lock_holder.ts";

function runFilesIn(store: string): string[] {
  try {
    return [...Deno.readDirSync(join(store, "runs"))].map((e) => e.name);
  } catch {
    return [];
  }
}

async function readOut(store: string, key: string | undefined, name = "out.txt"): Promise<string> {
  return await Deno.readTextFile(join(store, "objects", key!, name));
}

Deno.test("a first run runs every step; a re-run is all cache hits", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const first = await runQuiet({ file, store });
  assertEquals(first.status, "succeeded");
  assertEquals(statuses(first), { hello: "ran", world: "ran", both: "ran", upper: "ran" });
  assertEquals(await readOut(store, keys(first).upper), "HELLO+WORLD");
  const second = await runQuiet({ file, store });
  assertEquals(statuses(second), {
    hello: "cached",
    world: "cached",
    both: "cached",
    upper: "cached",
  });
  assertEquals(keys(second), keys(first));
});

Deno.test("changing one step's params re-runs it and its dependants only", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  await runQuiet({ file, store });
  const r = await runQuiet({ file, store, overrides: ["world.text=there"] });
  assertEquals(statuses(r), { hello: "cached", world: "ran", both: "ran", upper: "ran" });
  assertEquals(await readOut(store, keys(r).upper), "HELLO+THERE");
});

Deno.test("dry run explains why each step would run and runs nothing", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const fresh = await runQuiet({ file, store, dryRun: true });
  assertEquals(fresh.status, "dry-run");
  assertEquals(fresh.steps.map((s) => s.reason), Array(4).fill("new (never run)"));
  const none = await new LocalArtifactStore(store).list();
  assertEquals(none.length, 0, "a dry run publishes nothing");
  const first = await runQuiet({ file, store });
  const changed = await runQuiet({ file, store, dryRun: true, overrides: ["world.text=there"] });
  const reason = Object.fromEntries(changed.steps.map((s) => [s.step, s.reason]));
  assertEquals(reason.hello, "cached");
  assertEquals(reason.world, 'parameters changed (text: "world" -> "there")');
  assertEquals(reason.both, "input changed (b)");
  assertStringIncludes(changed.log, "would run");
  const reseeded = await runQuiet({ file, store, dryRun: true, overrides: ["seed=2"] });
  assertEquals(reseeded.steps.find((s) => s.step === "hello")!.reason, "seed changed (1 -> 2)");
  await Deno.remove(join(store, "objects", keys(first).both!), { recursive: true });
  const missing = await runQuiet({ file, store, dryRun: true });
  assertEquals(missing.steps.find((s) => s.step === "both")!.reason, "output missing");
});

Deno.test("editing a job's code re-runs its steps and reports code changed", async () => {
  await using dir = await tempDir();
  const jobsA = join(dir.path, "a", "jobs");
  const jobsB = join(dir.path, "b", "jobs");
  for (const d of [jobsA, jobsB]) {
    await Deno.mkdir(d, { recursive: true });
    for (const j of ["write_text", "concat", "read_source"]) {
      await Deno.copyFile(join(FIXTURE_JOBS, `${j}.ts`), join(d, `${j}.ts`));
    }
  }
  const src = await Deno.readTextFile(join(jobsB, "concat.ts"));
  await Deno.writeTextFile(
    join(jobsB, "concat.ts"),
    src.replace("a + ctx.params.separator + b", "b + ctx.params.separator + a"),
  );
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  await runQuiet({ file, store, jobsDir: jobsA });
  const dry = await runQuiet({ file, store, jobsDir: jobsB, dryRun: true });
  assertEquals(dry.steps.find((s) => s.step === "both")!.reason, "code changed");
  const r = await runQuiet({ file, store, jobsDir: jobsB });
  assertEquals(statuses(r), { hello: "cached", world: "cached", both: "ran", upper: "ran" });
  assertEquals(await readOut(store, keys(r).upper), "WORLD+HELLO");
});

Deno.test("--force re-runs a cached step; its unchanged key keeps dependants cached", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const first = await runQuiet({ file, store });
  const r = await runQuiet({ file, store, force: ["both"] });
  assertEquals(statuses(r), { hello: "cached", world: "cached", both: "ran", upper: "cached" });
  assertEquals(keys(r), keys(first));
  assertEquals((await new LocalArtifactStore(store).verify()).problems, []);
});

Deno.test("--until runs a step and its ancestors only", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const r = await runQuiet({ file, store, until: "both" });
  assertEquals(statuses(r), { hello: "ran", world: "ran", both: "ran", upper: "not-run" });
});

Deno.test("--only needs cached inputs, then runs just that step", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const err = await assertRejects(() => runQuiet({ file, store, only: "both" }));
  assert(err instanceof UserError);
  assertStringIncludes(err.message, 'input "a" (step "hello") is not in the store');
  await runQuiet({ file, store, until: "world" });
  await runQuiet({ file, store, only: "hello" });
  const r = await runQuiet({ file, store, only: "both" });
  assertEquals(statuses(r), { hello: "not-run", world: "not-run", both: "ran", upper: "not-run" });
});

Deno.test("unknown step names in --force/--only/--until are errors", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const err = await assertRejects(() => runQuiet({ file, store: `${dir.path}/s`, until: "nope" }));
  assert(err instanceof UserError);
  assertStringIncludes(err.message, "--until nope: no such step");
});

Deno.test("--force of a step outside --until/--only is an error naming the step and the selection", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/s`;
  for (const sel of [{ until: "both" }, { only: "hello" }]) {
    const err = await assertRejects(() => runQuiet({ file, store, ...sel, force: ["upper"] }));
    assert(err instanceof UserError, String(err));
    const flag = "until" in sel ? `--until ${sel.until}` : `--only ${sel.only}`;
    assertStringIncludes(err.message, `--force upper: the step is outside the selection (${flag})`);
  }
  assertEquals(runFilesIn(store), [], "nothing ran");
});

Deno.test("setting read_source.root drops its input slot and prunes the unused upstream steps", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "texts");
  await Deno.mkdir(root);
  await Deno.writeTextFile(join(root, "1.txt"), "abc");
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const r = await runQuiet({ file, store, overrides: [`upper.root=${root}`] });
  assertEquals(statuses(r), { hello: "pruned", world: "pruned", both: "pruned", upper: "ran" });
  assertEquals(await readOut(store, keys(r).upper), "ABC");
  // The source folder's content is part of the key: an edit re-runs the step.
  const again = await runQuiet({ file, store, overrides: [`upper.root=${root}`] });
  assertEquals(statuses(again).upper, "cached");
  await Deno.writeTextFile(join(root, "2.txt"), "d");
  const edited = await runQuiet({ file, store, overrides: [`upper.root=${root}`], dryRun: true });
  assertStringIncludes(edited.steps.find((s) => s.step === "upper")!.reason, "source changed");
});

Deno.test("independent steps run in parallel", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(
    dir.path,
    `name: par
seed: 1
steps:
  a: { job: slow, params: { chunks: 6, delay_ms: 80, fill: 1 } }
  b: { job: slow, params: { chunks: 6, delay_ms: 80, fill: 2 } }
`,
  );
  const store = `${dir.path}/store`;
  const r = await runQuiet({ file, store });
  const refs = await Promise.all(r.steps.map((s) => new LocalArtifactStore(store).get(s.key!)));
  const [a, b] = refs.map((x) => x!.manifest);
  assert(
    a.started_at < b.finished_at && b.started_at < a.finished_at,
    `steps overlap: ${JSON.stringify([a, b].map((m) => [m.started_at, m.finished_at]))}`,
  );
});

Deno.test("a run record holds the YAML and overrides; rerun repeats it exactly", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const r = await runQuiet({ file, store, overrides: ["hello.text=hi"] });
  const rec = await readRunRecord(r.record!);
  assertEquals(rec.pipeline.text, BASIC_YAML);
  assertEquals(rec.overrides, ["hello.text=hi"]);
  assertEquals(rec.status, "succeeded");
  assertEquals(rec.steps.hello.status, "ran");
  assertMatch(rec.steps.hello.key!, /^[0-9a-f]{64}$/);
  // The file changes afterwards; the rerun still uses the recorded text.
  await Deno.writeTextFile(file, BASIC_YAML.replace('"world"', '"earth"'));
  const again = await rerunFromRecord(r.record!, {
    jobsDir: FIXTURE_JOBS,
    store,
    output: captureOutput(),
  });
  assertEquals(keys(again), keys(r));
  assertEquals(statuses(again), {
    hello: "cached",
    world: "cached",
    both: "cached",
    upper: "cached",
  });
});

Deno.test("two runs in separate stores give the same keys and bytes", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const a = await runQuiet({ file, store: `${dir.path}/s1` });
  const b = await runQuiet({ file, store: `${dir.path}/s2` });
  assertEquals(keys(a), keys(b));
  for (const k of Object.values(keys(a))) {
    assertEquals(await readOut(`${dir.path}/s1`, k), await readOut(`${dir.path}/s2`, k));
  }
});

Deno.test("a failing step reports step and reason, leaves earlier artifacts, lists the rest as not run", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(
    dir.path,
    `name: f
seed: 1
steps:
  ok: { job: write_text, params: { text: x } }
  bad: { job: fail, params: { message: "broken input" } }
  after: { job: concat, inputs: { a: ok, b: bad } }
`,
  );
  const store = `${dir.path}/store`;
  const r = await runQuiet({ file, store });
  assertEquals(r.status, "failed");
  assertEquals(statuses(r), { ok: "ran", bad: "failed", after: "not-run" });
  assert(r.error instanceof UserError);
  assertEquals(r.error.location.step, "bad");
  assertEquals(r.failed_step, "bad");
  assertStringIncludes(r.error.location.file!, "p.yaml");
  assertStringIncludes(r.steps.find((s) => s.step === "after")!.reason, "not run");
  const s = new LocalArtifactStore(store);
  assertEquals((await s.list()).map((x) => x.manifest.step), ["ok"]);
  assertEquals((await s.verify()).problems, []);
  const tmp = [...Deno.readDirSync(join(store, "tmp"))];
  assertEquals(tmp.length, 0, "the failed step's staging dir is removed");
  assertNotEquals(r.record, undefined);
  assertEquals((await readRunRecord(r.record!)).status, "failed");
});

Deno.test("a run's start leaves the staging of a key whose lock another process holds, whatever its PID", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/s`;
  // A run in another PID namespace (a container sharing the store) names its staging with a PID
  // this host does not have; the key lock it holds is what says the folder is live.
  const key = "e".repeat(64);
  const live = join(store, "tmp", `${key}.2147483600.1f2e3d`);
  await Deno.mkdir(live, { recursive: true });
  await Deno.writeTextFile(join(live, "last.safetensors"), "being written");
  await Deno.mkdir(join(store, "locks"), { recursive: true });
  await using _otherRun = await holdLockElsewhere(join(store, "locks", `${key}.lock`));
  const r = await runQuiet({ file, store });
  assertEquals(r.status, "succeeded", r.log);
  assertEquals(statuses(r).hello, "ran", "the run did work, so it swept tmp/");
  assertEquals(await Deno.readTextFile(join(live, "last.safetensors")), "being written");
});

Deno.test("leftover staging whose lock file cannot be opened does not fail the run", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = join(dir.path, "s");
  const key = "f".repeat(64);
  await Deno.mkdir(join(store, "tmp", `${key}.2147483600.live`), { recursive: true });
  await Deno.mkdir(join(store, "locks"), { recursive: true });
  // A lock file no one can open (as another user's on a shared store cannot be): a symlink loop.
  await Deno.symlink(`${key}.lock`, join(store, "locks", `${key}.lock`));
  const r = await runQuiet({ file, store });
  assertEquals(r.status, "succeeded");
  assert(
    Deno.statSync(join(store, "tmp", `${key}.2147483600.live`)).isDirectory,
    "the staging of a key it cannot lock stays",
  );
});
