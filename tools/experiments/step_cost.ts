/**
 * Seconds per training step of the WGSL graph for a few batch shapes, to see
 * whether a step's cost follows its tokens or is mostly fixed overhead.
 *   deno run -A --unstable-webgpu tools/experiments/step_cost.ts [V] [d] [L] [BxS]...
 */
import { requestGpu } from "../../lib/gpu/device.ts";
import { SamOutTrainingGraph } from "../../lib/model/graph.ts";
import { initParameters } from "../../lib/model/params.ts";
import { Random } from "../../lib/random/mod.ts";
import type { TokenBatch } from "../../lib/data/types.ts";

const [V, d, L] = [
  Number(Deno.args[0] ?? 267),
  Number(Deno.args[1] ?? 128),
  Number(Deno.args[2] ?? 2),
];
const shapes = (Deno.args.length > 3 ? Deno.args.slice(3) : ["32x40", "64x40", "128x40", "32x80"])
  .map((s) => s.split("x").map(Number));
const gpu = await requestGpu();
// process CPU seconds (user + system), from /proc/self/stat (Linux; NaN elsewhere)
const cpu = () => {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
};
for (const [B, S] of shapes) {
  const cfg = { vocabSize: V, hidden: d, heads: 8, layers: L, maxPositions: 256 };
  const graph = await SamOutTrainingGraph.create(gpu, {
    config: cfg,
    maxBatch: B,
    maxLength: S + 1,
    optimizer: { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: 1 },
  });
  graph.uploadWeights(initParameters(cfg, 1));
  const rng = new Random(7, "step-cost");
  const tokens = new Int32Array(B * (S + 1));
  for (let j = 0; j < tokens.length; j++) tokens[j] = 1 + rng.int(V - 1);
  const batch: TokenBatch = { rows: B, length: S + 1, tokens };
  for (let i = 0; i < 2; i++) graph.trainStep(batch, 1e-3);
  await graph.readTrainStats();
  const steps = 6;
  const t0 = performance.now(), c0 = cpu();
  for (let i = 0; i < steps; i++) graph.trainStep(batch, 1e-3);
  await graph.readTrainStats();
  const s = (performance.now() - t0) / 1000 / steps;
  console.log(
    `B ${B} S ${S}: ${s.toFixed(3)} s/step wall, ${((cpu() - c0) / steps).toFixed(3)} cpu-s/step, ${
      Math.round(B * S / s)
    } tok/s`,
  );
  graph.destroy();
}
