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

/**
 * Where `actual` and `expected` differ most, relative to the tensor's
 * magnitude: `max_i |actual[i] - expected[i]| / max_i |expected[i]|` (the
 * divisor is 1 when every expected value is 0). A NaN or infinity on either
 * side counts as an infinite error unless both sides hold exactly the same
 * value there (`Object.is`). `index` is the worst element (-1 when empty).
 */
export function relativeError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { error: number; index: number } {
  if (actual.length !== expected.length) {
    throw new nodeAssert.AssertionError({
      message: `expected ${expected.length} values, got ${actual.length}`,
    });
  }
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    if (Number.isFinite(expected[i])) scale = Math.max(scale, Math.abs(expected[i]));
  }
  if (scale === 0) scale = 1;
  let worst = 0;
  let index = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(a) || !Number.isFinite(e)) {
      if (Object.is(a, e)) continue;
      return { error: Infinity, index: i };
    }
    const err = Math.abs(a - e) / scale;
    if (index < 0 || err > worst) {
      worst = err;
      index = i;
    }
  }
  return { error: worst, index };
}

/**
 * Asserts `|actual[i] - expected[i]| <= tolerance * max_j |expected[j]|` for
 * every i (see {@link relativeError}): the lengths agree, no NaN or infinity
 * appears where the other side does not hold the very same value, and the
 * worst element is within `tolerance`. The message names the worst element.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  if (actual.length !== expected.length) {
    throw new nodeAssert.AssertionError({
      message: `${what}: expected ${expected.length} values, got ${actual.length}`,
    });
  }
  const { error, index } = relativeError(actual, expected);
  if (!(error <= tolerance)) {
    throw new nodeAssert.AssertionError({
      message: `${what}: element ${index} is ${actual[index]}, expected ${expected[index]} ` +
        `(relative error ${error.toExponential(2)} > ${tolerance})`,
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
