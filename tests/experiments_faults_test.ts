/**
 * Faults met by the experiment commands (runs, show, gc, diff, plots, sweeps):
 * a store that is a file or does not exist, artifacts removed by gc,
 * unreadable run records. Each ends in a `UserError` (exit 1, no stack trace)
 * or a warning that names what is wrong, never in silence or a false result.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { JOBS, PIPELINE, runExperiment } from "./fixtures/experiments_run.ts";
import { captureOutput, tempDir } from "./fixtures/pipeline_helpers.ts";
import { runPipeline } from "../lib/pipeline/runner.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { UserError } from "../lib/errors/mod.ts";
import { collectGarbage } from "../lib/experiments/gc.ts";
import { loadRuns, resolveRun } from "../lib/experiments/runs.ts";
import { diffRuns } from "../lib/experiments/diff.ts";
import { renderDiffText } from "../lib/experiments/diff_render.ts";
import { runCurvesOf } from "../lib/experiments/plots.ts";
import { parseSweeps, sweepGrid, sweepPointError, sweepRunName } from "../lib/experiments/sweep.ts";

/** A stack frame line, as V8 prints them. */
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

/** `main.ts ARGS…` in a subprocess: exit code and stdout + stderr. */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", INIT_CWD: REPO_ROOT }, // not one inherited from the shell
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

async function userError(p: () => Promise<unknown>): Promise<UserError> {
  const e = await assertRejects(p);
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  return e;
}

Deno.test("a file given as the store: runs, show and gc name it in a UserError", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "afile");
  await Deno.writeTextFile(file, "not a store\n");
  for (
    const [what, p] of [
      ["runs", () => loadRuns(file)],
      ["show", () => resolveRun("latest", file)],
      ["gc", () => collectGarbage(file, { keepLast: 1 })],
      ["gc --dry-run", () => collectGarbage(file, { keepLast: 1, dryRun: true })],
    ] as const
  ) {
    const e = await userError(p);
    assertStringIncludes(e.message, `the store path is a file, not a folder: ${file}`, what);
    assertStringIncludes(e.expected!, "artifact store", what);
  }
  for (const args of [["runs"], ["show", "latest"], ["gc"]]) {
    const r = await cli([...args, "--store", file]);
    assertEquals(r.code, 1, `${args.join(" ")}:\n${r.out}`);
    assertStringIncludes(r.out, `error: field --store: `, args.join(" "));
    assertStringIncludes(r.out, file, args.join(" "));
    assert(!STACK_LINE.test(r.out), `${args.join(" ")}: no stack trace:\n${r.out}`);
  }
});

Deno.test("gc refuses a store that does not exist and does not create it", async () => {
  await using dir = await tempDir();
  const typo = join(dir.path, "no-such-store");
  for (const dryRun of [false, true]) {
    const e = await userError(() => collectGarbage(typo, { keepLast: 1, dryRun }));
    assertStringIncludes(e.message, `the artifact store ${typo} does not exist`);
    assertStringIncludes(e.expected!, "objects/ and runs/");
  }
  const gone = await Deno.stat(typo).then(() => false, () => true);
  assert(gone, "gc created the mistyped store folder");
});

Deno.test("gc on a store it cannot lock is a UserError naming the store and the lock file", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await runExperiment(store);
  // A file where locks/ should be: the lock cannot be taken (as on a store this user may not write).
  await Deno.remove(join(store, "locks"), { recursive: true });
  await Deno.writeTextFile(join(store, "locks"), "");
  const e = await userError(() => collectGarbage(store, { keepLast: 1 }));
  assertStringIncludes(e.message, `cannot lock the store ${store}`);
  assertStringIncludes(e.location.file!, "locks/store.lock");
});

/** A store with two runs whose newest record is truncated (as by a crash or a bad copy). */
async function storeWithTruncatedRecord(store: string) {
  const older = await runExperiment(store, [], "older");
  const newer = await runExperiment(store, ["train.lr=0.002"], "newer");
  const text = await Deno.readTextFile(newer.record!);
  await Deno.writeTextFile(newer.record!, text.slice(0, text.length / 2));
  return { older, newer };
}

Deno.test("an unreadable run record is named on stderr by runs and show, not dropped silently", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const { older, newer } = await storeWithTruncatedRecord(store);
  const named: string[] = [];
  const runs = await loadRuns(store, (r) => named.push(r.file));
  assertEquals(runs.map((r) => r.file), [older.record!]);
  assertEquals(named, [newer.record!]);
  for (const args of [["runs"], ["show", "latest"]]) {
    const r = await cli([...args, "--store", store]);
    assertEquals(r.code, 0, r.out);
    assertStringIncludes(r.out, `warning: skipped the run record ${newer.record}`);
  }
});

Deno.test("gc refuses to remove anything while a run record is unreadable; a dry run warns", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const { newer } = await storeWithTruncatedRecord(store);
  const before = [...Deno.readDirSync(join(store, "objects"))].length;
  const e = await userError(() => collectGarbage(store, { keepLast: 1, warn: () => {} }));
  assertStringIncludes(e.message, "1 run record");
  assertStringIncludes(e.message, "removes nothing");
  assertEquals(e.location.file, newer.record);
  assertStringIncludes(e.hint!, "move the broken record out of runs/");
  assertEquals([...Deno.readDirSync(join(store, "objects"))].length, before, "nothing removed");

  const warnings: string[] = [];
  const dry = await collectGarbage(store, {
    keepLast: 1,
    dryRun: true,
    warn: (t) => warnings.push(t),
  });
  assertEquals(dry.unreadable_records, [newer.record!]);
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], newer.record!);
  // The newer run's train and evaluate artifacts are named by the unreadable record only.
  assertEquals(dry.removed_artifacts.length, 2);

  const r = await cli(["gc", "--store", store]);
  assertEquals(r.code, 1, r.out);
  assertStringIncludes(r.out, "cannot be read");
  assert(!STACK_LINE.test(r.out), `no stack trace:\n${r.out}`);

  const forced = await collectGarbage(store, {
    keepLast: 1,
    ignoreUnreadableRecords: true,
    warn: () => {},
  });
  assertEquals(forced.removed_artifacts.sort(), dry.removed_artifacts.sort());
});

/** Two runs with different training; gc keeps the newer, so the older's train artifact is gone. */
async function storeAfterGc(store: string) {
  const older = await runExperiment(store, [], "older");
  const newer = await runExperiment(store, ["train.lr=0.002"], "newer");
  const r = await collectGarbage(store, { keepLast: 1 });
  const trainKey = (s: typeof older) => s.steps.find((x) => x.step === "train")!.key!;
  assert(
    r.removed_artifacts.includes(trainKey(older)),
    "gc removed the older run's train artifact",
  );
  return { older, newer, olderTrain: trainKey(older), newerTrain: trainKey(newer) };
}

Deno.test("diff after gc: a removed artifact is named with how to rebuild it, not diffed against nothing", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const { older, olderTrain, newerTrain } = await storeAfterGc(store);
  const [a, b] = [await resolveRun("older", store), await resolveRun("newer", store)];
  const d = await diffRuns(a, b, store);
  assertEquals(d.models, {}, "no weights diff against a missing file");
  assertEquals(d.removed.map((r) => [r.step, r.side, r.key]), [["train", "A", olderTrain]]);
  assertStringIncludes(d.removed[0].note, "artifact removed (gc)");
  assertStringIncludes(d.removed[0].note, `deno task pipeline --rerun ${older.record}`);
  const text = renderDiffText(d);
  assertStringIncludes(text, "artifacts removed");
  assertStringIncludes(text, "artifact removed (gc)");

  // Both gone: both named, no section vanishes silently.
  await Deno.remove(join(store, "objects", newerTrain), { recursive: true });
  const both = await diffRuns(a, b, store);
  assertEquals(both.removed.map((r) => `${r.step} ${r.side}`), ["train A", "train B"]);
});

Deno.test("plots of a run whose train artifact was removed is a UserError saying how to rebuild it", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const { older } = await storeAfterGc(store);
  const e = await userError(() => runCurvesOf("older", store));
  assertStringIncludes(
    e.message,
    'run "older": the artifact of its train step "train" is not in the store',
  );
  assertStringIncludes(e.hint!, `--rerun ${older.record}`);
  const kept = await runCurvesOf("newer", store, ["newer"]);
  assertEquals(kept.label.startsWith("newer ("), true, "a label already taken gets the id");
  assert(kept.train.length > 0, "the kept run's curves are read");
});

Deno.test("a sweep over long values gets run names that pass the run-name check, distinct per point", async () => {
  const long = (tail: string) =>
    `0.00100000000000000000000000000000000000000000000000000000000${tail}`;
  const axes = await parseSweeps(
    [`train.lr=${long("1")},${long("2")}`, "train.layers=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],2"],
    "p",
  );
  const names = sweepGrid(axes).map((p) => sweepRunName("exp", p));
  for (const n of names) {
    assert(/^[A-Za-z0-9._=,+-]{1,100}$/.test(n), `a valid run name: ${n} (${n.length})`);
    assert(n.startsWith("exp-sweep-train.lr=0.001"), n);
  }
  assertEquals(new Set(names).size, names.length, names.join("\n"));
  assertEquals(names, sweepGrid(axes).map((p) => sweepRunName("exp", p)), "stable");
  // Short names are left whole.
  const [short] = sweepGrid(await parseSweeps(["train.lr=0.1"], "p"));
  assertEquals(sweepRunName("exp", short), "exp-sweep-train.lr=0.1");

  await using dir = await tempDir();
  const r = await cli([
    "pipeline",
    PIPELINE,
    "--jobs-dir",
    JOBS,
    "--store",
    join(dir.path, "store"),
    "--sweep",
    `train.lr=${long(`${"0".repeat(50)}1`)},${long(`${"0".repeat(50)}2`)}`,
    "--dry-run",
  ]);
  assertEquals(r.code, 0, r.out);
  assertStringIncludes(r.out, "sweep: 2 runs");
});

Deno.test("a bad value in a sweep is worded in terms of --sweep, not --set", async () => {
  const axes = await parseSweeps(["train.layers=2,abc"], "p");
  const point = sweepGrid(axes)[1];
  await using dir = await tempDir();
  const e = await assertRejects(() =>
    runPipeline({
      file: PIPELINE,
      jobsDir: JOBS,
      store: join(dir.path, "store"),
      overrides: point.overrides,
      dryRun: true,
      output: captureOutput(),
    })
  );
  assert(e instanceof UserError && e.message.includes("set by --set train.layers=abc"), String(e));
  const worded = sweepPointError(e, point, axes);
  assert(worded instanceof UserError);
  assertStringIncludes(worded.message, "set by --sweep train.layers=2,abc (the value abc)");
  assert(!worded.format().includes("--set"), worded.format());
  assertEquals(worded.location, e.location);
  const other = new Error("a bug");
  assertEquals(sweepPointError(other, point, axes), other, "not a UserError: left as it is");
});
