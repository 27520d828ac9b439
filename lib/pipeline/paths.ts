/**
 * Where things live: the repository root (the folder of `main.ts`), the default
 * jobs folder and store, and repo-relative names for files.
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
