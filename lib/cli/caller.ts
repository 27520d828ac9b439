/**
 * Command-line paths are read from the folder the user ran the command in;
 * see {@link callerDir} in lib/pipeline/paths.ts, where the rule lives so the
 * pipeline library need not import the CLI.
 *
 * @module
 */
export { callerDir, type Environment, fromCaller } from "../pipeline/paths.ts";
