/**
 * Where things live: the repository root (the folder of `main.ts`), the default
 * jobs folder and store, the folder the user ran the command in, and
 * repo-relative names for files.
 *
 * @module
 */
import { fromFileUrl, isAbsolute, join, relative, resolve } from "./path.ts";

/** Absolute path of the repository root. */
export const REPO_ROOT: string = fromFileUrl(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** The folder the job registry reads `jobs/<name>.ts` from by default. */
export const DEFAULT_JOBS_DIR: string = join(REPO_ROOT, "jobs");

/** The store directory: `SAMOUT_STORE` if set, else `artifacts/` at the repo root. */
export function defaultStoreDir(): string {
  const env = Deno.env.get("SAMOUT_STORE");
  return env ? resolve(env) : join(REPO_ROOT, "artifacts");
}

/** What {@link callerDir} reads: an environment (`Deno.env` by default). */
export interface Environment {
  get(key: string): string | undefined;
}

/**
 * The folder the user ran the command in: `$INIT_CWD` when set, else the
 * current one. Paths on the command line mean what they mean in that folder:
 * `deno task` runs every task in the folder holding deno.json (the project
 * root) and says where it was started in `INIT_CWD`; without it (`deno run
 * main.ts …`) the current folder is the user's. Only command-line paths are
 * read this way: paths inside pipeline files, and the default store
 * (`$SAMOUT_STORE` or `artifacts/`), keep their own rules.
 */
export function callerDir(env: Environment = Deno.env): string {
  const init = env.get("INIT_CWD");
  return init ? resolve(init) : Deno.cwd();
}

/**
 * A path given on the command line, absolute: an absolute path as it is, a
 * relative one taken from {@link callerDir}.
 */
export function fromCaller(path: string, env: Environment = Deno.env): string {
  return isAbsolute(path) ? resolve(path) : resolve(callerDir(env), path);
}

/** `path` relative to `base` with `/` separators, when `path` lies inside `base`; else undefined. */
export function insideOf(base: string, path: string): string | undefined {
  const rel = relative(base, path);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return rel.split("\\").join("/");
}

/** A short, stable name for messages and records: repo-relative when inside the repo. */
export function displayPath(path: string): string {
  const abs = resolve(path);
  return insideOf(REPO_ROOT, abs) ?? abs;
}
