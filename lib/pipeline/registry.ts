/**
 * The job registry: job name -> `<jobsDir>/<name>.ts`, whose module exports
 * `job`. Only the job files a pipeline names are imported.
 *
 * @module
 */
import { join, resolve, toFileUrl } from "./path.ts";
import { UserError } from "../errors/mod.ts";
import type { ErrorLocation } from "../errors/mod.ts";
import type { JobDefinition } from "./job.ts";
import { DEFAULT_JOBS_DIR, displayPath } from "./paths.ts";

/** A job and the file it came from. */
export interface LoadedJob {
  job: JobDefinition;
  /** Absolute path of the job's module. */
  file: string;
}

/** Finds and imports jobs from one folder. */
export class JobRegistry {
  /** Absolute jobs folder. */
  readonly dir: string;
  #loaded = new Map<string, Promise<LoadedJob>>();

  /** @param dir folder of `<name>.ts` job modules (default `jobs/` at the repo root) */
  constructor(dir: string = DEFAULT_JOBS_DIR) {
    this.dir = resolve(dir);
  }

  /** Names of the jobs in the folder, sorted. */
  async known(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(this.dir)) {
        if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
          names.push(e.name.slice(0, -3));
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return names.sort();
  }

  /** Imports the job `name`; `where` locates the reference for errors. */
  load(name: string, where: ErrorLocation): Promise<LoadedJob> {
    let p = this.#loaded.get(name);
    if (!p) {
      p = this.#load(name, where);
      this.#loaded.set(name, p);
      p.catch(() => this.#loaded.delete(name));
    }
    return p;
  }

  async #load(name: string, where: ErrorLocation): Promise<LoadedJob> {
    const file = join(this.dir, `${name}.ts`);
    let isFile = false;
    try {
      isFile = (await Deno.stat(file)).isFile;
    } catch { /* missing */ }
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name) || !isFile) {
      const known = await this.known();
      throw new UserError(`unknown job "${name}"`, {
        ...where,
        expected: `one of the jobs in ${displayPath(this.dir)}: ${known.join(", ") || "(none)"}`,
        found: name,
      });
    }
    const mod = await import(toFileUrl(file));
    const job = mod.job as JobDefinition | undefined;
    if (
      !job || typeof job !== "object" || typeof job.run !== "function" ||
      typeof job.inputs !== "function" || !job.params || typeof job.version !== "string"
    ) {
      throw new UserError(`job module does not export a job definition`, {
        file: displayPath(file),
        expected:
          "export const job = defineJob({ name, version, description, params, inputs, run })",
        found: `exports ${Object.keys(mod).join(", ") || "(nothing)"}`,
      });
    }
    if (job.name !== name) {
      throw new UserError(`job name does not match its file name`, {
        file: displayPath(file),
        field: "name",
        expected: JSON.stringify(name),
        found: JSON.stringify(job.name),
      });
    }
    return { job, file };
  }
}
