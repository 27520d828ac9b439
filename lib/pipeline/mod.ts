/**
 * The pipeline engine: pipeline files, the planner, the runner, progress and
 * run records. `job.ts` is the contract jobs implement.
 *
 * @module
 */
export type { JobContext, JobDefinition, JobResult, ProgressReporter } from "./job.ts";
export { defineJob } from "./job.ts";
export type { Override, PipelineDoc, PipelineSpec, StepSpec } from "./file.ts";
export { parseOverride, parsePipelineText, readPipelineDoc, validatePipelineDoc } from "./file.ts";
export type { Plan, PlannedStep, StepIdentity } from "./plan.ts";
export { computeKeys, planPipelineText, resolveSteps, stepKey } from "./plan.ts";
export { JobRegistry, type LoadedJob } from "./registry.ts";
export { codeHash, localImports } from "./code_hash.ts";
export { SourceHasher } from "./sources.ts";
export { consoleOutput, formatDuration, type Output, ProgressRenderer } from "./progress.ts";
export type { RunRecord, StepRecord, StepStatus } from "./records.ts";
export { listRunFiles, readRunRecord, RunHistory, writeRunRecord } from "./records.ts";
export type { RunOptions, RunSummary, StepSummary } from "./runner.ts";
export { rerunFromRecord, resolvePipelineFile, runPipeline } from "./runner.ts";
export { DEFAULT_JOBS_DIR, defaultStoreDir, displayPath, REPO_ROOT } from "./paths.ts";
