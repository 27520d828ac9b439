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
import { Command } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";
import { rerunFromRecord, runPipeline, type RunSummary } from "../pipeline/runner.ts";
import { consoleOutput } from "../pipeline/progress.ts";

const collect = (value: string, previous: string[]) => [...previous, value];

function program() {
  return new Command("pipeline")
    .description("Run a pipeline: steps whose key is already in the store are skipped.")
    .argument("[file]", "pipeline YAML (a name not found here is looked up in pipelines/)")
    .option(
      "--set <path=value>",
      "override a parameter (STEP.PARAM=VALUE, seed=N); repeatable",
      collect,
      [] as string[],
    )
    .option("--dry-run", "print what would run and why; run nothing")
    .option(
      "--force <step>",
      "re-run this step even if cached; repeatable",
      collect,
      [] as string[],
    )
    .option("--only <step>", "run just this step (its inputs must be cached)")
    .option("--until <step>", "run this step and its ancestors only")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .option("--jobs-dir <dir>", "folder of job modules (default jobs/)")
    .option("--json", "print a machine-readable run summary on stdout (human output on stderr)")
    .option("--rerun <record>", "re-run exactly from a run record (its YAML text and overrides)")
    .addHelpText("after", "\nAlso: pipeline rerun RECORD  (same as --rerun RECORD)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => consoleOutput().err(s),
      writeErr: (s) => consoleOutput().err(s),
    });
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

/** Runs the `pipeline` command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "rerun") {
    args = args[1] === undefined ? ["--rerun"] : ["--rerun", ...args.slice(1)];
  }
  const cmd = program();
  try {
    await cmd.parseAsync(args, { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === "number") return code;
    throw e;
  }
  const opts = cmd.opts();
  const file = cmd.args[0];
  if (!file && !opts.rerun) {
    throw new UserError("no pipeline file given", {
      expected: "deno task pipeline FILE.yaml [options], or pipeline rerun RECORD",
      found: "no arguments",
    });
  }
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
    };
    let summary: RunSummary;
    try {
      summary = opts.rerun
        ? await rerunFromRecord(opts.rerun, common)
        : await runPipeline({ ...common, file: file!, overrides: opts.set });
    } catch (e) {
      if (opts.json && e instanceof UserError) {
        out.out(JSON.stringify({ status: "invalid", error: e.format() }, null, 2) + "\n");
      }
      throw e;
    }
    if (opts.json) out.out(jsonSummary(summary));
    if (summary.status === "interrupted") return 130;
    if (summary.error !== undefined) {
      const e = summary.error;
      if (e instanceof UserError) {
        out.err(`error: ${e.format()}\n`);
        return 1;
      }
      out.err(
        `error: step "${summary.failed_step}" failed with an unexpected error:\n${
          e instanceof Error ? e.stack : String(e)
        }\n`,
      );
      return 2;
    }
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
