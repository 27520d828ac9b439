/**
 * Test assertions. `@std/assert` lives on JSR, which these machines cannot
 * reach, so the few assertions the tests use are built on `node:assert`.
 *
 * @module
 */
import nodeAssert from "node:assert";

/** Throws unless `value` is truthy. */
export function assert(value: unknown, message = "expected a truthy value"): asserts value {
  if (!value) throw new nodeAssert.AssertionError({ message });
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Deep strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

/** `|actual - expected| <= tolerance`. */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  message?: string,
): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new nodeAssert.AssertionError({
      message: message ??
        `expected ${actual} to be within ${tolerance} of ${expected}`,
    });
  }
}

/** Throws unless `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  if (!text.includes(part)) {
    throw new nodeAssert.AssertionError({
      message: message ?? `expected the text to include ${JSON.stringify(part)}; got:\n${text}`,
    });
  }
}

/** Throws unless `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(text)) {
    throw new nodeAssert.AssertionError({
      message: message ?? `expected the text to match ${pattern}; got:\n${text}`,
    });
  }
}

/** Runs `fn`, expects it to throw, and returns the error (optionally checking its message). */
export function assertThrows(fn: () => unknown, messageIncludes?: string): Error {
  try {
    fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (messageIncludes !== undefined) assertStringIncludes(err.message, messageIncludes);
    return err;
  }
  throw new nodeAssert.AssertionError({ message: "expected the function to throw" });
}

/** Awaits `fn`, expects it to reject, and returns the error (optionally checking its message). */
export async function assertRejects(
  fn: () => Promise<unknown>,
  messageIncludes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (messageIncludes !== undefined) assertStringIncludes(err.message, messageIncludes);
    return err;
  }
  throw new nodeAssert.AssertionError({ message: "expected the promise to reject" });
}
