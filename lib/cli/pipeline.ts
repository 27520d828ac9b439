/**
 * `main.ts pipeline`: run a pipeline file (or re-run a run record).
 *
 * ```
 * deno task pipeline train.yaml --set tokenize.codebook_size=256 --dry-run
 * deno task pipeline rerun artifacts/runs/<id>.json
 * ```
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { preferTrainingThreads } from "../gpu/device.ts";
import { rerunFromRecord, runPipeline, type RunSummary } from "../pipeline/runner.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { dirname, join, resolve } from "node:path";
import { defaultStoreDir, displayPath } from "../pipeline/paths.ts";
import { GATE_FAILED_EXIT, parseGate } from "../pipeline/gates.ts";
import { MAX_RUN_NAME } from "../pipeline/records.ts";
import { fromCaller } from "./caller.ts";

/** The command's exit codes (README, "Exit codes"). */
export const EXIT = {
  /** Every step succeeded (or was cached) and every gate passed. */
  ok: 0,
  /** Bad input (pipeline file, options, data) or a step that failed with a reported error. */
  failed: 1,
  /** A bug: an unexpected error (with its stack trace). */
  bug: 2,
  /** Every step succeeded but a `--fail-if` gate failed. */
  gate: GATE_FAILED_EXIT,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** The characters of a run name, 1 to {@link MAX_RUN_NAME} of them. */
const RUN_NAME_RE = new RegExp(`^[A-Za-z0-9._=,+-]{1,${MAX_RUN_NAME}}$`);

/** A `--name`: letters, digits and `._=,+-`, not `latest…` (which names other runs), at most {@link MAX_RUN_NAME}. */
export function checkRunName(name: string): void {
  if (!RUN_NAME_RE.test(name) || /^latest(~\d*)?$/.test(name)) {
    throw new UserError(`bad run name "${name}"`, {
      field: "--name",
      expected: `1-${MAX_RUN_NAME} of A-Z a-z 0-9 . _ = , + - and not latest or latest~N`,
      found: name,
    });
  }
}

/**
 * The command's options, once: read by {@link quickParse} on the fast path, by
 * commander for `--help` and usage errors.
 */
const OPTIONS = {
  set: {
    type: "string",
    multiple: true,
    arg: "<path=value>",
    help: "override a parameter (STEP.PARAM=VALUE, seed=N); repeatable",
  },
  "dry-run": { type: "boolean", help: "print what would run and why; run nothing" },
  force: {
    type: "string",
    multiple: true,
    arg: "<step>",
    help: "re-run this step even if cached; repeatable",
  },
  only: { type: "string", arg: "<step>", help: "run just this step (its inputs must be cached)" },
  until: { type: "string", arg: "<step>", help: "run this step and its ancestors only" },
  store: {
    type: "string",
    arg: "<dir>",
    help: "artifact store (default $SAMOUT_STORE or artifacts/)",
  },
  "jobs-dir": { type: "string", arg: "<dir>", help: "folder of job modules (default jobs/)" },
  json: {
    type: "boolean",
    help: "print a machine-readable run summary on stdout (human output on stderr)",
  },
  rerun: {
    type: "string",
    arg: "<run>",
    help: "re-run exactly what a run ran (its YAML text and overrides): " +
      "latest, latest~N, id, name or record file",
  },
  verify: {
    type: "boolean",
    help: "re-hash cached artifacts and source files fully before trusting them (use in CI)",
  },
  name: {
    type: "string",
    arg: "<name>",
    help: "name the run (then usable wherever a run is named: runs, show, diff, --model)",
  },
  "fail-if": {
    type: "string",
    multiple: true,
    arg: "<gate>",
    help: "exit 3 when STEP.METRIC OP NUMBER holds at the end, e.g. 'evaluate.test_loss > 3'",
  },
  "summary-md": {
    type: "string",
    arg: "<file>",
    help: "write a Markdown summary (steps, cache hits, metrics, gates; GitHub job summary shape)",
  },
  baseline: {
    type: "string",
    arg: "<run>",
    help: "compare with this run in --summary-md (latest, latest~N, id, name)",
  },
  sweep: {
    type: "string",
    multiple: true,
    arg: "<path=v1,v2>",
    help: "run the grid of these values (STEP.PARAM=V1,V2; repeatable: cartesian product), " +
      "one named run after another, then print a comparison table best first",
  },
} as const;

/** Parsed command line. */
interface PipelineArgs {
  file?: string;
  set: string[];
  dryRun?: boolean;
  force: string[];
  only?: string;
  until?: string;
  store?: string;
  jobsDir?: string;
  json?: boolean;
  rerun?: string;
  verify?: boolean;
  name?: string;
  failIf: string[];
  summaryMd?: string;
  baseline?: string;
  sweep: string[];
}

/**
 * The commander program built from {@link OPTIONS}. It is loaded only for
 * `--help` and malformed command lines: importing any npm package costs more
 * than a whole cached re-run is allowed to take.
 */
async function commanderParse(args: string[]): Promise<PipelineArgs | number> {
  const { Command } = await import("@commander-js/extra-typings");
  const out = consoleOutput();
  const cmd = new Command("pipeline")
    .description("Run a pipeline: steps whose key is already in the store are skipped.")
    .argument("[file]", "pipeline YAML (a name not found here is looked up in pipelines/)")
    .addHelpText("after", "\nAlso: pipeline rerun RECORD  (same as --rerun RECORD)")
    .exitOverride()
    .configureOutput({ writeOut: (t) => out.out(t), writeErr: (t) => out.err(t) });
  for (const [name, o] of Object.entries(OPTIONS)) {
    const flag = "arg" in o ? `--${name} ${o.arg}` : `--${name}`;
    if ("multiple" in o) cmd.option(flag, o.help, (v: string, prev: string[]) => [...prev, v], []);
    else cmd.option(flag, o.help);
  }
  try {
    await cmd.parseAsync(args, { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code !== "number") throw e;
    // A usage error commander has printed: under --json, stdout says so too.
    if (code !== 0 && wantsJson(args)) {
      out.out(invalidJson((e as Error).message.replace(/^error: /, "")));
    }
    return code;
  }
  const o = cmd.opts() as Record<string, unknown>;
  return {
    ...(o as Omit<PipelineArgs, "file">),
    file: cmd.args[0],
    set: (o.set as string[]) ?? [],
    force: (o.force as string[]) ?? [],
    failIf: (o.failIf as string[]) ?? [],
    sweep: (o.sweep as string[]) ?? [],
  };
}

type OptionName = keyof typeof OPTIONS;

/**
 * Reads a well-formed command line (`--opt value`, `--opt=value`, flags,
 * repeatable options, one positional) from {@link OPTIONS}; undefined for
 * anything else, which then goes to commander for its wording. Neither an npm
 * package nor a `node:` module is loaded, keeping cached re-runs fast.
 */
function quickParse(args: string[]): Record<string, string | boolean | string[]> | undefined {
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)) as OptionName;
    if (!a.startsWith("--") || !Object.hasOwn(OPTIONS, name)) return undefined;
    const o = OPTIONS[name];
    if (o.type === "boolean") {
      if (eq > 0) return undefined;
      values[name] = true;
      continue;
    }
    let value: string;
    if (eq > 0) value = a.slice(eq + 1);
    else {
      if (i + 1 >= args.length || args[i + 1].startsWith("--")) return undefined;
      value = args[++i];
    }
    if ("multiple" in o) values[name] = [...((values[name] as string[]) ?? []), value];
    else values[name] = value;
  }
  if (positionals.length > 1) return undefined;
  if (positionals.length) values._file = positionals[0];
  return values;
}

async function parse(args: string[]): Promise<PipelineArgs | number> {
  if (args.includes("--help") || args.includes("-h")) return await commanderParse(args);
  const v = quickParse(args);
  if (!v) return await commanderParse(args); // commander words the usage error
  return {
    file: v._file as string | undefined,
    set: (v.set as string[]) ?? [],
    dryRun: v["dry-run"] as boolean | undefined,
    force: (v.force as string[]) ?? [],
    only: v.only as string | undefined,
    until: v.until as string | undefined,
    store: v.store as string | undefined,
    jobsDir: v["jobs-dir"] as string | undefined,
    json: v.json as boolean | undefined,
    rerun: v.rerun as string | undefined,
    verify: v.verify as boolean | undefined,
    name: v.name as string | undefined,
    failIf: (v["fail-if"] as string[]) ?? [],
    summaryMd: v["summary-md"] as string | undefined,
    baseline: v.baseline as string | undefined,
    sweep: (v.sweep as string[]) ?? [],
  };
}

/**
 * The command line's paths read from the folder the user ran the command in
 * (`caller.ts`): the pipeline file when it is there (else the runner looks
 * in pipelines/), --store, --jobs-dir, --summary-md and a --baseline record
 * file (--rerun is read by {@link rerunRecordFile}). Paths inside the pipeline
 * file keep their own rules.
 */
function pathsFromCaller(opts: PipelineArgs): PipelineArgs {
  const maybe = (p: string | undefined) => p === undefined ? undefined : fromCaller(p);
  let file = opts.file;
  if (file !== undefined) {
    try {
      Deno.statSync(fromCaller(file));
      file = fromCaller(file);
    } catch {
      // Not in the caller's folder: a name in pipelines/ (the runner looks there).
    }
  }
  return {
    ...opts,
    file,
    store: maybe(opts.store),
    jobsDir: maybe(opts.jobsDir),
    summaryMd: maybe(opts.summaryMd),
    baseline: opts.baseline?.endsWith(".json") ? fromCaller(opts.baseline) : opts.baseline,
  };
}

/**
 * `--summary-md FILE` checked before anything runs: its folder must exist and
 * be a folder, and FILE must not be one (the summary is written last, when a
 * failure would come after the whole run).
 */
function checkSummaryPath(file: string): void {
  const folder = dirname(file);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(folder);
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    throw new UserError(
      `the --summary-md file's folder ${missing ? "does not exist" : "cannot be read"}`,
      {
        file: folder,
        field: "--summary-md",
        expected: "an existing folder to write the summary in",
        found: missing ? "no such folder" : (e as Error).message,
        hint: `create ${folder} first, or name a file in an existing folder`,
      },
    );
  }
  if (!info.isDirectory) {
    throw new UserError(`the --summary-md file's folder is a file`, {
      file: folder,
      field: "--summary-md",
      expected: "an existing folder to write the summary in",
      found: "a file",
    });
  }
  let isFolder = false;
  try {
    isFolder = Deno.statSync(file).isDirectory;
  } catch { /* not there yet: written at the end */ }
  if (isFolder) {
    throw new UserError(`--summary-md names a folder`, {
      file,
      field: "--summary-md",
      expected: "a file to write the Markdown summary to (e.g. summary.md)",
      found: "a folder",
    });
  }
}

/**
 * `--rerun` re-runs a record exactly (its pipeline text and overrides), so a
 * pipeline file, `--set` or `--sweep` beside it would be ignored: refused.
 */
function checkRerunAlone(opts: PipelineArgs): void {
  for (
    const [what, given] of [
      ["a pipeline FILE", opts.file === undefined ? [] : [opts.file]],
      ["--set", opts.set.map((v) => `--set ${v}`)],
      ["--sweep", opts.sweep.map((v) => `--sweep ${v}`)],
    ] as const
  ) {
    if (!given.length) continue;
    throw new UserError(`--rerun cannot be combined with ${what}`, {
      field: "--rerun",
      expected: "--rerun RUN alone: it re-runs the record's own pipeline text and --set overrides",
      found: `--rerun ${opts.rerun} ${given.join(" ")}`,
      hint: "to change parameters, run the pipeline file with --set instead " +
        "(deno task show RUN names its file and overrides)",
    });
  }
}

/**
 * The record file `--rerun` names: a file path (read from the caller's folder,
 * see `caller.ts`) when one is there or the name ends in `.json`, else any run
 * name the other commands take (latest, latest~N, an id or its prefix, a
 * `--name`), looked up in the store.
 */
async function rerunRecordFile(name: string, storeDir: string): Promise<string> {
  const path = fromCaller(name);
  let isFile = false;
  try {
    isFile = Deno.statSync(path).isFile;
  } catch { /* not a file here: a run name */ }
  if (isFile || name.endsWith(".json")) return path;
  const { resolveRun } = await import("../experiments/runs.ts");
  return (await resolveRun(name, storeDir, "--rerun")).file;
}

function jsonSummary(s: RunSummary): string {
  const error = s.error === undefined
    ? undefined
    : s.error instanceof UserError
    ? s.error.format()
    : s.error instanceof Error
    ? `${s.error.name}: ${s.error.message}`
    : String(s.error);
  return JSON.stringify({ ...s, error }, null, 2) + "\n";
}

/** `--json` given (before a `--`): the command's answer on stdout is JSON, errors included. */
function wantsJson(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--json");
}

/** What `--json` prints for a command line or input that cannot be run. */
function invalidJson(error: string): string {
  return JSON.stringify({ status: "invalid", error }, null, 2) + "\n";
}

/**
 * Runs the `pipeline` command; returns the exit code. Under `--json` every
 * `UserError` (a bad option, file, gate, name, run…) and usage error is also
 * `{"status": "invalid", "error": …}` on stdout; its message goes to stderr
 * as without `--json`.
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await pipelineCommand(args);
  } catch (e) {
    if (e instanceof UserError && wantsJson(args)) consoleOutput().out(invalidJson(e.format()));
    throw e;
  }
}

async function pipelineCommand(args: string[]): Promise<number> {
  if (args[0] === "rerun") {
    args = args[1] === undefined ? ["--rerun"] : ["--rerun", ...args.slice(1)];
  }
  const parsed = await parse(args);
  if (typeof parsed === "number") return parsed;
  const opts = pathsFromCaller(parsed);
  const file = opts.file;
  if (!file && !opts.rerun) {
    throw new UserError("no pipeline file given", {
      expected: "deno task pipeline FILE.yaml [options], or pipeline rerun RUN",
      found: args.length ? "no FILE and no --rerun" : "no arguments",
    });
  }
  if (opts.rerun !== undefined) checkRerunAlone(opts);
  // Pipelines train: llvmpipe's worker threads for training (no device exists yet).
  preferTrainingThreads();
  const gates = opts.failIf.map(parseGate);
  if (opts.name !== undefined) checkRunName(opts.name);
  if (opts.summaryMd !== undefined) checkSummaryPath(opts.summaryMd);
  if (opts.sweep.length) return await runSweep(opts, gates);
  const storeDir = resolve(opts.store ?? defaultStoreDir());
  const rerun = opts.rerun === undefined ? undefined : await rerunRecordFile(opts.rerun, storeDir);
  const baseline = opts.baseline === undefined
    ? undefined
    : await (await import("../experiments/runs.ts")).resolveRun(
      opts.baseline,
      storeDir,
      "--baseline",
    );
  const out = consoleOutput();
  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    if (++interrupts > 1) Deno.exit(130);
    out.err("\ninterrupted: stopping running steps (Ctrl-C again to quit at once)\n");
    controller.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const common = {
      jobsDir: opts.jobsDir,
      store: opts.store,
      dryRun: opts.dryRun,
      force: opts.force,
      only: opts.only,
      until: opts.until,
      signal: controller.signal,
      output: out,
      json: opts.json,
      verify: opts.verify,
      name: opts.name,
      gates,
      collectMetrics: opts.summaryMd !== undefined,
    };
    const summary = rerun
      ? await rerunFromRecord(rerun, common)
      : await runPipeline({ ...common, file: file!, overrides: opts.set });
    if (opts.json) out.out(jsonSummary(summary));
    let summaryWritten = true;
    if (opts.summaryMd !== undefined && summary.status !== "dry-run") {
      const { renderSummaryMarkdown } = await import("../experiments/summary_md.ts");
      try {
        await Deno.writeTextFile(
          opts.summaryMd,
          renderSummaryMarkdown(summary, { baseline, storeDir }),
        );
        out.err(`summary written to ${opts.summaryMd}\n`);
      } catch (e) {
        // The run and its gates stand: say what was not written, and still report the gates.
        summaryWritten = false;
        const failure = new UserError(`cannot write the summary: ${(e as Error).message}`, {
          file: opts.summaryMd,
          field: "--summary-md",
          expected: "a file this user can write",
        });
        out.err(`error: ${failure.format()}\n`);
      }
    }
    if (summary.status === "interrupted") return EXIT.interrupted;
    if (summary.error !== undefined) {
      const e = summary.error;
      if (e instanceof UserError) {
        out.err(`error: ${e.format()}\n`);
        return EXIT.failed;
      }
      out.err(
        `error: step "${summary.failed_step}" failed with an unexpected error:\n${
          e instanceof Error ? e.stack : String(e)
        }\n`,
      );
      return EXIT.bug;
    }
    if (!opts.json && summary.status !== "dry-run") {
      await printResults(summary, opts.store ?? defaultStoreDir(), out);
    }
    for (const g of summary.gates ?? []) out.err(`${g.passed ? "" : "error: "}${g.message}\n`);
    if (summary.gates?.some((g) => !g.passed)) return EXIT.gate;
    return summaryWritten ? EXIT.ok : EXIT.failed;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/**
 * Where the results are (the trained model, the evaluation's metrics and
 * report) and the headline figures beside their baselines.
 */
async function printResults(
  summary: RunSummary,
  store: string,
  out: { err(text: string): void },
): Promise<void> {
  const dirOf = (job: string) => {
    const step = summary.steps.find((s) =>
      s.job === job && s.key && (s.status === "ran" || s.status === "cached")
    );
    return step ? join(resolve(store), "objects", step.key!) : undefined;
  };
  const lines: string[] = [];
  const train = dirOf("train");
  if (train) lines.push(`  model    ${displayPath(join(train, "best.safetensors"))}`);
  const evaluate = dirOf("evaluate");
  if (evaluate) {
    lines.push(`  metrics  ${displayPath(join(evaluate, "metrics.json"))}`);
    lines.push(`  report   ${displayPath(join(evaluate, "report.html"))}`);
    try {
      const metrics = JSON.parse(await Deno.readTextFile(join(evaluate, "metrics.json")));
      const { headlineLines } = await import("../evaluate/summary.ts");
      lines.push(...headlineLines(metrics).map((l) => `  ${l}`));
    } catch {
      // An evaluate artifact from another version: the paths above still say where to look.
    }
  }
  if (lines.length) out.err(`results:\n${lines.join("\n")}\n`);
}

/**
 * `--sweep`: every grid point is planned (a dry run, which validates its
 * overrides and name) before any runs; then the points run one after another,
 * sharing cached steps, and one comparison table ends the output.
 */
async function runSweep(
  opts: PipelineArgs,
  gates: ReturnType<typeof parseGate>[],
): Promise<number> {
  for (
    const [flag, given] of [
      ["--name", opts.name],
      ["--summary-md", opts.summaryMd],
      ["--baseline", opts.baseline],
      ["--only", opts.only],
    ] as const
  ) {
    if (given !== undefined) {
      throw new UserError(`${flag} cannot be combined with --sweep`, {
        field: flag,
        expected: "--sweep names each run itself (<pipeline>-sweep-<param>=<value>-…)",
        found: String(given),
      });
    }
  }
  const file = opts.file!;
  const sweep = await import("../experiments/sweep.ts");
  const axes = await sweep.parseSweeps(opts.sweep, file);
  const grid = sweep.sweepGrid(axes);
  const out = consoleOutput();
  const quiet = { out: () => {}, err: () => {}, tty: false };
  const common = {
    jobsDir: opts.jobsDir,
    store: opts.store,
    force: opts.force,
    until: opts.until,
    verify: opts.verify,
    gates,
    collectMetrics: true,
  };
  // Plan every point first: a bad value or name stops the sweep before anything runs.
  const names: string[] = [];
  for (const point of grid) {
    let plan: RunSummary;
    try {
      plan = await runPipeline({
        ...common,
        file,
        overrides: [...opts.set, ...point.overrides],
        dryRun: true,
        output: quiet,
      });
    } catch (e) {
      throw sweep.sweepPointError(e, point, axes);
    }
    const name = sweep.sweepRunName(plan.pipeline, point);
    checkRunName(name);
    names.push(name);
  }
  out.err(
    `sweep: ${grid.length} runs (${axes.map((a) => `${a.path} x${a.texts.length}`).join(", ")})\n`,
  );
  if (opts.dryRun) {
    for (const n of names) out.err(`  ${n}\n`);
    return EXIT.ok;
  }
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onInterrupt);
  const rows = [];
  let code: number = EXIT.ok;
  try {
    for (const [i, point] of grid.entries()) {
      out.err(`\nsweep ${i + 1}/${grid.length}: ${names[i]}\n`);
      const summary = await runPipeline({
        ...common,
        file,
        overrides: [...opts.set, ...point.overrides],
        name: names[i],
        signal: controller.signal,
        output: out,
        json: opts.json,
      });
      rows.push(sweep.sweepRow(names[i], point, summary));
      if (summary.status === "interrupted") {
        code = EXIT.interrupted;
        break;
      }
      if (summary.error !== undefined) {
        const e = summary.error;
        out.err(
          `error: ${e instanceof UserError ? e.format() : e instanceof Error ? e.stack : e}\n`,
        );
        code = Math.max(code, e instanceof UserError ? EXIT.failed : EXIT.bug);
      } else if (summary.gates?.some((g) => !g.passed)) {
        for (const g of summary.gates) if (!g.passed) out.err(`error: ${g.message}\n`);
        if (code === EXIT.ok) code = EXIT.gate;
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
  const sorted = sweep.sortRows(rows);
  if (opts.json) out.out(JSON.stringify(sorted, null, 2) + "\n");
  else {out.out(
      `\nsweep of ${grid.length} runs, best first:\n${sweep.renderSweepTable(sorted, axes)}`,
    );}
  return code;
}
