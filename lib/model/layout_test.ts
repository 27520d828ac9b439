import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { ALIGN_FLOATS, packFlat, parameterLayout, unpackFlat } from "./layout.ts";
import { initParameters, parameterTable } from "./params.ts";

const cfg = { vocabSize: 37, hidden: 24, heads: 4, layers: 2, maxPositions: 20 };

Deno.test("parameterLayout: canonical order, aligned, non-overlapping offsets", () => {
  const layout = parameterLayout(cfg);
  assertEquals(layout.entries.map((e) => e.name), parameterTable(cfg).map((p) => p.name));
  let end = 0;
  for (const e of layout.entries) {
    assertEquals(
      e.offset % ALIGN_FLOATS,
      0,
      `${e.name} offset ${e.offset} is not 64-float aligned`,
    );
    assert(e.offset >= end, `${e.name} overlaps the tensor before it`);
    end = e.offset + e.size;
  }
  assert(layout.totalFloats >= end && layout.totalFloats % ALIGN_FLOATS === 0);
  assertEquals(layout.byName.get("decoder_layers.1.alpha")?.size, 1);
});

Deno.test("packFlat/unpackFlat round-trips every tensor", () => {
  const layout = parameterLayout(cfg);
  const weights = initParameters(cfg, 3);
  const back = unpackFlat(layout, packFlat(layout, weights));
  for (const [name, data] of weights) assertEquals(back.get(name), data, name);
});

Deno.test("packFlat names a missing or mis-sized tensor", () => {
  const layout = parameterLayout(cfg);
  const weights = initParameters(cfg, 3);
  weights.set("head.weight", new Float32Array(5));
  const e = assertThrows(() => packFlat(layout, weights), "head.weight");
  assert(e instanceof UserError && e.location.field === "head.weight");
  weights.delete("pos.weight");
  assertThrows(() => packFlat(layout, weights), "pos.weight is missing");
});
