/**
 * Paths on the command line mean what they mean in the folder the user typed
 * the command in. `deno task` runs every task in the folder holding
 * deno.json (the project root) and says where it was started in `INIT_CWD`,
 * so a relative path is read from there; without it (`deno run main.ts …`)
 * the current folder is the user's. Only command-line paths are read this
 * way: paths inside pipeline files, and the default store (`$SAMOUT_STORE` or
 * `artifacts/`), keep their own rules.
 *
 * No `node:` module is imported: the pipeline command's fast path uses this.
 *
 * @module
 */
import { isAbsolute, resolve } from "../pipeline/path.ts";

/** What {@link callerDir} reads: an environment (`Deno.env` by default). */
export interface Environment {
  get(key: string): string | undefined;
}

/** The folder the user ran the command in: `$INIT_CWD` when set (by `deno task`), else the current one. */
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
