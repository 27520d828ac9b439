import { assertClose, assertEquals, assertThrows } from "../../../tests/assert.ts";
import { embeddingBackward } from "../../model/reference.ts";
import { Random } from "../../random/mod.ts";
import {
  createEmbeddingBackward,
  createEmbeddingForward,
  EMBEDDING_SEGMENT_ROWS,
} from "./embedding.ts";
import { planEmbeddingGradient } from "./embedding_plan.ts";
import {
  assertBitIdentical,
  pack,
  randomNormal,
  readPacked,
  recordSteps,
  runSteps,
  testGpu,
} from "./model_ops_testing.ts";

const B = 3, S = 13, d = 20, V = 37;

/** Ids `[rows]` with padding (15%) and token 3 repeated on a share `heavy` of the rows. */
function randomIds(rng: Random, rows = B * S, heavy = 0.2): Int32Array<ArrayBuffer> {
  const ids = new Int32Array(rows);
  for (let i = 0; i < ids.length; i++) {
    const u = rng.uniform();
    ids[i] = u < 0.15 ? 0 : u < 0.15 + heavy ? 3 : 1 + rng.int(V - 1);
  }
  return ids;
}

for (const width of [20, 18]) {
  Deno.test(`embedding forward gathers table rows for ids, zeros for ids outside the table (d = ${width}, slices at aligned offsets)`, async () => {
    const gpu = await testGpu();
    const rng = new Random(2, "embedding-forward");
    const ids = randomIds(rng);
    ids[4] = V + 5;
    ids[9] = -2;
    const table = randomNormal(rng, V * width);
    const p = pack(gpu, [ids, table, new Float32Array(B * S * width)], "t");
    const step = createEmbeddingForward(gpu, {
      ids: p.slices[0],
      table: p.slices[1],
      out: p.slices[2],
      V,
      d: width,
      maxRows: B * S,
    });
    await runSteps(gpu, [[step, { B, S }]]);
    const r = await readPacked(gpu, p);
    r.assertGapsIntact();
    const expected = new Float32Array(B * S * width);
    ids.forEach((id, row) => {
      if (id >= 0 && id < V) {
        expected.set(table.subarray(id * width, (id + 1) * width), row * width);
      }
    });
    assertClose(r.f32(2), expected, 0, "h");
    step.destroy();
    p.buffer.destroy();
  });
}

/**
 * `width` channels (d = 20: four per invocation; 18: one); `recorded`: as the
 * graphs record it (dOut read through a texture copy).
 */
async function runBackward(
  ids: Int32Array,
  dOut: Float32Array<ArrayBuffer>,
  dTable0: Float32Array<ArrayBuffer>,
  { width = d, recorded = false } = {},
): Promise<{ dTable: Float32Array; gapsIntact: () => void }> {
  const gpu = await testGpu();
  const p = pack(gpu, [dOut, dTable0], "t");
  const step = createEmbeddingBackward(gpu, {
    dOut: p.slices[0],
    dTable: p.slices[1],
    V,
    d: width,
    maxRows: ids.length,
  });
  if (recorded) assertEquals(step.encodeCommands !== undefined, true, "texture form");
  await (recorded ? recordSteps : runSteps)(gpu, [[step, { plan: planEmbeddingGradient(ids, V) }]]);
  const r = await readPacked(gpu, p);
  const dTable = r.f32(1).slice();
  step.destroy();
  p.buffer.destroy();
  return { dTable, gapsIntact: r.assertGapsIntact };
}

Deno.test("embedding backward adds per-token row sums into dEm and leaves other rows alone", async () => {
  const rng = new Random(3, "embedding-backward");
  const ids = randomIds(rng);
  const dOut = randomNormal(rng, B * S * d);
  const dTable0 = randomNormal(rng, V * d);
  const { dTable, gapsIntact } = await runBackward(ids, dOut, dTable0);
  gapsIntact();
  const ref = embeddingBackward(ids, dOut, V, d);
  const present = new Set(ids);
  const expected = new Float64Array(V * d);
  for (let i = 0; i < V * d; i++) expected[i] = dTable0[i] + ref[i];
  assertClose(dTable, expected, 1e-6, "dEm");
  for (let v = 0; v < V; v++) {
    if (v !== 0 && present.has(v)) continue;
    assertEquals(
      Array.from(dTable.subarray(v * d, (v + 1) * d)),
      Array.from(dTable0.subarray(v * d, (v + 1) * d)),
      `row ${v} (${v === 0 ? "padding" : "absent"}) must be untouched`,
    );
  }
});

for (const width of [d, 18]) {
  Deno.test(`embedding backward sums a token on most rows (several segments) like the reference (d ${width})`, async () => {
    const rows = 4 * 50;
    const rng = new Random(22, "embedding-frequent");
    const ids = randomIds(rng, rows, 0.7);
    const count = ids.filter((id) => id === 3).length;
    if (count <= 2 * EMBEDDING_SEGMENT_ROWS) throw new Error(`token 3 occurs only ${count} times`);
    const dOut = randomNormal(rng, rows * width);
    const { dTable, gapsIntact } = await runBackward(ids, dOut, new Float32Array(V * width), {
      width,
    });
    gapsIntact();
    assertClose(dTable, embeddingBackward(ids, dOut, V, width), 1e-6, "dEm");
  });
}

Deno.test("embedding backward is bit-identical across runs", async () => {
  const rng = new Random(4, "embedding-determinism");
  const ids = randomIds(rng, 4 * 50, 0.7);
  const dOut = randomNormal(rng, ids.length * d, 3);
  const zero = new Float32Array(V * d);
  const a = await runBackward(ids, dOut, zero);
  const b = await runBackward(ids, dOut, zero);
  assertBitIdentical(a.dTable, b.dTable, "dEm");
  const c = await runBackward(ids, dOut, zero, { recorded: true });
  assertBitIdentical(c.dTable, a.dTable, "dEm (dOut read through a texture copy)");
});

Deno.test("embedding backward rejects a plan larger than the step was built for", async () => {
  const gpu = await testGpu();
  const p = pack(gpu, [new Float32Array(4 * d), new Float32Array(V * d)], "t");
  const step = createEmbeddingBackward(gpu, {
    dOut: p.slices[0],
    dTable: p.slices[1],
    V,
    d,
    maxRows: 4,
  });
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  const plan = planEmbeddingGradient(new Int32Array([1, 1, 2, 1, 1]), V);
  assertThrows(() => step.encode(pass, { plan }), "plan rows = 5, expected an integer in [0, 4]");
  pass.end();
  encoder.finish();
  step.destroy();
  p.buffer.destroy();
});
