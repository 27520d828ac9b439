import { assert, assertEquals } from "../../../tests/assert.ts";
import { Random } from "../../random/mod.ts";
import { createStorageBuffer, createStorageBufferFrom, readBuffer, requestGpu } from "../device.ts";
import { createSampleStep, type SamplingSettings } from "./sample.ts";

/**
 * `[R, V]` logits that exercise the sampler: spread values, exact ties at the
 * maximum, rows that are nearly flat, and values so low their exp is 0.
 */
function logitsFor(R: number, V: number, seed: number): Float32Array<ArrayBuffer> {
  const r = new Random(seed, "sample-test");
  const x = new Float32Array(Math.ceil(R * V / 4) * 4);
  for (let row = 0; row < R; row++) {
    const kind = row % 4;
    for (let v = 0; v < V; v++) {
      x[row * V + v] = kind === 1 ? r.normal(0, 0.01) : r.normal(0, 3);
    }
    if (kind === 2) x[row * V + 5] = x[row * V + 9] = 40; // tied maxima
    if (kind === 3) { for (let v = 2; v < V; v += 3) x[row * V + v] = -200; }
  }
  return x;
}

/** Runs `steps` sampling steps of one form over the same logits; tokens, ids, done flags and figures. */
async function runForm(
  R: number,
  V: number,
  logits: Float32Array<ArrayBuffer>,
  settings: SamplingSettings,
  rowForm: boolean,
  steps: number,
) {
  const gpu = await requestGpu();
  const maxLen = steps;
  const buffers = {
    logits: createStorageBufferFrom(gpu, logits, "test.logits"),
    out: createStorageBuffer(gpu, R * maxLen * 4, "test.out"),
    next: createStorageBuffer(gpu, R * 4, "test.next"),
    done: createStorageBuffer(gpu, R * 4, "test.done"),
  };
  const figures = createStorageBuffer(gpu, R * 16, "test.figures");
  const step = createSampleStep(
    gpu,
    { ...buffers, V, maxLen, endId: 7, settings, maxRows: R },
    { rowForm, figures },
  );
  assertEquals(step.encodeCommands !== undefined, rowForm, "the row form is offered as asked");
  const figureSteps: Float32Array[] = [];
  try {
    for (let pos = 0; pos < steps; pos++) {
      const enc = gpu.device.createCommandEncoder();
      if (rowForm) {
        step.encodeCommands!(enc, { R, pos, step: pos });
      } else {
        const pass = enc.beginComputePass();
        step.encode(pass, { R, pos, step: pos });
        pass.end();
      }
      gpu.device.queue.submit([enc.finish()]);
      figureSteps.push(new Float32Array(await readBuffer(gpu, figures)));
    }
    return {
      out: new Uint32Array(await readBuffer(gpu, buffers.out)),
      next: new Int32Array(await readBuffer(gpu, buffers.next)),
      done: new Uint32Array(await readBuffer(gpu, buffers.done)),
      figures: figureSteps,
    };
  } finally {
    step.destroy();
    for (const b of [...Object.values(buffers), figures]) b.destroy();
  }
}

const SETTINGS: [string, SamplingSettings][] = [
  ["greedy", { temperature: 0, topK: 0, topP: 1, seed: 1 }],
  ["temperature 0.7, top-p 0.9 (evaluate's default)", {
    temperature: 0.7,
    topK: 0,
    topP: 0.9,
    seed: 2,
  }],
  ["temperature 1, no cut", { temperature: 1, topK: 0, topP: 1, seed: 3 }],
  ["top-k 20", { temperature: 1.3, topK: 20, topP: 1, seed: 4 }],
  ["top-k 5 and top-p 0.5", { temperature: 0.9, topK: 5, topP: 0.5, seed: 5 }],
];

for (const [V, R] of [[267, 37], [41, 9], [1100, 8]]) {
  Deno.test(`the row form samples what the workgroup form does, bit for bit (V ${V}, ${R} rows)`, async () => {
    const logits = logitsFor(R, V, V);
    for (const [name, settings] of SETTINGS) {
      const steps = 3;
      const group = await runForm(R, V, logits, settings, false, steps);
      const rows = await runForm(R, V, logits, settings, true, steps);
      assertEquals(rows.out, group.out, `${name}: tokens`);
      assertEquals(rows.next, group.next, `${name}: next ids`);
      assertEquals(rows.done, group.done, `${name}: done flags`);
      for (let s = 0; s < steps; s++) {
        // rowMax, top-k mass, top-p threshold and kept mass: the same bits.
        assertEquals(
          new Uint32Array(rows.figures[s].buffer),
          new Uint32Array(group.figures[s].buffer),
          `${name}: figures of step ${s}`,
        );
      }
      const tokens = Array.from(rows.out);
      assert(tokens.every((t) => t >= 2 && t < V), `${name}: ids 0 and 1 are never drawn`);
      if (settings.temperature > 0) {
        assert(new Set(tokens).size > 1, `${name}: sampling draws more than one token`);
        const kept = rows.figures[0].filter((_, i) => i % 4 === 3);
        assert(kept.every((k) => k > 0), `${name}: every row keeps some mass`);
      }
    }
  });
}

Deno.test("the sampler keeps the workgroup form where the logits do not fill whole texels", async () => {
  const gpu = await requestGpu();
  const R = 3, V = 41; // 123 floats: 492 bytes, not whole 16-byte texels
  const logits = createStorageBuffer(gpu, R * V * 4, "test.logits");
  const others = [R * 8, R * 4, R * 4].map((n, i) => createStorageBuffer(gpu, n, `test.${i}`));
  const step = createSampleStep(gpu, {
    logits,
    out: others[0],
    next: others[1],
    done: others[2],
    V,
    maxLen: 2,
    endId: 7,
    settings: SETTINGS[1][1],
    maxRows: R,
  }, { rowForm: true });
  assertEquals(step.encodeCommands, undefined);
  step.destroy();
  for (const b of [logits, ...others]) b.destroy();
});
