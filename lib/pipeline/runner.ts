/**
 * The runner: loads and plans a pipeline, decides per step whether to run
 * (and why), runs ready steps in parallel under per-key locks, publishes their
 * artifacts, renders progress, and writes a run record.
 *
 * @module
 */
import { join, resolve } from "./path.ts";
import { UserError } from "../errors/mod.ts";
import { canonicalJson, sha256Hex } from "../artifacts/hash.ts";
import {
  type ArtifactStore,
  type CommitResult,
  LocalArtifactStore,
  type VerifyProblem,
} from "../artifacts/store.ts";
import type { ArtifactRef } from "../artifacts/types.ts";
import { checkStorePath, storeFaultError } from "../artifacts/faults.ts";
import { type Plan, type PlannedStep, planPipelineText, type StepIdentity } from "./plan.ts";
import { JobRegistry } from "./registry.ts";
import { checkPipelinePath } from "./file.ts";
import { consoleOutput, formatDuration, type Output, ProgressRenderer } from "./progress.ts";
import {
  findRecordWithKeys,
  finishRunRecord,
  holdRunLock,
  newRunId,
  readRunRecord,
  RunHistory,
  type RunRecord,
  type StepRecord,
  type StepStatus,
  writeRunRecord,
} from "./records.ts";
import { codeFiles } from "./code_hash.ts";
import { setFullSourceHashing } from "./sources.ts";
import { callerDir, DEFAULT_JOBS_DIR, defaultStoreDir, displayPath, REPO_ROOT } from "./paths.ts";
import { dirname } from "./path.ts";
import {
  checkGates,
  evaluateGates,
  type Gate,
  type GateResult,
  type GateStepInfo,
} from "./gates.ts";
import { type FlatMetrics, readFlatMetrics } from "./metrics.ts";
import { lockStore } from "./store_lock.ts";

/** Options of {@link runPipeline}. */
export interface RunOptions {
  /** The pipeline file; a name not found in the current folder is looked up in `pipelines/`. */
  file: string;
  /** Pipeline text to use instead of reading `file` (re-runs from a record). */
  text?: string;
  /** `--set` overrides, as given (`tokenize.codebook_size=256`). */
  overrides?: string[];
  /** Folder of `<job>.ts` modules (default `jobs/`). */
  jobsDir?: string;
  /** A store, or its directory (default `SAMOUT_STORE` or `artifacts/`). */
  store?: ArtifactStore | string;
  /** Print what would run and why; run nothing. */
  dryRun?: boolean;
  /** Steps to re-run even when cached. */
  force?: string[];
  /** Run just this step (its inputs must be in the store). */
  only?: string;
  /** Run this step and its ancestors only. */
  until?: string;
  /** Aborts the run (Ctrl-C); passed to jobs. */
  signal?: AbortSignal;
  /** Where human output goes (default: the console). */
  output?: Output;
  /** Human plan output (dry run) goes to stderr, keeping stdout for JSON. */
  json?: boolean;
  /**
   * Re-hash every cached artifact against its manifest and every source file
   * (no cached hashes) before trusting them; without it, artifacts are checked
   * by file presence and size, and source files by size, mtime, ctime and inode.
   */
  verify?: boolean;
  /** The run record being repeated (`--rerun`): differences from it are reported. */
  rerunOf?: { path: string; record: RunRecord };
  /** A name for the run (`--name`), recorded and usable wherever a run is named. */
  name?: string;
  /** `--fail-if` gates: checked against the plan before anything runs, applied at the end. */
  gates?: Gate[];
  /** Read every step's metrics into the summary even when nothing ran (`--summary-md`). */
  collectMetrics?: boolean;
}

/** One step in a {@link RunSummary}. */
export interface StepSummary {
  step: string;
  job: string;
  status: StepStatus;
  reason: string;
  /** Full step key (absent for pruned steps). */
  key?: string;
  duration_s?: number;
  /** The artifact's flat metrics (top-level scalars of metrics.json), for steps that ran or were cached. */
  metrics?: FlatMetrics;
}

/** What {@link runPipeline} returns. */
export interface RunSummary {
  pipeline: string;
  file: string;
  status: RunRecord["status"] | "dry-run";
  /** Path of the run record (absent for dry runs). */
  record?: string;
  steps: StepSummary[];
  /** The first failure, for the CLI to print (a `UserError` located at its step, or a bug). */
  error?: unknown;
  /** The step whose failure `error` is. */
  failed_step?: string;
  /**
   * A run in which every step was cached writes no record; this is the newest
   * earlier record with the same step keys (what built these artifacts), if any.
   */
  same_as?: string;
  /** Things the user should know that did not stop the run (damaged artifacts set aside, code that differs from a re-run record). */
  warnings: string[];
  /** The run's name (`--name`). */
  name?: string;
  /** The seed the run used. */
  seed?: number;
  /** When the run started (absent for dry runs). */
  started_at?: string;
  /** Wall time of the whole run in seconds (absent for dry runs). */
  duration_s?: number;
  /** The `--fail-if` gates, applied to the run's metrics (absent when none were given or a step failed). */
  gates?: GateResult[];
}

/** Resolves a pipeline argument: a file as given, else `pipelines/<arg>` at the repo root. */
export async function resolvePipelineFile(arg: string): Promise<string> {
  checkPipelinePath(arg); // a folder given as the pipeline: say so, not "not found"
  const candidates = [arg, join(REPO_ROOT, "pipelines", arg)];
  if (!/\.ya?ml$/.test(arg)) candidates.push(join(REPO_ROOT, "pipelines", `${arg}.yaml`));
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* try the next */ }
  }
  const known: string[] = [];
  try {
    for await (const e of Deno.readDir(join(REPO_ROOT, "pipelines"))) {
      if (/\.ya?ml$/.test(e.name)) known.push(e.name);
    }
  } catch { /* no pipelines folder */ }
  throw new UserError(`pipeline file not found`, {
    file: arg,
    expected: `a YAML file, or one of pipelines/: ${known.sort().join(", ") || "(none)"}`,
    found: `no file ${arg} in ${callerDir()} or in ${join(REPO_ROOT, "pipelines")}`,
  });
}

/** Why a step's key differs from another run's: what changed among code, params, inputs, sources and seed. */
export function describeChange(prev: StepIdentity, cur: StepIdentity): string {
  const reasons: string[] = [];
  if (prev.code_hash !== cur.code_hash || prev.version !== cur.version || prev.job !== cur.job) {
    reasons.push(
      prev.version !== cur.version
        ? `code changed (version ${prev.version} -> ${cur.version})`
        : "code changed",
    );
  }
  if (canonicalJson(prev.params) !== canonicalJson(cur.params)) {
    const p = (prev.params ?? {}) as Record<string, unknown>;
    const c = (cur.params ?? {}) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(p), ...Object.keys(c)])].sort()
      .filter((k) => canonicalJson(p[k]) !== canonicalJson(c[k]));
    reasons.push(
      `parameters changed (${
        keys.map((k) => `${k}: ${JSON.stringify(p[k])} -> ${JSON.stringify(c[k])}`).join(", ")
      })`,
    );
  }
  if (canonicalJson(prev.inputs) !== canonicalJson(cur.inputs)) {
    const slots = [...new Set([...Object.keys(prev.inputs), ...Object.keys(cur.inputs)])].sort()
      .filter((s) => prev.inputs[s] !== cur.inputs[s]);
    reasons.push(`input changed (${slots.join(", ")})`);
  }
  if (canonicalJson(prev.sources) !== canonicalJson(cur.sources)) {
    const paths = [...new Set([...Object.keys(prev.sources), ...Object.keys(cur.sources)])].sort()
      .filter((s) => prev.sources[s] !== cur.sources[s]);
    reasons.push(`source changed (${paths.join(", ")})`);
  }
  if (prev.seed !== cur.seed) reasons.push(`seed changed (${prev.seed} -> ${cur.seed})`);
  return reasons.join("; ") || "output missing";
}

/**
 * How far apart two identities are: one for each of code, parameters, sources
 * and seed that differ, two for each input slot (an input that differs means
 * more upstream differs too, which its own step explains).
 */
function changeCount(prev: StepIdentity, cur: StepIdentity): number {
  let n = 0;
  if (prev.code_hash !== cur.code_hash || prev.version !== cur.version) n++;
  if (canonicalJson(prev.params) !== canonicalJson(cur.params)) n++;
  for (const slot of new Set([...Object.keys(prev.inputs), ...Object.keys(cur.inputs)])) {
    if (prev.inputs[slot] !== cur.inputs[slot]) n += 2;
  }
  if (canonicalJson(prev.sources) !== canonicalJson(cur.sources)) n++;
  if (prev.seed !== cur.seed) n++;
  return n;
}

function ancestors(plan: Plan, step: string): Set<string> {
  const out = new Set<string>();
  const visit = (n: string) => {
    if (out.has(n)) return;
    out.add(n);
    for (const dep of Object.values(plan.steps.get(n)!.inputs)) visit(dep);
  };
  visit(step);
  return out;
}

/**
 * The artifacts a step reads through its `upstream` slots: each such input's
 * own inputs (`{ via: "scan", slot: "audio", dep: "synth" }`).
 */
function upstreamOf(plan: Plan, st: PlannedStep): { via: string; slot: string; dep: string }[] {
  return (st.upstream ?? []).flatMap((via) =>
    Object.entries(plan.steps.get(st.inputs[via])!.inputs).map(([slot, dep]) => ({
      via,
      slot,
      dep,
    }))
  );
}

/** Every step whose artifact a step reads: its inputs and what it reads through them. */
function readsFrom(plan: Plan, st: PlannedStep): string[] {
  return [...Object.values(st.inputs), ...upstreamOf(plan, st).map((u) => u.dep)];
}

function checkStepName(plan: Plan, name: string, flag: string): void {
  const st = plan.steps.get(name);
  const active = plan.order.filter((n) => plan.steps.get(n)!.active);
  if (!st || !st.active) {
    throw new UserError(
      st
        ? `${flag} ${name}: the step is pruned (no remaining step uses its output)`
        : `${flag} ${name}: no such step`,
      { file: plan.spec.file, expected: `one of the steps ${active.join(", ")}`, found: name },
    );
  }
}

const short = (key?: string) => key?.slice(0, 12) ?? "";

/** `a.txt: file missing; b.bin: size 3 bytes, manifest says 4` (at most three). */
function describeProblems(problems: VerifyProblem[]): string {
  const shown = problems.slice(0, 3).map((p) => `${p.path || "(artifact)"}: ${p.problem}`);
  if (problems.length > 3) shown.push(`and ${problems.length - 3} more`);
  return shown.join("; ");
}

/** Steps that depend on `names`, directly or not, in plan order (`names` included). */
function withDependants(plan: Plan, names: Set<string>): string[] {
  const out = new Set(names);
  for (const n of plan.order) {
    if (Object.values(plan.steps.get(n)!.inputs).some((d) => out.has(d))) out.add(n);
  }
  return plan.order.filter((n) => out.has(n));
}

/** Which code files differ between a run record and now: `a.ts changed, b.ts added`. */
function describeCodeFiles(
  before: Record<string, string> | undefined,
  now: Record<string, string>,
): string {
  if (!before) return "";
  const changed: string[] = [];
  for (const name of [...new Set([...Object.keys(before), ...Object.keys(now)])].sort()) {
    if (before[name] === now[name]) continue;
    changed.push(
      `${name} ${
        before[name] === undefined ? "added" : now[name] === undefined ? "removed" : "changed"
      }`,
    );
  }
  const shown = changed.slice(0, 6);
  if (changed.length > 6) shown.push(`${changed.length - 6} more`);
  return shown.join(", ");
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n") +
    "\n";
}

/**
 * Loads, validates, plans and (unless `dryRun`) runs a pipeline. Throws
 * `UserError` for invalid input. A run holds the store lock shared
 * (`store_lock.ts`), so `gc` never removes what it has found cached.
 */
export async function runPipeline(options: RunOptions): Promise<RunSummary> {
  if (options.dryRun) return await runLocked(options);
  const root = typeof options.store === "object"
    ? options.store.localDir
    : resolve(options.store ?? defaultStoreDir());
  const out = options.output ?? consoleOutput();
  const release = await lockStore(
    root,
    false,
    () => out.err(`waiting for a clean-up (gc) of ${displayPath(root)} to finish\n`),
  );
  try {
    return await runLocked(options);
  } finally {
    release?.();
  }
}

/**
 * {@link runPipeline} once the store lock is held (or not needed): plan, decide
 * per step, then a dry run's table, the up-to-date answer, or the run itself.
 */
async function runLocked(options: RunOptions): Promise<RunSummary> {
  const run = await PipelineRun.plan(options);
  await run.decide();
  if (options.dryRun) return run.dryRun();
  if (!run.toRun.length) return run.upToDate();
  try {
    await run.writeStartRecord();
    await run.execute();
    return run.finish();
  } finally {
    run.releaseRunLock();
  }
}

/** A step's summary and the entry the run record keeps of it. */
type StepEntry = StepSummary & { record: StepRecord };

/** One run of a planned pipeline, phase by phase (see {@link runLocked}). */
class PipelineRun {
  readonly options: RunOptions;
  readonly out: Output;
  readonly signal: AbortSignal;
  /** The pipeline file as shown to the user. */
  readonly file: string;
  readonly text: string;
  readonly store: ArtifactStore;
  readonly registry: JobRegistry;
  readonly plan: Plan;
  /** Steps given to `--force`. */
  readonly forced: Set<string>;
  /** Steps this run may run: all active ones, or `--only`'s, or `--until`'s and its ancestors. */
  readonly selected: Set<string>;
  readonly warnings: string[] = [];
  /** The published artifact of every step that ran or was cached, by step. */
  readonly refs = new Map<string, ArtifactRef>();
  /** Every step's summary and record entry, in plan order. */
  readonly steps = new Map<string, StepEntry>();
  /** The steps to run, in plan order. */
  readonly toRun: PlannedStep[] = [];
  readonly runsDir: string;
  #startedAt = new Date();
  #record?: RunRecord;
  /** Releases the run's lock (`locks/run-<id>.lock`), held from the first record to the last. */
  #runLock?: () => void;
  #firstError: unknown;
  #failedStep?: string;

  private constructor(
    options: RunOptions,
    fields: {
      file: string;
      text: string;
      store: ArtifactStore;
      registry: JobRegistry;
      plan: Plan;
      selected: Set<string>;
    },
  ) {
    this.options = options;
    this.out = options.output ?? consoleOutput();
    this.signal = options.signal ?? new AbortController().signal;
    this.file = fields.file;
    this.text = fields.text;
    this.store = fields.store;
    this.registry = fields.registry;
    this.plan = fields.plan;
    this.selected = fields.selected;
    this.forced = new Set(options.force ?? []);
    this.runsDir = join(fields.store.localDir, "runs");
  }

  /**
   * Reads and plans the pipeline, and checks the step flags and gates against
   * the plan before anything runs.
   */
  static async plan(options: RunOptions): Promise<PipelineRun> {
    const fileArg = options.text === undefined
      ? await resolvePipelineFile(options.file)
      : options.file;
    const file = displayPath(fileArg);
    let text: string;
    if (options.text !== undefined) text = options.text;
    else {
      try {
        text = Deno.readTextFileSync(fileArg);
      } catch (e) {
        throw new UserError(`cannot read the pipeline file`, { file, found: String(e) });
      }
    }
    const store = typeof options.store === "object"
      ? options.store
      : new LocalArtifactStore(resolve(options.store ?? defaultStoreDir()));
    checkStorePath(store.localDir);
    const registry = new JobRegistry(options.jobsDir ?? DEFAULT_JOBS_DIR);
    setFullSourceHashing(options.verify ?? false);
    let plan: Plan;
    try {
      plan = await planPipelineText(text, file, options.overrides ?? [], registry, store);
    } finally {
      setFullSourceHashing(false);
    }

    for (const f of options.force ?? []) checkStepName(plan, f, "--force");
    if (options.only) checkStepName(plan, options.only, "--only");
    if (options.until) checkStepName(plan, options.until, "--until");
    if (options.only && options.until) {
      throw new UserError(`--only and --until cannot be combined`, {
        file,
        expected: "one of them",
      });
    }
    const selected: Set<string> = options.only
      ? new Set([options.only])
      : options.until
      ? ancestors(plan, options.until)
      : new Set(plan.order.filter((n) => plan.steps.get(n)!.active));
    for (const f of options.force ?? []) {
      if (selected.has(f)) continue;
      const selection = options.only ? `--only ${options.only}` : `--until ${options.until}`;
      throw new UserError(`--force ${f}: the step is outside the selection (${selection})`, {
        file,
        step: f,
        expected: `one of the selected steps ${
          plan.order.filter((n) => selected.has(n)).join(", ")
        }`,
        found: f,
        hint: `drop --force ${f}, or widen the selection to include it ` +
          `(--until ${f} or a step that depends on it, or neither --only nor --until)`,
      });
    }
    if (options.gates?.length) {
      const info = new Map<string, GateStepInfo>();
      for (const name of plan.order) {
        const st = plan.steps.get(name)!;
        const gated = options.gates.some((g) => g.step === name);
        const { job } = gated
          ? await registry.load(st.jobName, { file, step: name })
          : { job: undefined };
        info.set(name, {
          job: st.jobName,
          metrics: job?.metrics,
          inRun: st.active && selected.has(name),
        });
      }
      checkGates(options.gates, info, file);
    }
    const run = new PipelineRun(options, { file, text, store, registry, plan, selected });
    if (options.rerunOf) {
      await warnCodeDiffers(plan, registry, options.rerunOf, (m) => run.warn(m));
    }
    return run;
  }

  /** Records a warning and tells the user now. */
  warn(message: string): void {
    this.warnings.push(message);
    this.out.err(`warning: ${message}\n`);
  }

  /** A store fault (full disk, read-only, …) as a UserError; anything else as it is. */
  #fault(e: unknown, doing: string): unknown {
    return storeFaultError(e, this.store.localDir, doing) ?? e;
  }

  /**
   * A published artifact that may be trusted: its files are all there with
   * their manifest sizes (and hashes with `verify`). A damaged one is moved
   * to quarantine, the user is told where, and undefined is returned.
   */
  async #trusted(step: string, key: string): Promise<{ ref?: ArtifactRef; damage?: string }> {
    const ref = await this.store.get(key);
    if (!ref) return {};
    const problems = await this.store.check(ref, this.options.verify ? "hashes" : "sizes");
    if (!problems.length) return { ref };
    const what = describeProblems(problems);
    if (this.options.dryRun) return { damage: `output damaged (${what})` };
    let aside: string | undefined;
    try {
      aside = await this.store.quarantine(key, problems);
    } catch (e) {
      const f = storeFaultError(
        e,
        this.store.localDir,
        `setting aside the damaged artifact ${short(key)}`,
      );
      if (!f) throw e;
      throw new UserError(
        `the artifact of step "${step}" (${
          short(key)
        }) is damaged and cannot be set aside: ${f.message}`,
        { file: ref.dir, step, found: what, hint: f.hint },
      );
    }
    this.warn(
      `the artifact of step "${step}" (${short(key)}) does not match its manifest (${what}); ` +
        (aside ? `moved to ${displayPath(aside)}; ` : "") + `it will be built again`,
    );
    return { damage: `output damaged, set aside (${what})` };
  }

  /**
   * Decides every step: pruned, not selected, cached, or to run with the
   * reason why; with `--only`, finds its inputs in the store.
   */
  async decide(): Promise<void> {
    const { plan, options } = this;
    const history = new RunHistory(this.runsDir, plan.spec.name);
    for (const name of plan.order) {
      const st = plan.steps.get(name)!;
      const entry = (status: StepStatus, reason: string) => {
        const s = { step: name, job: st.jobName, status, reason, key: st.key };
        this.steps.set(name, {
          ...s,
          record: { job: st.jobName, status, reason, key: st.key, identity: st.identity },
        });
      };
      if (!st.active) {
        entry("pruned", "pruned: no remaining step uses its output");
        continue;
      }
      if (!this.selected.has(name)) {
        entry(
          "not-run",
          `not selected (${options.only ? `--only ${options.only}` : `--until ${options.until}`})`,
        );
        continue;
      }
      const { ref, damage } = this.forced.has(name) ? {} : await this.#trusted(name, st.key!);
      if (ref) {
        this.refs.set(name, ref);
        entry("cached", "cached");
        continue;
      }
      let reason: string;
      if (this.forced.has(name)) reason = "forced (--force)";
      else if (damage) reason = damage;
      else {
        const prev = await history.last(name);
        if (!prev?.identity) reason = "new (never run)";
        else if (prev.key === st.key) {
          reason = prev.status === "failed" ? "last run failed" : "output missing";
        } else {
          // Explain against the earlier run that differs least (a cached input re-used from an
          // older run is not "input changed" when only this step's parameters moved).
          const near = await history.closest(name, (s) => changeCount(s.identity!, st.identity!));
          reason = describeChange((near ?? prev).identity!, st.identity!);
        }
      }
      entry("not-run", reason);
      this.toRun.push(st);
    }
    if (options.only) {
      const st = plan.steps.get(options.only)!;
      const reads = [
        ...Object.entries(st.inputs).map(([slot, dep]) => ({ slot, dep })),
        ...upstreamOf(plan, st).map((u) => ({ slot: `${u.via}.${u.slot}`, dep: u.dep })),
      ];
      for (const { slot, dep } of reads) {
        const { ref, damage } = await this.#trusted(dep, plan.steps.get(dep)!.key!);
        if (!ref) {
          throw new UserError(
            `--only ${options.only}: input "${slot}" (step "${dep}") is not in the store${
              damage ? ` (${damage})` : ""
            }`,
            {
              file: this.file,
              step: options.only,
              expected: `a published artifact for step "${dep}" (key ${
                short(plan.steps.get(dep)!.key)
              })`,
              found: "none",
              hint: `run with --until ${options.only} to build its inputs too`,
            },
          );
        }
        this.refs.set(dep, ref);
      }
    }
    this.#startedAt = new Date();
  }

  /** Prints what would run and why; runs nothing. */
  dryRun(): RunSummary {
    const { plan, steps, toRun } = this;
    const spec = plan.spec;
    const print = this.options.json ? this.out.err : this.out.out;
    const rows = [["step", "job", "action", "key", "reason"]];
    for (const name of plan.order) {
      const s = steps.get(name)!;
      const willRun = toRun.some((t) => t.name === name);
      rows.push([name, s.job, willRun ? "would run" : s.status, short(s.key), s.reason]);
    }
    print(`dry run of ${this.file} (${spec.name}, seed ${spec.seed}):\n` + table(rows));
    return {
      pipeline: spec.name,
      file: this.file,
      status: "dry-run",
      steps: [...steps.values()].map(({ record: _r, ...s }) => ({
        ...s,
        status: toRun.some((t) => t.name === s.step) ? "not-run" as const : s.status,
      })),
      warnings: this.warnings,
    };
  }

  /**
   * Nothing to do: the record of this run would repeat one already written,
   * so none is written (no clutter, and a read-only store serves cached runs);
   * it names the earlier one.
   */
  upToDate(): RunSummary {
    const spec = this.plan.spec;
    const keys: Record<string, string> = {};
    for (const [name, s] of this.steps) if (s.status === "cached") keys[name] = s.key!;
    const sameAs = findRecordWithKeys(this.runsDir, spec.name, keys);
    if (this.options.gates?.length || this.options.collectMetrics) this.#collectMetrics();
    const duration = (Date.now() - this.#startedAt.getTime()) / 1000;
    this.out.err(
      this.#table() +
        `succeeded in ${formatDuration(duration)}: ` +
        `every step cached, no record written${
          sameAs ? `; these artifacts were built by ${displayPath(sameAs)}` : ""
        }\n`,
    );
    return {
      pipeline: spec.name,
      file: this.file,
      status: "succeeded",
      steps: [...this.steps.values()].map(({ record: _r, ...s }) => s),
      same_as: sameAs,
      warnings: this.warnings,
      name: this.options.name,
      seed: spec.seed,
      started_at: this.#startedAt.toISOString(),
      duration_s: Math.round(duration * 1000) / 1000,
      gates: this.#applyGates(),
    };
  }

  /** Writes the run record before any step runs, so that a killed run leaves a trace. */
  async writeStartRecord(): Promise<void> {
    const { plan, options, registry } = this;
    const spec = plan.spec;
    const code: Record<string, Record<string, string>> = {};
    for (const st of plan.steps.values()) {
      if (st.active && !(st.jobName in code)) {
        code[st.jobName] = await codeFiles(st.jobFile, dirname(registry.dir));
      }
    }
    const record: RunRecord = {
      format: 1,
      id: newRunId(spec.name, this.#startedAt),
      name: options.name,
      pipeline: {
        name: spec.name,
        file: this.file,
        sha256: await sha256Hex(this.text),
        text: this.text,
      },
      overrides: spec.overrides,
      seed: spec.seed,
      jobs_dir: displayPath(registry.dir),
      options: {
        force: options.force,
        only: options.only,
        until: options.until,
        verify: options.verify || undefined,
      },
      started_at: this.#startedAt.toISOString(),
      status: "running",
      steps: Object.fromEntries([...this.steps].map(([n, s]) => [n, s.record])),
      code,
      rerun_of: options.rerunOf ? displayPath(options.rerunOf.path) : undefined,
      warnings: this.warnings.length ? this.warnings : undefined,
    };
    this.#record = record;
    try {
      await this.store.cleanStaleStaging();
      // Before the record: a reader that finds it `running` with the lock free knows the run died.
      this.#runLock = holdRunLock(this.store.localDir, record.id);
      writeRunRecord(this.runsDir, record);
    } catch (e) {
      throw this.#fault(e, "writing the run record");
    }
  }

  /**
   * Runs the steps, each as soon as its inputs are published, until all have
   * run, one has failed (the running ones finish), or the run is interrupted.
   */
  async execute(): Promise<void> {
    const renderer = new ProgressRenderer(this.out);
    const running = new Map<string, Promise<void>>();
    const pending = new Set(this.toRun.map((s) => s.name));
    try {
      while (true) {
        if (this.#firstError === undefined && !this.signal.aborted) {
          for (const name of [...pending]) {
            const st = this.plan.steps.get(name)!;
            if (readsFrom(this.plan, st).every((d) => this.refs.has(d))) {
              pending.delete(name);
              running.set(name, this.#runStep(st, renderer).finally(() => running.delete(name)));
            }
          }
        }
        if (running.size === 0) break;
        await Promise.race(running.values());
      }
    } finally {
      renderer.close();
    }
    for (const name of pending) {
      const s = this.steps.get(name)!;
      s.reason = this.signal.aborted
        ? "not run: interrupted"
        : this.#firstError !== undefined
        ? "not run: an earlier step failed"
        : `not run: ${s.reason}`;
      s.record.reason = s.reason;
    }
  }

  /**
   * Runs one step under its key's lock: publishes its artifact, or finds that
   * a concurrent run did; a failure is kept for {@link finish} (the first one
   * stops new steps from starting).
   */
  async #runStep(st: PlannedStep, renderer: ProgressRenderer): Promise<void> {
    const { store, signal } = this;
    const file = this.file;
    const s = this.steps.get(st.name)!;
    const t0 = performance.now();
    s.record.started_at = new Date().toISOString();
    const key = st.key!;
    renderer.line(`> ${st.name} (${st.jobName}) ${short(key)}: ${s.reason}`);
    try {
      const waitNote = setTimeout(
        () => renderer.line(`  ${st.name}: waiting for another run that holds ${short(key)}`),
        1000,
      );
      const release = await store.lock(key).finally(() => clearTimeout(waitNote));
      try {
        const meanwhile = this.forced.has(st.name) ? undefined : await store.get(key);
        if (meanwhile && !(await store.check(meanwhile, "sizes")).length) {
          this.refs.set(st.name, meanwhile);
          s.status = "cached";
          s.reason = "published by a concurrent run";
          return;
        }
        const staging = await store.begin(key);
        const ui = renderer.begin(st.name);
        try {
          const inputs: Record<string, ArtifactRef> = {};
          for (const [slot, dep] of Object.entries(st.inputs)) inputs[slot] = this.refs.get(dep)!;
          const upstream: Record<string, Record<string, ArtifactRef>> = {};
          for (const { via, slot, dep } of upstreamOf(this.plan, st)) {
            (upstream[via] ??= {})[slot] = this.refs.get(dep)!;
          }
          const started = new Date();
          const { job } = await this.registry.load(st.jobName, { file, step: st.name });
          const result = await job.run({
            step: st.name,
            pipelineFile: file,
            params: st.params,
            inputs,
            upstream,
            seed: this.plan.spec.seed,
            outDir: staging.dir,
            workDir: await store.workDir(key),
            cacheDir: join(store.localDir, "cache"),
            progress: ui.progress,
            log: ui.log,
            signal,
          });
          signal.throwIfAborted();
          const id = st.identity!;
          const ref: CommitResult = await store.commit(
            staging,
            {
              job: id.job,
              job_version: id.version,
              code_hash: id.code_hash,
              step: st.name,
              params: id.params,
              inputs: id.inputs,
              sources: id.sources,
              started_at: started.toISOString(),
              finished_at: new Date().toISOString(),
              environment: {
                deno: Deno.version.deno,
                os: Deno.build.os,
                arch: Deno.build.arch,
                ...(result?.environment ?? {}),
              },
            },
            result?.metrics ?? {},
          );
          this.refs.set(st.name, ref);
          s.status = "ran";
          if (ref.outcome === "reproduced") {
            s.reason += `; reproduced bit-identically, the published artifact is kept${
              ref.metricsDiffer?.length
                ? ` (metrics that differ, e.g. timings, kept as published: ${
                  ref.metricsDiffer.join(", ")
                })`
                : ""
            }`;
          }
          if (ref.quarantined) {
            this.warn(
              `a damaged artifact under ${short(key)} (step "${st.name}") was moved to ${
                displayPath(ref.quarantined)
              } before publishing the new one`,
            );
          }
        } catch (e) {
          await store.abort(staging);
          throw e;
        } finally {
          ui.end();
        }
      } finally {
        release();
      }
    } catch (e) {
      s.status = "failed";
      let err = signal.aborted ? e : this.#fault(e, `running step "${st.name}"`);
      if (signal.aborted) s.reason = "interrupted";
      else if (err instanceof UserError) {
        err = err.withLocation({ step: st.name, file });
        s.reason = `failed: ${(err as UserError).message}`;
      } else s.reason = `failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
      if (this.#firstError === undefined) {
        this.#firstError = err;
        this.#failedStep = st.name;
      }
    } finally {
      const secs = (performance.now() - t0) / 1000;
      s.duration_s = Math.round(secs * 1000) / 1000;
      s.record.finished_at = new Date().toISOString();
      s.record.duration_s = s.duration_s;
      s.record.status = s.status;
      s.record.reason = s.reason;
      this.#writeProgress();
      const mark = s.status === "failed" ? "x" : "=";
      renderer.line(
        `${mark} ${st.name} ${s.status} in ${formatDuration(secs)}${
          s.status === "failed" ? `: ${s.reason}` : ""
        }`,
      );
    }
  }

  /**
   * Rewrites the `running` record with the steps finished so far, so that a
   * run killed outright (SIGKILL, a lost machine) still says what it built.
   */
  #writeProgress(): void {
    const record = this.#record!;
    this.#collectMetrics();
    record.warnings = this.warnings.length ? this.warnings : undefined;
    try {
      writeRunRecord(this.runsDir, record);
    } catch {
      // The final record is written at the end, and says so when it cannot be (full disk).
    }
  }

  /** Releases the run's lock: after the final record, or when the run ends without one. */
  releaseRunLock(): void {
    this.#runLock?.();
  }

  /** Completes the run record (status, metrics, gates, error) and prints the summary table. */
  finish(): RunSummary {
    const record = this.#record!;
    const spec = this.plan.spec;
    const firstError = this.#firstError;
    const status: RunRecord["status"] = this.signal.aborted
      ? "interrupted"
      : firstError !== undefined
      ? "failed"
      : "succeeded";
    record.status = status;
    record.finished_at = new Date().toISOString();
    this.#collectMetrics();
    const gates = status === "succeeded" ? this.#applyGates() : undefined;
    if (gates) {
      record.gates = gates.map(({ text, value, passed }) => ({ gate: text, value, passed }));
    }
    if (firstError !== undefined) {
      record.error = firstError instanceof UserError
        ? firstError.format()
        : firstError instanceof Error
        ? String(firstError.stack ?? firstError.message)
        : String(firstError);
    }
    record.steps = Object.fromEntries([...this.steps].map(([n, s]) => [n, s.record]));
    record.warnings = this.warnings.length ? this.warnings : undefined;
    const written = finishRunRecord(this.runsDir, record);
    if (written.problem) this.warn(written.problem);
    this.releaseRunLock();

    const duration = (Date.now() - this.#startedAt.getTime()) / 1000;
    this.out.err(
      this.#table() +
        `${status} in ${formatDuration(duration)}; record ${displayPath(written.path)}\n`,
    );
    return {
      pipeline: spec.name,
      file: this.file,
      status,
      record: written.path,
      steps: [...this.steps.values()].map(({ record: _r, ...s }) => s),
      error: firstError,
      failed_step: this.#failedStep,
      warnings: this.warnings,
      name: this.options.name,
      seed: spec.seed,
      started_at: this.#startedAt.toISOString(),
      duration_s: Math.round(duration * 1000) / 1000,
      gates,
    };
  }

  /** The steps' table: status, time, key and reason. */
  #table(): string {
    const r = [["step", "job", "status", "time", "key", "reason"]];
    for (const name of this.plan.order) {
      const s = this.steps.get(name)!;
      r.push([
        name,
        s.job,
        s.status,
        s.duration_s !== undefined ? formatDuration(s.duration_s) : "",
        short(s.key),
        s.reason === "cached" ? "" : s.reason,
      ]);
    }
    return table(r);
  }

  /**
   * Reads the flat metrics of each finished step not read yet into its summary
   * and record entry. A published artifact does not change, so each step's
   * metrics.json is read once, however often the progress record is rewritten.
   */
  #collectMetrics(): void {
    for (const [name, s] of this.steps) {
      if (s.metrics !== undefined || (s.status !== "ran" && s.status !== "cached")) continue;
      const ref = this.refs.get(name);
      if (!ref) continue;
      s.metrics = readFlatMetrics(ref.dir);
      s.record.metrics = s.metrics;
    }
  }

  /** The `--fail-if` gates applied to the steps' metrics (undefined without gates). */
  #applyGates(): GateResult[] | undefined {
    const gates = this.options.gates;
    return gates?.length
      ? evaluateGates(gates, Object.fromEntries([...this.steps].map(([n, s]) => [n, s.metrics])))
      : undefined;
  }
}

/**
 * Tells the user how the code now differs from a run record's: per step whose
 * job code differs, what changed (files named when the record lists them), and
 * which steps therefore run today's code instead of reusing the recorded artifacts.
 */
async function warnCodeDiffers(
  plan: Plan,
  registry: JobRegistry,
  rerunOf: { path: string; record: RunRecord },
  warn: (message: string) => void,
): Promise<void> {
  const rec = rerunOf.record;
  const codeChanged = new Set<string>();
  const details: string[] = [];
  for (const name of plan.order) {
    const st = plan.steps.get(name)!;
    const prev = rec.steps?.[name]?.identity;
    if (!st.active || !prev || !st.identity) continue;
    if (prev.code_hash === st.identity.code_hash && prev.version === st.identity.version) continue;
    codeChanged.add(name);
    const files = describeCodeFiles(
      rec.code?.[st.jobName],
      await codeFiles(st.jobFile, dirname(registry.dir)),
    );
    details.push(`${name}: ${describeChange(prev, st.identity)}${files ? ` (${files})` : ""}`);
  }
  if (!codeChanged.size) return;
  const affected = withDependants(plan, codeChanged).filter((n) => plan.steps.get(n)!.active);
  warn(
    `the code differs from the code recorded in ${displayPath(rerunOf.path)}: ${
      details.join("; ")
    }. Steps that will run today's code instead of reusing the recorded artifacts: ${
      affected.join(", ")
    }. To repeat the recorded run exactly, check out the code it ran with first`,
  );
}

/** Re-runs a pipeline exactly from a run record: the stored YAML text and the same overrides. */
export async function rerunFromRecord(
  recordPath: string,
  options: Omit<RunOptions, "file" | "text" | "overrides" | "rerunOf">,
): Promise<RunSummary> {
  const rec = await readRunRecord(recordPath);
  const jobsDir = options.jobsDir ?? resolve(REPO_ROOT, rec.jobs_dir);
  return await runPipeline({
    ...options,
    jobsDir,
    file: rec.pipeline.file,
    text: rec.pipeline.text,
    overrides: rec.overrides,
    rerunOf: { path: recordPath, record: rec },
  });
}
