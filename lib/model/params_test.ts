import { assert, assertAlmostEquals, assertEquals, assertNotEquals } from "../../tests/assert.ts";
import type { SamOutConfig } from "./config.ts";
import { initParameters, parameterCount, parameterTable, shapeSize } from "./params.ts";

const cfg: SamOutConfig = { vocabSize: 50, hidden: 64, heads: 4, layers: 2, maxPositions: 40 };

Deno.test("parameterTable lists SAMOUT.md's names and shapes in canonical order", () => {
  const table = parameterTable({ ...cfg, layers: 1 });
  assertEquals(table.map((p) => `${p.name} [${p.shape}]`), [
    "em.weight [50,64]",
    "pos.weight [40,64]",
    "down.0.weight [64,128]",
    "decoder_layers.0.self_attention.head0.weight [64,64]",
    "decoder_layers.0.self_attention.head1.weight [64,64]",
    "decoder_layers.0.self_attention.head2.weight [64,64]",
    "decoder_layers.0.ffn.ffn1.weight [128,64]",
    "decoder_layers.0.ffn.ffn1.bias [128]",
    "decoder_layers.0.ffn.gate.weight [128,64]",
    "decoder_layers.0.ffn.gate.bias [128]",
    "decoder_layers.0.ffn.ffn2.weight [64,128]",
    "decoder_layers.0.ffn.ffn2.bias [64]",
    "decoder_layers.0.layer_norm.weight [64]",
    "decoder_layers.0.layer_norm.bias [64]",
    "decoder_layers.0.alpha []",
    "head.weight [50,64]",
  ]);
  const two = parameterTable(cfg).map((p) => p.name);
  assertEquals(two.slice(2, 5), [
    "down.0.weight",
    "down.1.weight",
    "decoder_layers.0.self_attention.head0.weight",
  ]);
  assertEquals(two.length, 3 + 13 * 2);
});

Deno.test("parameterCount is 2Vd + Pd + L(11d^2 + 7d + 1)", () => {
  const { vocabSize: V, hidden: d, layers: L, maxPositions: P } = cfg;
  assertEquals(parameterCount(cfg), 2 * V * d + P * d + L * (11 * d * d + 7 * d + 1));
  const sum = parameterTable(cfg).reduce((n, p) => n + shapeSize(p.shape), 0);
  assertEquals(parameterCount(cfg), sum);
});

function stats(a: Float32Array): { mean: number; std: number; maxAbs: number } {
  let s = 0;
  let maxAbs = 0;
  for (const v of a) {
    s += v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = s / a.length;
  let q = 0;
  for (const v of a) q += (v - mean) * (v - mean);
  return { mean, std: Math.sqrt(q / a.length), maxAbs };
}

Deno.test("initParameters follows the table: N(0,1), U(-k,k), ones, zeros, 0.5, em row 0 zero", () => {
  const params = initParameters(cfg, 42);
  const d = cfg.hidden;
  for (const spec of parameterTable(cfg)) {
    const t = params.get(spec.name)!;
    assertEquals(t.length, shapeSize(spec.shape), spec.name);
    const init = spec.init;
    if (init.kind === "normal") {
      const body = init.zeroRow0 ? t.subarray(d) : t;
      const s = stats(body);
      assert(Math.abs(s.mean) < 0.06, `${spec.name}: mean ${s.mean}, expected about 0`);
      assert(Math.abs(s.std - 1) < 0.06, `${spec.name}: std ${s.std}, expected about 1`);
    } else if (init.kind === "uniform") {
      const k = init.bound;
      const s = stats(t);
      assert(s.maxAbs <= k, `${spec.name}: |x| ${s.maxAbs} above the bound ${k}`);
      if (t.length >= 1000) {
        assert(s.maxAbs > 0.98 * k, `${spec.name}: max |x| ${s.maxAbs}, expected near ${k}`);
        const want = k / Math.sqrt(3);
        assert(
          Math.abs(s.std - want) < 0.05 * want,
          `${spec.name}: std ${s.std}, expected ${want}`,
        );
      }
    } else {
      assert(t.every((v) => v === init.value), `${spec.name}: expected every value ${init.value}`);
    }
  }
  assert(params.get("em.weight")!.subarray(0, d).every((v) => v === 0), "em row 0 must be zero");
  assertEquals(params.get("decoder_layers.1.alpha")![0], 0.5);
  for (const spec of parameterTable(cfg)) {
    if (spec.init.kind !== "uniform") continue;
    // k = 1/sqrt(fan_in): 2d for Down and Ffn2 (weight and bias), d for the rest.
    const fanIn = /^down\.|ffn2\./.test(spec.name) ? 2 * d : d;
    assertAlmostEquals(spec.init.bound, 1 / Math.sqrt(fanIn), 1e-15, spec.name);
  }
});

Deno.test("initParameters is deterministic per seed and per tensor", () => {
  const a = initParameters(cfg, 7);
  const b = initParameters(cfg, 7);
  for (const [name, t] of a) assertEquals(b.get(name), t, name);
  const c = initParameters(cfg, 8);
  assertNotEquals(c.get("head.weight"), a.get("head.weight"));
  // Each tensor draws from its own stream: more layers leave the others unchanged.
  const more = initParameters({ ...cfg, layers: 3 }, 7);
  for (const [name, t] of a) assertEquals(more.get(name), t, name);
  // Two same-shaped tensors in one model differ.
  assertNotEquals(
    a.get("decoder_layers.0.self_attention.head0.weight"),
    a.get("decoder_layers.0.self_attention.head1.weight"),
  );
});
