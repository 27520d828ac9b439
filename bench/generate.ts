/**
 * `deno task bench generate`: generation throughput with SamOut's recurrent
 * state against the blog post's method (re-run the full model over the
 * growing prefix and take the last position), side by side on the same
 * adapter, with the ratio; and the time per generated token after prefixes
 * of 64, 256 and 1024 tokens (the recurrent form should be flat).
 *
 * Model: the default pipeline's size (hidden 128, 8 heads, 2 layers,
 * 267 tokens), random weights, 8 rows, temperature 1, no end token (every
 * row generates the full length).
 *
 * @module
 */
import { requestGpu } from "../lib/gpu/device.ts";
import { generateOnGpu, sampleRow } from "../lib/generate/mod.ts";
import type { SamOutConfig } from "../lib/model/config.ts";
import { SamOutInference } from "../lib/model/inference.ts";
import { initParameters } from "../lib/model/params.ts";

const CFG: SamOutConfig = { vocabSize: 267, hidden: 128, heads: 8, layers: 2, maxPositions: 1100 };
const ROWS = 8;
const NEW_TOKENS = 512;

/** Runs the benchmark; returns its figures. */
export async function benchGenerate(): Promise<Record<string, unknown>> {
  const gpu = await requestGpu();
  const weights = initParameters(CFG, 1);
  const settings = { temperature: 1, topK: 0, topP: 1, seed: 7 };
  const prompt = () => Array.from({ length: ROWS }, () => Int32Array.from([1]));
  const never = CFG.vocabSize; // an id no row can emit: every row runs the full length

  // Warm-up (pipeline compilation), then the recurrent form at 512 new tokens.
  await generateOnGpu(gpu, {
    config: CFG,
    weights,
    prompts: prompt(),
    maxNewTokens: 8,
    settings,
    endId: never,
  });
  let t0 = performance.now();
  await generateOnGpu(gpu, {
    config: CFG,
    weights,
    prompts: prompt(),
    maxNewTokens: NEW_TOKENS,
    settings,
    endId: never,
    checkEvery: NEW_TOKENS,
  });
  const recurrentS = (performance.now() - t0) / 1000;
  const recurrentTps = (ROWS * NEW_TOKENS) / recurrentS;
  console.error(
    `recurrent state (GPU step + GPU sampling): ${ROWS} rows x ${NEW_TOKENS} tokens in ${
      recurrentS.toFixed(2)
    } s = ${Math.round(recurrentTps)} tokens/s`,
  );

  // The blog post's method: the full forward over the growing prefix, last position, sampled on the host.
  const model = await SamOutInference.create(gpu, {
    config: CFG,
    maxBatch: ROWS,
    maxLength: NEW_TOKENS + 1,
    maxPicks: ROWS,
  });
  let prefixS = 0;
  try {
    model.uploadWeights(weights);
    const seqs = Array.from({ length: ROWS }, () => [1]);
    t0 = performance.now();
    for (let step = 0; step < NEW_TOKENS; step++) {
      const length = seqs[0].length;
      const tokens = new Int32Array(ROWS * length);
      seqs.forEach((s, r) => tokens.set(s, r * length));
      const logits = await model.logitsAt(
        { rows: ROWS, length, tokens },
        seqs.map((_, row) => ({ row, position: length - 1 })),
      );
      seqs.forEach((s, r) => {
        s.push(
          sampleRow(logits.subarray(r * CFG.vocabSize, (r + 1) * CFG.vocabSize), settings, r, step),
        );
      });
    }
    prefixS = (performance.now() - t0) / 1000;
  } finally {
    model.destroy();
  }
  const prefixTps = (ROWS * NEW_TOKENS) / prefixS;
  console.error(
    `full re-run over the prefix (blog post): ${ROWS} rows x ${NEW_TOKENS} tokens in ${
      prefixS.toFixed(2)
    } s = ${Math.round(prefixTps)} tokens/s`,
  );
  const ratio = recurrentTps / prefixTps;
  console.error(`ratio: ${ratio.toFixed(1)}x (goal >= 10x at ${NEW_TOKENS} tokens)`);

  // Time per step after a prefix of 64, 256, 1024 tokens: the recurrent
  // stepper fed the prefix, the queue drained, then 64 steps timed to the
  // end of their GPU work (no difference of two noisy runs).
  const perToken: Record<string, number> = {};
  const stepModel = await SamOutInference.create(gpu, { config: CFG, maxBatch: 1, maxLength: 1 });
  try {
    stepModel.uploadWeights(weights);
    const ids = (t: number) =>
      Int32Array.from({ length: ROWS }, (_, r) => 4 + ((t * 7 + r) % (CFG.vocabSize - 4)));
    for (const prefix of [64, 256, 1024]) {
      const stepper = await stepModel.createStepper(ROWS);
      try {
        for (let t = 0; t < prefix; t++) stepper.step(ids(t));
        await gpu.device.queue.onSubmittedWorkDone();
        const start = performance.now();
        for (let t = prefix; t < prefix + 64; t++) stepper.step(ids(t));
        await gpu.device.queue.onSubmittedWorkDone();
        perToken[String(prefix)] = (performance.now() - start) / 64;
      } finally {
        stepper.destroy();
      }
      console.error(
        `after a ${prefix}-token prefix: ${
          perToken[String(prefix)].toFixed(2)
        } ms per step of ${ROWS} rows`,
      );
    }
  } finally {
    stepModel.destroy();
  }
  const flat = Math.max(...Object.values(perToken)) / Math.min(...Object.values(perToken));
  console.error(
    `max/min time per token over prefixes 64, 256, 1024: ${flat.toFixed(2)} (flat = 1)`,
  );
  return {
    adapter: gpu.adapterDescription,
    rows: ROWS,
    new_tokens: NEW_TOKENS,
    recurrent_tokens_per_s: recurrentTps,
    prefix_rerun_tokens_per_s: prefixTps,
    ratio,
    ms_per_step_after_prefix: perToken,
    flatness: flat,
  };
}
