import { assert, assertAlmostEquals, assertEquals, assertNotEquals } from "../../tests/assert.ts";
import { TrainParams } from "../../jobs/train.ts";
import { epochOrder, learningRate } from "./mod.ts";

function params(schedule: Record<string, unknown>, lr = 0.2): TrainParams {
  return TrainParams.parse({ optimizer: { lr }, schedule });
}

/** `learningRate` at each step of `steps`, for `total` planned steps. */
function rates(p: TrainParams, steps: number[], total: number): number[] {
  return steps.map((s) => learningRate(p, s, total));
}

function assertRates(actual: number[], expected: number[], what: string): void {
  assertEquals(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assertAlmostEquals(
      actual[i],
      expected[i],
      1e-12,
      `${what}[${i}]: ${actual[i]} != ${expected[i]}`,
    );
  }
}

Deno.test("learningRate: constant without warm-up is the peak at every step", () => {
  const p = params({ kind: "constant" });
  assertRates(rates(p, [0, 1, 7, 99, 100, 1000], 100), [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], "constant");
});

Deno.test("learningRate: warm-up rises linearly to the peak over warmup_steps, from step 0", () => {
  // Step s < 4 gets peak * (s + 1) / 4: the first step already trains.
  const constant = params({ kind: "constant", warmup_steps: 4 });
  assertRates(rates(constant, [0, 1, 2, 3, 4, 50], 100), [0.05, 0.1, 0.15, 0.2, 0.2, 0.2], "warm");
  const cosine = params({ kind: "cosine", warmup_steps: 4 });
  assertRates(rates(cosine, [0, 1, 2, 3], 14), [0.05, 0.1, 0.15, 0.2], "cosine warm-up");
});

Deno.test("learningRate: cosine falls from the peak to min_lr_ratio x peak after warm-up", () => {
  // Peak 0.2, floor 0.1 x 0.2 = 0.02, warm-up 4, 14 steps: the cosine spans steps 4..14.
  // At progress x the rate is 0.02 + 0.18 (1 + cos(pi x)) / 2:
  //   x = 0   -> 0.2
  //   x = 0.2 -> 0.02 + 0.18 (5 + sqrt 5) / 8   (cos 36 deg = (1 + sqrt 5) / 4)
  //   x = 0.5 -> 0.02 + 0.09 = 0.11
  //   x = 1   -> 0.02, and it stays there past the planned end.
  const p = params({ kind: "cosine", warmup_steps: 4, min_lr_ratio: 0.1 });
  assertRates(
    rates(p, [4, 6, 9, 14, 20], 14),
    [0.2, 0.02 + 0.18 * (5 + Math.sqrt(5)) / 8, 0.11, 0.02, 0.02],
    "cosine",
  );
  // Without warm-up, over 8 steps: x = 0.5 at step 4 and x = 0.25 at step 2 ((1 + sqrt(1/2)) / 2).
  const cold = params({ kind: "cosine", warmup_steps: 0, min_lr_ratio: 0 });
  assertRates(
    rates(cold, [0, 2, 4, 8], 8),
    [0.2, 0.2 * (1 + Math.SQRT1_2) / 2, 0.1, 0],
    "cosine, no warm-up, floor 0",
  );
});

Deno.test("learningRate: the cosine never rises and never drops below its floor", () => {
  const p = params({ kind: "cosine", warmup_steps: 3, min_lr_ratio: 0.25 }, 1e-3);
  const r = rates(p, Array.from({ length: 40 }, (_, i) => i), 30);
  for (let i = 4; i < r.length; i++) {
    assert(r[i] <= r[i - 1], `step ${i}: ${r[i]} > ${r[i - 1]}`);
    assert(r[i] >= 0.25e-3 - 1e-18, `step ${i}: ${r[i]} below the floor`);
  }
});

function isPermutation(order: number[], n: number): boolean {
  return order.length === n && [...order].sort((a, b) => a - b).every((v, i) => v === i);
}

Deno.test("epochOrder is a permutation of the batches, and not the identity", () => {
  for (const n of [0, 1, 2, 7, 50]) {
    const order = epochOrder(11, 0, n);
    assert(isPermutation(order, n), `n = ${n}: ${order}`);
  }
  const identity = Array.from({ length: 50 }, (_, i) => i);
  assertNotEquals(epochOrder(11, 0, 50), identity, "50 batches are shuffled");
});

Deno.test("epochOrder is a pure function of (seed, epoch): call order does not matter", () => {
  const forward = [0, 1, 2, 3].map((e) => epochOrder(5, e, 30));
  const backward = [3, 2, 1, 0].map((e) => epochOrder(5, e, 30)).reverse();
  assertEquals(backward, forward);
  assertEquals(epochOrder(5, 2, 30), forward[2], "asked again");
});

Deno.test("epochOrder differs across epochs and across seeds", () => {
  const n = 30;
  const epochs = Array.from({ length: 6 }, (_, e) => epochOrder(5, e, n).join(","));
  assertEquals(new Set(epochs).size, epochs.length, "six epochs, six different orders");
  assertNotEquals(epochOrder(6, 0, n), epochOrder(5, 0, n), "another seed, another order");
});
