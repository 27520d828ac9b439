/**
 * The contract between the pipeline runner and a job. A job is one file in
 * `jobs/` that exports a `JobDefinition`; it reads its input artifacts and
 * writes one output artifact, and never touches the runner's state or another
 * job's code.
 *
 * @module
 */
import type { z } from "zod";
import type { ArtifactRef } from "../artifacts/mod.ts";

/** Progress reporting for long steps; the runner renders a bar (TTY) or periodic lines (CI). */
export interface ProgressReporter {
  /** Sets the total amount of work in `unit`s (e.g. files, steps). */
  start(total: number, unit: string, label?: string): void;
  /** Reports `done` units finished so far, with an optional short status text ("loss 3.21"). */
  update(done: number, status?: string): void;
  /** Marks the current progress bar finished. */
  finish(status?: string): void;
}

/** What a job gets when it runs. */
export interface JobContext<P> {
  /** The step's name in the pipeline file (for messages). */
  step: string;
  /** The pipeline file (for messages). */
  pipelineFile: string;
  /** Parameters, already validated by the job's schema (defaults applied). */
  params: P;
  /** Input artifacts by slot name (the keys of the step's `inputs` in the pipeline file). */
  inputs: Record<string, ArtifactRef>;
  /**
   * For each slot in the job's `upstream`: that input artifact's own inputs
   * by their slot (`upstream.scan.audio`: the artifact the scan read), found
   * and checked by the runner like `inputs`. Absent for a job without `upstream`.
   */
  upstream?: Record<string, Record<string, ArtifactRef>>;
  /** The pipeline seed (an integer). */
  seed: number;
  /**
   * An empty staging directory: everything the job writes here becomes the
   * published artifact when `run` returns. Never read after a crash.
   */
  outDir: string;
  /**
   * A directory that survives crashes and kills for this step key (deleted
   * after a successful publish): checkpoints for resuming go here.
   */
  workDir: string;
  /**
   * The store's cache folder: speed-only data a job may read and write
   * (the matrix-product kernels chosen for this adapter), never part of an
   * artifact's content. Absent outside a store.
   */
  cacheDir?: string;
  /** Progress and log output. */
  progress: ProgressReporter;
  log(message: string): void;
  /** Aborted when the user interrupts the run. */
  signal: AbortSignal;
}

/** What a job returns; recorded in the artifact's manifest. */
export interface JobResult {
  /** Figures for `metrics.json` (written by the runner into the artifact). */
  metrics?: Record<string, unknown>;
  /** Extra environment facts for the manifest, e.g. `{ webgpu_adapter: "llvmpipe …" }`. */
  environment?: Record<string, string>;
}

/** A job: its parameter schema, its inputs and its `run` function. */
export interface JobDefinition<S extends z.ZodType = z.ZodType> {
  /** Name used in pipeline files (`job: tokenize`). */
  name: string;
  /**
   * A version string bumped by hand when the meaning of the output changes.
   * (The runner also hashes the job's source and its local imports, so code
   * edits re-run the step without a bump.)
   */
  version: string;
  /** One line for `--help` and error messages. */
  description: string;
  /** zod schema of the parameters; `.strict()` objects so unknown keys are errors. */
  params: S;
  /**
   * The input slots this job needs for the given parameters (e.g. scan needs
   * `audio` unless `root` is set). A slot listed here must be wired in the
   * pipeline file; a wired slot not listed here is dropped (and a step only it
   * fed is not run).
   */
  inputs(params: z.output<S>): string[];
  /**
   * Every input slot the job can take, whatever its parameters, each with the
   * jobs whose artifacts it reads (scan: `{ audio: ["synth"] }`; a job with no
   * inputs: `{}`). The planner rejects a step that wires a slot not listed here,
   * or wires a slot to a step of another job, before anything runs. A job
   * without `slots` accepts any wiring (what `inputs` does not need is dropped).
   */
  slots?: Record<string, readonly string[]>;
  /**
   * Input slots whose artifacts' own inputs this job reads too (tokenize:
   * `["scan"]`, for the audio files.json points into). The runner treats
   * those artifacts as inputs of the step: present and intact before it runs
   * (with `--only` too), given to `run` as `ctx.upstream`. A job reads no
   * other artifact's folder.
   */
  upstream?: readonly string[];
  /**
   * Paths outside the store whose content is part of the step's identity
   * (e.g. scan's `root`): the runner hashes their bytes into the step key.
   */
  sources?(params: z.output<S>): string[];
  /**
   * The top-level names in `metrics.json` whose values are numbers (or null
   * when a figure cannot be computed) that every run of this job writes:
   * what a gate (`--fail-if 'evaluate.test_loss > 3'`) may name. A gate on a
   * job without this list, or on a name not in it, is an error before
   * anything runs. Nested figures and names a job writes only sometimes are
   * left out.
   */
  metrics?: readonly string[];
  /** Does the work. Throw `UserError` for bad input. */
  run(ctx: JobContext<z.output<S>>): Promise<JobResult | void>;
}

/** Identity helper that keeps the schema's type for `run`'s parameters. */
export function defineJob<S extends z.ZodType>(job: JobDefinition<S>): JobDefinition<S> {
  return job;
}
