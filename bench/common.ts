/**
 * What the benchmarks share: the option parsers of their standalone entry
 * points (`deno run -A bench/X.ts`; commander parses the options, so
 * `--help` lists them and a mistyped option or a malformed value is refused
 * before anything runs), and the median their repeated runs report.
 *
 * @module
 */
import { InvalidArgumentError } from "@commander-js/extra-typings";

/** A parser of a positive integer option value; a usage error names the option. */
export function positiveInt(option: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${option} takes a positive integer, not "${value}"`);
    }
    return n;
  };
}

/** A parser of an integer option value from 1 to `max`; a usage error names the option. */
export function positiveIntAtMost(option: string, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`${option} takes an integer from 1 to ${max}, not "${value}"`);
    }
    return n;
  };
}

/** A parser of a positive number option value (seconds, say); a usage error names the option. */
export function positiveNumber(option: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${option} takes a positive number, not "${value}"`);
    }
    return n;
  };
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs `body` with `console.log` sent to stderr when `json` is set, and
 * restores it afterwards (also when `body` throws): a `--json` command's
 * stdout then holds its one JSON object and nothing else, whatever the
 * benchmarks it runs print as they go.
 */
export async function linesToStderr<T>(json: boolean, body: () => Promise<T>): Promise<T> {
  if (!json) return await body();
  const log = console.log;
  console.log = console.error;
  try {
    return await body();
  } finally {
    console.log = log;
  }
}
