import { assertEquals, assertNotEquals } from "../../tests/assert.ts";
import { Random } from "./mod.ts";

Deno.test("Random: same seed and stream give the same sequence", () => {
  const a = new Random(42, "init");
  const b = new Random(42, "init");
  for (let i = 0; i < 100; i++) assertEquals(a.nextUint32(), b.nextUint32());
});

Deno.test("Random: different streams give different sequences", () => {
  assertNotEquals(new Random(42, "a").nextUint32(), new Random(42, "b").nextUint32());
});

Deno.test("Random: state round-trips exactly", () => {
  const a = new Random(7);
  for (let i = 0; i < 10; i++) a.uniform();
  const b = Random.fromState(a.state());
  for (let i = 0; i < 50; i++) assertEquals(a.normal(), b.normal());
});

Deno.test("Random: uniform stays in [0,1) and normal has plausible moments", () => {
  const r = new Random(1);
  let sum = 0, sq = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    if (u < 0 || u >= 1) throw new Error(`uniform out of range: ${u}`);
    const z = r.normal();
    sum += z;
    sq += z * z;
  }
  const mean = sum / n, variance = sq / n - mean * mean;
  if (Math.abs(mean) > 0.05) throw new Error(`normal mean ${mean}, expected about 0`);
  if (Math.abs(variance - 1) > 0.05) {
    throw new Error(`normal variance ${variance}, expected about 1`);
  }
});
