/**
 * What every commander-based command shares: a program that throws instead of
 * exiting, and one place that turns its outcome into an exit code.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";

/** A command-line program whose usage errors throw (so `main` can return a code). */
export function newProgram(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
}

/**
 * Parses `args` and runs the chosen action. Returns 0 on success and after
 * `--help`; 1 for a `UserError` (printed as `error: …` with its location) and
 * for a usage problem commander has already printed (a missing argument, an
 * unknown option or sub-command, or no sub-command, which prints the help),
 * as the README's exit codes say (1 bad input, 2 a bug). Anything else is a
 * bug and rethrown.
 */
export async function runProgram(
  program: { parseAsync(argv: string[], opts: { from: "user" }): Promise<unknown> },
  args: string[],
): Promise<number> {
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`error: ${e.format()}`);
      return 1;
    }
    if (e instanceof Error && "exitCode" in e && typeof e.exitCode === "number") {
      return e.exitCode === 0 ? 0 : 1;
    }
    throw e;
  }
}

/**
 * `text` as a number when it is written as one in decimal (`12`, `-0.5`,
 * `1e-3`), else NaN: `Number` reads a blank option value as 0 and takes
 * `0x10` or `Infinity`, so every numeric option is parsed by this instead.
 */
export function decimalNumber(text: string): number {
  return /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
}
