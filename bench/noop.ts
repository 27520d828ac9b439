/**
 * Benchmark: wall-clock of a fully cached pipeline re-run, each in a fresh
 * `deno` process (what a user pays for `deno task pipeline X` when nothing
 * changed). Goal: < 0.3 s. DVC's `dvc repro` on an up-to-date pipeline is
 * quoted at ~3 s for comparison (a reference figure, not measured here).
 *
 * By default it times the small fixture pipeline (fixture jobs, temporary
 * store), which needs no GPU and warms in a second; `--pipeline train.yaml`
 * times the real one against the normal store (warming it runs the pipeline
 * once if it has not been run).
 *
 * Standalone: `deno run -A bench/noop.ts [--pipeline FILE] [--jobs-dir DIR] [--store DIR]
 * [--runs N] [--set STEP.PARAM=VALUE]…`.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { median, positiveInt } from "./common.ts";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Options of {@link benchNoop}. */
export interface NoopBenchOptions {
  /** Pipeline file (default: the test fixture pipeline `tests/fixtures/pipelines/basic.yaml`). */
  pipeline?: string;
  /** Jobs folder (default: the fixture jobs when the pipeline is the default, else `jobs/`). */
  jobsDir?: string;
  /** Store (default: a fresh temporary store, removed afterwards). */
  store?: string;
  /** Timed cached re-runs (default 5). */
  runs?: number;
  /** `--set` overrides passed to every run. */
  overrides?: string[];
  /** Print the result (default true). */
  print?: boolean;
}

/** What {@link benchNoop} measured. */
export interface NoopBenchResult {
  pipeline: string;
  /** Each timed re-run's wall-clock, seconds. */
  runs_s: number[];
  /** Median of `runs_s`, seconds. */
  median_s: number;
  goal_s: number;
  meets_goal: boolean;
  /** DVC's no-op `dvc repro` reference, quoted, seconds. */
  dvc_reference_s: number;
  dvc_installed: boolean;
  /** Median wall-clock of `deno run` on an empty script, same machine and moment: the floor. */
  deno_floor_s: number;
}

async function runCli(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; wall_s: number }> {
  const t0 = performance.now();
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-webgpu", join(REPO_ROOT, "main.ts"), "pipeline", ...args],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const wall_s = (performance.now() - t0) / 1000;
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr), wall_s };
}

async function denoFloor(runs: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "samout-bench-floor-" });
  try {
    const file = join(dir, "empty.ts");
    await Deno.writeTextFile(file, "\n");
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", file],
        stdout: "null",
        stderr: "null",
      })
        .output();
      times.push((performance.now() - t0) / 1000);
    }
    return median(times);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function dvcInstalled(): Promise<boolean> {
  try {
    const o = await new Deno.Command("dvc", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return o.success;
  } catch {
    return false;
  }
}

/** Runs the pipeline once to warm the store, then times `runs` fully cached re-runs. */
export async function benchNoop(opts: NoopBenchOptions = {}): Promise<NoopBenchResult> {
  const isDefault = opts.pipeline === undefined;
  const pipeline = opts.pipeline ?? join(REPO_ROOT, "tests/fixtures/pipelines/basic.yaml");
  const jobsDir = opts.jobsDir ?? (isDefault ? join(REPO_ROOT, "tests/fixtures/jobs") : undefined);
  const tmpStore = opts.store === undefined && isDefault
    ? await Deno.makeTempDir({ prefix: "samout-bench-noop-" })
    : undefined;
  const store = opts.store ?? tmpStore;
  const args = [pipeline, "--json"];
  if (store) args.push("--store", store);
  if (jobsDir) args.push("--jobs-dir", jobsDir);
  for (const o of opts.overrides ?? []) args.push("--set", o);
  try {
    const warm = await runCli(args);
    if (warm.code !== 0) throw new Error(`warm-up run failed (exit ${warm.code}):\n${warm.stderr}`);
    const runs_s: number[] = [];
    for (let i = 0; i < (opts.runs ?? 5); i++) {
      const r = await runCli(args);
      if (r.code !== 0) throw new Error(`cached run failed (exit ${r.code}):\n${r.stderr}`);
      const steps: { step: string; status: string }[] = JSON.parse(r.stdout).steps;
      const ran = steps.filter((s) => s.status !== "cached" && s.status !== "pruned");
      if (ran.length) {
        throw new Error(
          `re-run was not fully cached: ${ran.map((s) => `${s.step}=${s.status}`).join(", ")}`,
        );
      }
      runs_s.push(r.wall_s);
    }
    const median_s = median(runs_s);
    const result: NoopBenchResult = {
      pipeline,
      runs_s,
      median_s,
      goal_s: 0.3,
      meets_goal: median_s < 0.3,
      dvc_reference_s: 3,
      dvc_installed: await dvcInstalled(),
      deno_floor_s: await denoFloor(opts.runs ?? 5),
    };
    if (opts.print ?? true) {
      console.log(`noop: fully cached re-run of ${pipeline}, fresh deno process each`);
      console.log(`  runs:   ${runs_s.map((s) => s.toFixed(3)).join(" ")} s`);
      console.log(
        `  median: ${median_s.toFixed(3)} s  (goal < ${result.goal_s} s: ${
          result.meets_goal ? "met" : "NOT met"
        })`,
      );
      console.log(
        `  floor:  ${
          result.deno_floor_s.toFixed(3)
        } s  (deno run of an empty script, for the machine's load)`,
      );
      console.log(
        `  DVC:    "~3 s" for a no-op dvc repro (quoted reference, not measured${
          result.dvc_installed
            ? "; dvc is installed but there is no equivalent DVC project to time"
            : "; dvc not installed"
        })`,
      );
    }
    return result;
  } finally {
    if (tmpStore) await Deno.remove(tmpStore, { recursive: true });
  }
}

if (import.meta.main) {
  const program = new Command()
    .name("bench/noop.ts")
    .description("wall-clock of a fully cached pipeline re-run, each in a fresh deno process")
    .option("--pipeline <file>", "pipeline file (default: the test fixture pipeline)")
    .option("--jobs-dir <dir>", "jobs folder (default: the fixture jobs, or jobs/ for a pipeline)")
    .option("--store <dir>", "store (default: a fresh temporary store, removed afterwards)")
    .option("--runs <n>", "timed cached re-runs (default 5)", positiveInt("--runs"))
    .option(
      "--set <step.param=value>",
      "override passed to every run (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(async (o) => {
      await benchNoop({
        pipeline: o.pipeline,
        jobsDir: o.jobsDir,
        store: o.store,
        runs: o.runs,
        overrides: o.set,
      });
    });
  await program.parseAsync(Deno.args, { from: "user" });
}
