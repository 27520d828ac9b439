/**
 * Full-model gradient check: `samoutLossAndGrads` against central finite
 * differences of the loss, in float64, on a tiny SamOut. Entries whose
 * perturbation flips a running-max argmax or a relu sign (a kink of the loss)
 * are skipped and replaced by another sample.
 */
import { assert, assertEquals } from "./assert.ts";
import { Random } from "../lib/random/mod.ts";
import {
  crossEntropy,
  initParameters,
  parameterTable,
  type SamOutConfig,
  samoutForward,
  samoutLossAndGrads,
  teacherForcingSplit,
} from "../lib/model/mod.ts";

const cfg: SamOutConfig = { vocabSize: 7, hidden: 8, heads: 2, layers: 2, maxPositions: 9 };
const [B, S1] = [2, 7];
const S = S1 - 1;
const SAMPLES_PER_TENSOR = 6;
const H = 1e-5;

/** f64 weights with LayerNorm scale/shift and alpha moved off their initial 1/0/0.5. */
function weights(): Map<string, Float64Array> {
  const rng = new Random(5, "gradcheck/weights");
  const params = new Map<string, Float64Array>();
  for (const [name, t] of initParameters(cfg, 5)) {
    const p = Float64Array.from(t);
    if (name.endsWith("layer_norm.weight")) p.forEach((v, i) => (p[i] = v + rng.normal(0, 0.3)));
    if (name.endsWith("layer_norm.bias")) p.forEach((_, i) => (p[i] = rng.normal(0, 0.3)));
    if (name.endsWith("alpha")) p[0] = rng.range(0.2, 0.8);
    params.set(name, p);
  }
  return params;
}

// Two rows, the second ending in padding; every non-padding id appears somewhere.
const seq = Int32Array.of(1, 2, 3, 4, 5, 6, 2, 6, 5, 4, 3, 1, 0, 0);
const { input, target } = teacherForcingSplit(seq, B, S1);

/** The loss and the forward's discrete pattern (argmax indices and relu signs). */
function lossAndPattern(params: Map<string, Float64Array>): { loss: number; pattern: string } {
  const { logits, cache } = samoutForward(params, cfg, input, B, S);
  const loss = crossEntropy(logits, target, B * S, cfg.vocabSize).loss;
  const parts: string[] = [];
  for (const l of cache.layers) {
    parts.push(l.argmax.join(","), Array.from(l.g, (v) => (v > 0 ? "1" : "0")).join(""));
  }
  return { loss, pattern: parts.join("|") };
}

/** Entries worth checking: em rows of ids in the input, pos rows < S, anything else. */
function candidates(name: string, size: number): number[] {
  const d = cfg.hidden;
  const all = Array.from({ length: size }, (_, i) => i);
  if (name === "em.weight") {
    const ids = new Set(Array.from(input).filter((id) => id !== 0));
    return all.filter((i) => ids.has(Math.floor(i / d)));
  }
  if (name === "pos.weight") return all.filter((i) => i < S * d);
  return all;
}

Deno.test("full-model gradients match central finite differences (float64)", () => {
  const params = weights();
  const base = lossAndPattern(params);
  const { grads, loss } = samoutLossAndGrads(params, cfg, seq, B, S1);
  assertEquals(loss, base.loss);
  const rng = new Random(5, "gradcheck/entries");
  let checked = 0;
  let skipped = 0;
  let worst = 0;
  for (const spec of parameterTable(cfg)) {
    const p = params.get(spec.name)!;
    const g = grads.get(spec.name)!;
    let scale = 0;
    for (const v of g) scale = Math.max(scale, Math.abs(v));
    assert(scale > 0, `${spec.name}: gradient is all zero`);
    const pool = rng.shuffle(candidates(spec.name, p.length));
    let taken = 0;
    for (const i of pool) {
      if (taken === SAMPLES_PER_TENSOR) break;
      const keep = p[i];
      p[i] = keep + H;
      const up = lossAndPattern(params);
      p[i] = keep - H;
      const down = lossAndPattern(params);
      p[i] = keep;
      if (up.pattern !== base.pattern || down.pattern !== base.pattern) {
        skipped++;
        continue;
      }
      const fd = (up.loss - down.loss) / (2 * H);
      // Relative to the larger of the entry and a small share of the tensor's scale.
      const err = Math.abs(fd - g[i]) / Math.max(Math.abs(g[i]), 1e-3 * scale);
      worst = Math.max(worst, err);
      assert(err < 1e-5, `${spec.name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
      taken++;
      checked++;
    }
    assertEquals(taken, Math.min(SAMPLES_PER_TENSOR, pool.length), `${spec.name}: too many kinks`);
  }
  assert(checked > 100, `only ${checked} entries checked (${skipped} skipped)`);
  assert(worst < 1e-5, `worst relative error ${worst}`);
});

Deno.test("padding row of the embedding and unused positions get zero gradient", () => {
  const { grads } = samoutLossAndGrads(weights(), cfg, seq, B, S1);
  const d = cfg.hidden;
  assert(grads.get("em.weight")!.subarray(0, d).every((v) => v === 0), "em row 0 must be zero");
  assert(grads.get("pos.weight")!.subarray(S * d).every((v) => v === 0), "rows >= S must be zero");
  assert(grads.get("pos.weight")!.subarray(0, d).some((v) => v !== 0), "row 0 is used");
});
