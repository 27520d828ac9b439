import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import type { SamOutConfig } from "./config.ts";
import { initParameters } from "./params.ts";
import {
  configFromSafetensors,
  readSafetensors,
  samoutFromSafetensors,
  samoutMetadata,
  samoutToSafetensors,
  writeSafetensors,
} from "./safetensors.ts";

const FILE = "ckpt/best.safetensors";

/** A file with the given header object and raw data bytes. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Expects a UserError naming FILE (and `field` when given). */
function expectError(bytes: Uint8Array, field?: string): UserError {
  const e = assertThrows(() => readSafetensors(bytes, { file: FILE }));
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  assertEquals(e.location.file, FILE);
  if (field !== undefined) assertEquals(e.location.field, field);
  return e;
}

Deno.test("writeSafetensors round-trips shapes, values, scalars and metadata", () => {
  const bytes = writeSafetensors([
    { name: "zeta", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, -6.5) },
    { name: "alpha", shape: [], data: [0.5] },
    { name: "mid", shape: [0], data: [] },
  ], { voc_size: "7" });
  const { tensors, metadata } = readSafetensors(bytes, { file: FILE });
  assertEquals(metadata, { voc_size: "7" });
  assertEquals([...tensors.keys()], ["alpha", "mid", "zeta"]);
  assertEquals(tensors.get("zeta"), {
    shape: [2, 3],
    dtype: "F32",
    data: Float32Array.of(1, 2, 3, 4, 5, -6.5),
  });
  assertEquals(tensors.get("alpha")!.shape, []);
  assertEquals([...tensors.get("alpha")!.data], [0.5]);
});

Deno.test("writeSafetensors lays out a padded, sorted header and little-endian F32 data", () => {
  const bytes = writeSafetensors([
    { name: "b", shape: [1], data: [1] },
    { name: "a", shape: [1], data: [2] },
  ], { k: "v" });
  const view = new DataView(bytes.buffer);
  const n = Number(view.getBigUint64(0, true));
  assertEquals(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assertEquals(
    text.trimEnd(),
    '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
      '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
  );
  assert(/^ *$/.test(text.slice(text.trimEnd().length)), "padding must be spaces");
  assertEquals(view.getFloat32(8 + n, true), 2);
  assertEquals(view.getFloat32(8 + n + 4, true), 1);
  assertEquals(bytes.length, 8 + n + 8);
});

Deno.test("readSafetensors converts F64, F16 and BF16 to f32", () => {
  const data = new Uint8Array(8 + 4 + 4);
  const v = new DataView(data.buffer);
  v.setFloat64(0, -2.25, true);
  v.setUint16(8, 0x3c00, true); // f16 1.0
  v.setUint16(10, 0xc200, true); // f16 -3.0
  v.setUint16(12, 0x4049, true); // bf16 3.140625
  v.setUint16(14, 0x0001, true); // f16 smallest subnormal, 2^-24
  const bytes = craft({
    d: { dtype: "F64", shape: [1], data_offsets: [0, 8] },
    h: { dtype: "F16", shape: [2], data_offsets: [8, 12] },
    b: { dtype: "BF16", shape: [1], data_offsets: [12, 14] },
    s: { dtype: "F16", shape: [], data_offsets: [14, 16] },
  }, data);
  const { tensors } = readSafetensors(bytes, { file: FILE });
  assertEquals([...tensors.get("d")!.data], [-2.25]);
  assertEquals([...tensors.get("h")!.data], [1, -3]);
  assertEquals([...tensors.get("b")!.data], [3.140625]);
  assertEquals([...tensors.get("s")!.data], [Math.fround(2 ** -24)]);
  assertEquals(tensors.get("h")!.dtype, "F16");
});

Deno.test("readSafetensors rejects files too short for the header length", () => {
  const e = expectError(new Uint8Array(5));
  assertEquals(e.found, "5 bytes");
});

Deno.test("readSafetensors rejects a header length past the end (truncated header)", () => {
  const good = writeSafetensors([{ name: "w", shape: [2], data: [1, 2] }]);
  expectError(good.subarray(0, 20));
});

Deno.test("readSafetensors rejects a header that is not JSON or not an object", () => {
  expectError(craft("{not json"));
  expectError(craft("[1, 2]"));
  expectError(craft({ __metadata__: { n: 3 } }), "__metadata__.n");
});

Deno.test("readSafetensors names the tensor whose data is cut off (truncated file)", () => {
  const good = writeSafetensors([
    { name: "first", shape: [2], data: [1, 2] },
    { name: "second", shape: [3], data: [1, 2, 3] },
  ]);
  const e = expectError(good.subarray(0, good.length - 4), "second");
  assert(e.message.includes("second"), e.message);
});

Deno.test("readSafetensors names the tensor with offsets past the end", () => {
  const bytes = craft(
    { w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
    new Uint8Array(8),
  );
  expectError(bytes, "w");
});

Deno.test("readSafetensors names the tensor with an unsupported dtype", () => {
  const bytes = craft(
    { ids: { dtype: "I64", shape: [1], data_offsets: [0, 8] } },
    new Uint8Array(8),
  );
  const e = expectError(bytes, "ids");
  assertEquals(e.found, '"I64"');
});

Deno.test("readSafetensors names the tensor whose size does not match its shape", () => {
  const bytes = craft({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
  const e = expectError(bytes, "w");
  assertEquals(e.expected, "12 bytes for F32[3]");
  expectError(craft({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }), "w");
  expectError(craft({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }), "w");
});

const cfg: SamOutConfig = { vocabSize: 9, hidden: 8, heads: 2, layers: 2, maxPositions: 5 };

Deno.test("a SamOut checkpoint round-trips config and weights", () => {
  const params = initParameters(cfg, 11);
  const bytes = samoutToSafetensors(cfg, params);
  const back = samoutFromSafetensors(bytes, { file: FILE });
  assertEquals(back.cfg, cfg);
  assertEquals(back.metadata, samoutMetadata(cfg));
  assertEquals([...back.params.keys()], [...params.keys()]);
  for (const [name, t] of params) assertEquals(back.params.get(name), t, name);
});

function shapesOf(c: SamOutConfig) {
  return readSafetensors(samoutToSafetensors(c, initParameters(c, 1)), { file: FILE }).tensors;
}

Deno.test("configFromSafetensors takes heads from the option when the metadata lacks it", () => {
  const tensors = shapesOf(cfg);
  const { num_heads: _, ...meta } = samoutMetadata(cfg);
  assertEquals(configFromSafetensors(tensors, meta, { heads: 4 }).heads, 4);
  const e = assertThrows(() => configFromSafetensors(tensors, meta, { file: FILE }));
  assert(e instanceof UserError);
  assertEquals(e.location.field, "__metadata__.num_heads");
  assertEquals(e.location.file, FILE);
});

Deno.test("configFromSafetensors rejects metadata that disagrees with the shapes", () => {
  const meta = { ...samoutMetadata(cfg), hidden_size: "16" };
  const e = assertThrows(() => configFromSafetensors(shapesOf(cfg), meta, { file: FILE }));
  assert(e instanceof UserError);
  assertEquals(e.location.field, "__metadata__.hidden_size");
});

Deno.test("configFromSafetensors names a missing or mis-shaped tensor", () => {
  const tensors = shapesOf(cfg);
  tensors.delete("decoder_layers.1.alpha");
  const e = assertThrows(() => configFromSafetensors(tensors, samoutMetadata(cfg), { file: FILE }));
  assert(e instanceof UserError);
  assertEquals(e.location.field, "decoder_layers.1.alpha");
  const t2 = shapesOf(cfg);
  t2.set("head.weight", { shape: [8, 9], dtype: "F32", data: new Float32Array(72) });
  const e2 = assertThrows(() => configFromSafetensors(t2, samoutMetadata(cfg), { file: FILE }));
  assert(e2 instanceof UserError);
  assertEquals([e2.location.field, e2.expected, e2.found], ["head.weight", "[9,8]", "[8,9]"]);
});
