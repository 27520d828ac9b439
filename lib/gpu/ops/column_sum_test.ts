import { assert, assertEquals } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { type BufferSlice, type Gpu, requestGpu } from "../device.ts";
import { createColumnSum } from "./column_sum.ts";
import { createOperandPack } from "./matmul.ts";
import { packTensors, randomUniform, readSlice, recordSteps, runSteps } from "./test_helpers.ts";

function gpu(): Promise<Gpu> {
  return requestGpu();
}

async function readBits(g: Gpu, slice: BufferSlice): Promise<Uint32Array> {
  const f = await readSlice(g, slice);
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/** Column sums of `dy [M, N]` in row order 0..M-1 in f32, after `start` (or from 0). */
function columnSumsF32(dy: Float32Array, M: number, N: number, start?: Float32Array): Float32Array {
  const sums = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (let m = 0; m < M; m++) sum = Math.fround(sum + dy[m * N + n]);
    sums[n] = start ? Math.fround(start[n] + sum) : sum;
  }
  return sums;
}

Deno.test("columnSum: each column is summed in row order, bit for bit the f32 sum on the CPU, with and without accumulate", async () => {
  const g = await gpu();
  // N = 45 runs the scalar kernel, 44 and 128 the vec4 one; M = 1 and 300 rows.
  for (const [M, N] of [[37, 45], [37, 44], [300, 128], [1, 45]] as const) {
    for (const accumulate of [false, true]) {
      const rng = new Random(7, "column_sum_test");
      const dy = randomUniform(rng, M * N);
      const start = randomUniform(rng, N);
      const inputs = packTensors(g, [dy]);
      const out = packTensors(g, [start]);
      const step = createColumnSum(g, { dy: inputs.slices[0], db: out.slices[0], accumulate });
      await runSteps(g, [[step, { M, N }]]);
      const expected = columnSumsF32(dy, M, N, accumulate ? start : undefined);
      const want = new Uint32Array(expected.buffer);
      assertEquals(
        await readBits(g, out.slices[0]),
        want,
        `db (M=${M} N=${N} accumulate=${accumulate})`,
      );
      step.destroy();
      inputs.buffer.destroy();
      out.buffer.destroy();
    }
  }
});

Deno.test("columnSum: reading dy through a texture copy, or through the products' pack of it, gives the same bits", async () => {
  const g = await gpu();
  // N = 44: a linear pack; 128: a 2-D pack (rows of 256-byte multiples); 45: no texture form.
  for (const [M, N, accumulate] of [[37, 44, false], [300, 128, true], [37, 45, true]] as const) {
    const rng = new Random(31, "column_sum_test");
    const dy = randomUniform(rng, M * N);
    const start = randomUniform(rng, N);
    const bits: Uint32Array[] = [];
    for (const form of ["storage", "copy", "pack"] as const) {
      const inputs = packTensors(g, [dy]);
      const out = packTensors(g, [start]);
      const pack = form === "pack"
        ? createOperandPack(g, inputs.slices[0], N, "columnSum:pack", M)
        : undefined;
      if (form === "pack") assert(pack !== undefined, `a pack of [${M}, ${N}]`);
      const step = createColumnSum(g, {
        dy: inputs.slices[0],
        db: out.slices[0],
        accumulate,
        maxCount: M * N,
        packed: pack?.operand,
      });
      assert(step.encodeCommands !== undefined, "the texture form exists on the software adapter");
      // The pack first, as the graph records it after dy is written.
      if (pack) await recordSteps(g, [[pack, { rows: M }]]);
      await (form === "storage" ? runSteps : recordSteps)(g, [[step, { M, N }]]);
      bits.push(await readBits(g, out.slices[0]));
      step.destroy();
      pack?.destroy();
      inputs.buffer.destroy();
      out.buffer.destroy();
    }
    assertEquals(bits[1], bits[0], `db through a copy (M=${M} N=${N} accumulate=${accumulate})`);
    assertEquals(bits[2], bits[0], `db through the pack (M=${M} N=${N} accumulate=${accumulate})`);
  }
});
