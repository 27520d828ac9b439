import { assertClose, assertEquals, assertThrows, relativeError } from "./assert.ts";

const expected = [1, 2, 3, 4];

Deno.test("assertClose accepts values within the tolerance of the largest |expected|", () => {
  // Errors up to 1e-3 x max |expected| = 4e-3, on small and large elements alike.
  assertClose([1.0039, 2, 2.9961, 4.0039], expected, 1e-3, "close");
  assertClose(expected, expected, 0, "identical");
  assertClose([], [], 0, "empty");
  assertClose([0, 5e-7], [0, 0], 1e-6, "all-zero expected is judged on an absolute scale of 1");
});

Deno.test("assertClose rejects an error just over the tolerance and names the element", () => {
  // 4.0041 - 4 = 4.1e-3 > 1e-3 x 4.
  assertThrows(
    () => assertClose([1, 2, 3, 4.0041], expected, 1e-3, "over"),
    "over: element 3 is 4.0041, expected 4",
  );
  assertThrows(() => assertClose([9, 2, 3, 4], expected, 1e-3, "far"), "element 0 is 9");
});

Deno.test("assertClose rejects a NaN anywhere in actual, even after a larger error", () => {
  // The old helper reset its running worst on NaN, so this passed.
  assertThrows(() => assertClose([9, 2, NaN, 4], expected, 1e-3, "nan"), "element 2 is NaN");
  assertThrows(() => assertClose([1, 2, NaN, 4], expected, 1e-3, "nan"), "element 2 is NaN");
  assertThrows(() => assertClose([NaN, NaN, NaN, NaN], expected, 1, "all nan"), "element 0");
  assertThrows(() => assertClose([1, 2, 3, 4], [1, 2, NaN, 4], 1e-3, "nan expected"), "element 2");
});

Deno.test("assertClose rejects infinities that do not match exactly", () => {
  assertThrows(() => assertClose([1, Infinity, 3, 4], expected, 1e-3, "inf"), "element 1");
  assertThrows(() => assertClose([1, 2, -Infinity, 4], expected, 1e9, "-inf"), "element 2");
  assertThrows(
    () => assertClose([1, -Infinity, 3], [1, Infinity, 3], 1e9, "sign"),
    "element 1 is -Infinity, expected Infinity",
  );
  // The same non-finite value on both sides is a match.
  assertClose([1, Infinity, NaN], [1, Infinity, NaN], 0, "same non-finite");
});

Deno.test("assertClose rejects a length mismatch", () => {
  assertThrows(() => assertClose([1, 2, 3], expected, 1, "short"), "expected 4 values, got 3");
  assertThrows(() => assertClose([1, 2, 3, 4, 5], expected, 1, "long"), "expected 4 values, got 5");
});

Deno.test("assertClose rejects a NaN tolerance", () => {
  assertThrows(() => assertClose(expected, expected, NaN, "nan tolerance"), "nan tolerance");
});

Deno.test("relativeError is max |a - e| / max |e|", () => {
  assertEquals(relativeError([1, 2.5, 3, 4], expected), { error: 0.125, index: 1 });
  assertEquals(relativeError([-2, 0], [2, 0]), { error: 2, index: 0 });
  assertEquals(relativeError([1, NaN], [1, 2]), { error: Infinity, index: 1 });
});
