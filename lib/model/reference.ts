/**
 * The CPU reference for SamOut (docs/SAMOUT.md), in float64.
 *
 * First the per-op forward/backward pairs that every WGSL kernel is tested
 * against, then the full model: forward, loss and gradients, and the recurrent
 * step form. Arrays are row-major; inputs are any `ArrayLike<number>` (f32 or
 * f64), outputs are new `Float64Array`s. Every sum runs in a fixed order, so a
 * result is a pure function of the inputs.
 *
 * @module
 */
import { headSize, type SamOutConfig } from "./config.ts";
import { UserError } from "../errors/mod.ts";
/** Numbers read by the reference: f32 or f64 arrays, or plain arrays. */
export type Numbers = ArrayLike<number>;

// ---------------------------------------------------------------------------
// Linear: y = x w^T + b
// ---------------------------------------------------------------------------

/** `y[M, N] = x[M, K] w[N, K]^T + bias[N]` (bias optional). Sums over k in order. */
export function linearForward(
  x: Numbers,
  w: Numbers,
  bias: Numbers | undefined,
  M: number,
  K: number,
  N: number,
): Float64Array {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[xo + k] * w[wo + k];
      y[i * N + n] = bias === undefined ? acc : acc + bias[n];
    }
  }
  return y;
}

/**
 * Gradients of {@link linearForward}: `dx[M, K] = dy w`, `dw[N, K] = dy^T x`,
 * `db[N] = sum_i dy[i]` (sums over i ascending).
 */
export function linearBackward(
  x: Numbers,
  w: Numbers,
  dy: Numbers,
  M: number,
  K: number,
  N: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = new Float64Array(M * K);
  const dw = new Float64Array(N * K);
  const db = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    const xo = i * K;
    for (let n = 0; n < N; n++) {
      const g = dy[i * N + n];
      db[n] += g;
      if (g === 0) continue;
      const wo = n * K;
      for (let k = 0; k < K; k++) {
        dx[xo + k] += g * w[wo + k];
        dw[wo + k] += g * x[xo + k];
      }
    }
  }
  return { dx, dw, db };
}

// ---------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------

/** `out[n, d] = table[ids[n]]`. */
export function embeddingForward(ids: Int32Array, table: Numbers, d: number): Float64Array {
  const out = new Float64Array(ids.length * d);
  for (let n = 0; n < ids.length; n++) {
    const o = ids[n] * d;
    for (let j = 0; j < d; j++) out[n * d + j] = table[o + j];
  }
  return out;
}

/**
 * Gradient of {@link embeddingForward}: `dTable[V, d]`, rows summed over n in
 * ascending order; row 0 (padding) stays zero.
 */
export function embeddingBackward(
  ids: Int32Array,
  dOut: Numbers,
  V: number,
  d: number,
): Float64Array {
  const dt = new Float64Array(V * d);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id === 0) continue;
    if (id < 0 || id >= V) throw new RangeError(`embeddingBackward: id ${id} outside [0, ${V})`);
    for (let j = 0; j < d; j++) dt[id * d + j] += dOut[n * d + j];
  }
  return dt;
}

// ---------------------------------------------------------------------------
// concat(position, hidden)
// ---------------------------------------------------------------------------

/** `cat[B, S, 2d]`: `pos[t]` (from `pos[P, d]`, P >= S) first, then `h[b, t]`. */
export function concatPositionHidden(
  pos: Numbers,
  h: Numbers,
  B: number,
  S: number,
  d: number,
): Float64Array {
  const cat = new Float64Array(B * S * 2 * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < S; t++) {
      const o = (b * S + t) * 2 * d;
      const ho = (b * S + t) * d;
      for (let j = 0; j < d; j++) {
        cat[o + j] = pos[t * d + j];
        cat[o + d + j] = h[ho + j];
      }
    }
  }
  return cat;
}

/**
 * Gradient of {@link concatPositionHidden}: `dpos[S, d]` summed over b = 0..B-1
 * in order, and `dh[B, S, d]`.
 */
export function concatPositionHiddenBackward(
  dcat: Numbers,
  B: number,
  S: number,
  d: number,
): { dpos: Float64Array; dh: Float64Array } {
  const dpos = new Float64Array(S * d);
  const dh = new Float64Array(B * S * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < S; t++) {
      const o = (b * S + t) * 2 * d;
      const ho = (b * S + t) * d;
      for (let j = 0; j < d; j++) {
        dpos[t * d + j] += dcat[o + j];
        dh[ho + j] = dcat[o + d + j];
      }
    }
  }
  return { dpos, dh };
}

// ---------------------------------------------------------------------------
// Running maximum along time
// ---------------------------------------------------------------------------

/**
 * `m[b, t, j] = max over tau <= t of z[b, tau, j]` for `z[B, S, d]`, and
 * `argmax[b, t, j]`: the tau of the max; ties go to the LATEST tau (as
 * `torch.cummax`).
 */
export function runningMaxForward(
  z: Numbers,
  B: number,
  S: number,
  d: number,
): { m: Float64Array; argmax: Int32Array } {
  const m = new Float64Array(B * S * d);
  const argmax = new Int32Array(B * S * d);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < d; j++) {
      let best = -Infinity;
      let arg = 0;
      for (let t = 0; t < S; t++) {
        const i = (b * S + t) * d + j;
        if (z[i] >= best) {
          best = z[i];
          arg = t;
        }
        m[i] = best;
        argmax[i] = arg;
      }
    }
  }
  return { m, argmax };
}

/**
 * Gradient of {@link runningMaxForward}: `dz[b, tau, j] = sum of dm[b, t, j]`
 * over the t whose argmax is tau (summed over t ascending).
 */
export function runningMaxBackward(
  dm: Numbers,
  argmax: Int32Array,
  B: number,
  S: number,
  d: number,
): Float64Array {
  const dz = new Float64Array(B * S * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < S; t++) {
      for (let j = 0; j < d; j++) {
        const i = (b * S + t) * d + j;
        dz[(b * S + argmax[i]) * d + j] += dm[i];
      }
    }
  }
  return dz;
}

// ---------------------------------------------------------------------------
// MaxState combine: s = (m + c) * m + b
// ---------------------------------------------------------------------------

/** `s = (m + c) * m + b`, elementwise. */
export function maxStateForward(m: Numbers, c: Numbers, b: Numbers): Float64Array {
  const s = new Float64Array(m.length);
  for (let i = 0; i < s.length; i++) s[i] = (m[i] + c[i]) * m[i] + b[i];
  return s;
}

/** Gradient of {@link maxStateForward}: `dm = ds (2m + c)`, `dc = ds m`, `db = ds`. */
export function maxStateBackward(
  ds: Numbers,
  m: Numbers,
  c: Numbers,
): { dm: Float64Array; dc: Float64Array; db: Float64Array } {
  const n = ds.length;
  const dm = new Float64Array(n);
  const dc = new Float64Array(n);
  const db = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    dm[i] = ds[i] * (2 * m[i] + c[i]);
    dc[i] = ds[i] * m[i];
    db[i] = ds[i];
  }
  return { dm, dc, db };
}

// ---------------------------------------------------------------------------
// Gate: y = f1 * relu(g)
// ---------------------------------------------------------------------------

/** `y = f1 * relu(g)`, elementwise. */
export function gatedForward(f1: Numbers, g: Numbers): Float64Array {
  const y = new Float64Array(f1.length);
  for (let i = 0; i < y.length; i++) y[i] = g[i] > 0 ? f1[i] * g[i] : 0;
  return y;
}

/** Gradient of {@link gatedForward}: `df1 = dy relu(g)`, `dg = dy f1 [g > 0]` (relu'(0) = 0). */
export function gatedBackward(
  dy: Numbers,
  f1: Numbers,
  g: Numbers,
): { df1: Float64Array; dg: Float64Array } {
  const n = dy.length;
  const df1 = new Float64Array(n);
  const dg = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (g[i] > 0) {
      df1[i] = dy[i] * g[i];
      dg[i] = dy[i] * f1[i];
    }
  }
  return { df1, dg };
}

// ---------------------------------------------------------------------------
// LayerNorm over the last axis
// ---------------------------------------------------------------------------

/**
 * `y[R, d] = (x - mean) * rstd * gamma + beta` per row, with the biased
 * variance and `rstd = 1 / sqrt(var + eps)` (PyTorch semantics).
 */
export function layerNormForward(
  x: Numbers,
  gamma: Numbers,
  beta: Numbers,
  R: number,
  d: number,
  eps = 1e-5,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(R * d);
  const mean = new Float64Array(R);
  const rstd = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    const o = r * d;
    let sum = 0;
    for (let j = 0; j < d; j++) sum += x[o + j];
    const mu = sum / d;
    let sq = 0;
    for (let j = 0; j < d; j++) sq += (x[o + j] - mu) * (x[o + j] - mu);
    const rs = 1 / Math.sqrt(sq / d + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < d; j++) y[o + j] = (x[o + j] - mu) * rs * gamma[j] + beta[j];
  }
  return { y, mean, rstd };
}

/**
 * Gradient of {@link layerNormForward}, from the saved `mean[R]` and `rstd[R]`:
 * `dx = rstd (g - mean(g) - xhat mean(g xhat))` with `g = dy gamma`;
 * `dgamma = sum_r dy xhat`, `dbeta = sum_r dy` (rows ascending).
 */
export function layerNormBackward(
  dy: Numbers,
  x: Numbers,
  gamma: Numbers,
  mean: Numbers,
  rstd: Numbers,
  R: number,
  d: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const dx = new Float64Array(R * d);
  const dgamma = new Float64Array(d);
  const dbeta = new Float64Array(d);
  for (let r = 0; r < R; r++) {
    const o = r * d;
    const mu = mean[r];
    const rs = rstd[r];
    let sumG = 0;
    let sumGX = 0;
    for (let j = 0; j < d; j++) {
      const xhat = (x[o + j] - mu) * rs;
      const g = dy[o + j] * gamma[j];
      sumG += g;
      sumGX += g * xhat;
      dgamma[j] += dy[o + j] * xhat;
      dbeta[j] += dy[o + j];
    }
    const meanG = sumG / d;
    const meanGX = sumGX / d;
    for (let j = 0; j < d; j++) {
      const xhat = (x[o + j] - mu) * rs;
      dx[o + j] = rs * (dy[o + j] * gamma[j] - meanG - xhat * meanGX);
    }
  }
  return { dx, dgamma, dbeta };
}

// ---------------------------------------------------------------------------
// Residual mix: y = alpha f + (1 - alpha) u
// ---------------------------------------------------------------------------

/** `y = alpha * f + (1 - alpha) * u`, elementwise with one scalar alpha. */
export function alphaMixForward(f: Numbers, u: Numbers, alpha: number): Float64Array {
  const y = new Float64Array(f.length);
  for (let i = 0; i < y.length; i++) y[i] = alpha * f[i] + (1 - alpha) * u[i];
  return y;
}

/**
 * Gradient of {@link alphaMixForward}: `df = alpha dy`, `du = (1 - alpha) dy`,
 * `dalpha = sum_i dy (f - u)` (ascending i).
 */
export function alphaMixBackward(
  dy: Numbers,
  f: Numbers,
  u: Numbers,
  alpha: number,
): { df: Float64Array; du: Float64Array; dalpha: number } {
  const n = dy.length;
  const df = new Float64Array(n);
  const du = new Float64Array(n);
  let dalpha = 0;
  for (let i = 0; i < n; i++) {
    df[i] = alpha * dy[i];
    du[i] = (1 - alpha) * dy[i];
    dalpha += dy[i] * (f[i] - u[i]);
  }
  return { df, du, dalpha };
}

// ---------------------------------------------------------------------------
// Cross-entropy with padding target 0 ignored
// ---------------------------------------------------------------------------

/** Result of {@link crossEntropy}. */
export interface CrossEntropyResult {
  /** Mean of `-log softmax(logits)[target]` over targets != 0; 0 when there are none. */
  loss: number;
  /** Rows with `argmax(logits) == target` among targets != 0 (argmax ties: lowest index). */
  correct: number;
  /** Rows with target != 0. */
  count: number;
  /** `d loss / d logits`, `[N, V]`; padding rows are zero. */
  dlogits: Float64Array;
}

/**
 * Cross-entropy of `logits[N, V]` against `targets[N]`, averaged over the
 * non-padding targets (PyTorch `ignore_index=0`, mean reduction). With no
 * counted target the loss and gradient are 0 (PyTorch would give NaN).
 */
export function crossEntropy(
  logits: Numbers,
  targets: Int32Array,
  N: number,
  V: number,
): CrossEntropyResult {
  const dlogits = new Float64Array(N * V);
  let count = 0;
  for (let n = 0; n < N; n++) if (targets[n] !== 0) count++;
  let total = 0;
  let correct = 0;
  for (let n = 0; n < N; n++) {
    const target = targets[n];
    if (target === 0) continue;
    if (target < 0 || target >= V) {
      throw new RangeError(`crossEntropy: target ${target} outside [0, ${V})`);
    }
    const o = n * V;
    let max = -Infinity;
    let arg = 0;
    for (let v = 0; v < V; v++) {
      if (logits[o + v] > max) {
        max = logits[o + v];
        arg = v;
      }
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v] - max);
    const logSum = Math.log(sum) + max;
    total += logSum - logits[o + target];
    if (arg === target) correct++;
    for (let v = 0; v < V; v++) dlogits[o + v] = Math.exp(logits[o + v] - logSum) / count;
    dlogits[o + target] -= 1 / count;
  }
  return { loss: count > 0 ? total / count : 0, correct, count, dlogits };
}

// ---------------------------------------------------------------------------
// Adam / AdamW
// ---------------------------------------------------------------------------

/** Adam hyper-parameters for one update. */
export interface AdamOptions {
  /** Learning rate. */
  lr: number;
  /** First-moment decay (PyTorch default 0.9). */
  beta1: number;
  /** Second-moment decay (PyTorch default 0.999). */
  beta2: number;
  /** Added to the denominator (PyTorch default 1e-8). */
  eps: number;
  /** Weight decay factor (0 for none). */
  weightDecay: number;
  /** true: AdamW (decay the weights directly); false: Adam (L2 term added to the gradient). */
  decoupled: boolean;
  /** 1-based step number, for the bias corrections. */
  step: number;
}

/** Arrays that {@link adamStep} updates in place. */
export type MutableNumbers = Float64Array | Float32Array;

/**
 * One Adam (or AdamW) update in place, exactly as `torch.optim.Adam` /
 * `torch.optim.AdamW` (non-amsgrad, non-fused):
 * `g = grad + wd p` (Adam) or `p *= 1 - lr wd` (AdamW); `m = b1 m + (1 - b1) g`;
 * `v = b2 v + (1 - b2) g^2`; `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
 */
export function adamStep(
  param: MutableNumbers,
  grad: Numbers,
  m: MutableNumbers,
  v: MutableNumbers,
  opts: AdamOptions,
): void {
  const { lr, beta1, beta2, eps, weightDecay, decoupled, step } = opts;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const stepSize = lr / bc1;
  for (let i = 0; i < param.length; i++) {
    let g = grad[i];
    let p = param[i];
    if (weightDecay !== 0) {
      if (decoupled) p *= 1 - lr * weightDecay;
      else g += weightDecay * p;
    }
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

/**
 * Clip-by-global-norm as `torch.nn.utils.clip_grad_norm_` (2-norm): the norm
 * of all gradients together, `sqrt(sum over tensors of |g|^2)`; when it exceeds
 * `maxNorm`, every gradient is scaled in place by `maxNorm / (norm + 1e-6)`.
 * Returns the norm before clipping.
 */
export function clipGradNorm(grads: Iterable<MutableNumbers>, maxNorm: number): number {
  const list = [...grads];
  let sq = 0;
  for (const g of list) {
    let t = 0;
    for (let i = 0; i < g.length; i++) t += g[i] * g[i];
    sq += t;
  }
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) { for (const g of list) for (let i = 0; i < g.length; i++) g[i] *= coef; }
  return norm;
}

// ---------------------------------------------------------------------------
// The full model
// ---------------------------------------------------------------------------

/** Named weights as in SAMOUT.md (f32 from a checkpoint, or f64 for gradient checks). */
export type ParameterMap = ReadonlyMap<string, Numbers>;

function param(params: ParameterMap, name: string, size: number): Numbers {
  const t = params.get(name);
  if (t === undefined) {
    throw new UserError(`tensor ${name} is missing from the weights`, {
      field: name,
      expected: `a tensor of ${size} values`,
    });
  }
  if (t.length !== size) {
    throw new UserError(`tensor ${name} has the wrong size`, {
      field: name,
      expected: `${size} values`,
      found: `${t.length} values`,
    });
  }
  return t;
}

/** One layer's weights, looked up and size-checked. */
interface LayerWeights {
  down: Numbers;
  w0: Numbers;
  w1: Numbers;
  w2: Numbers;
  ffn1W: Numbers;
  ffn1B: Numbers;
  gateW: Numbers;
  gateB: Numbers;
  ffn2W: Numbers;
  ffn2B: Numbers;
  lnW: Numbers;
  lnB: Numbers;
  alpha: number;
}

function layerWeights(params: ParameterMap, cfg: SamOutConfig, l: number): LayerWeights {
  const d = cfg.hidden;
  const p = `decoder_layers.${l}`;
  return {
    down: param(params, `down.${l}.weight`, d * 2 * d),
    w0: param(params, `${p}.self_attention.head0.weight`, d * d),
    w1: param(params, `${p}.self_attention.head1.weight`, d * d),
    w2: param(params, `${p}.self_attention.head2.weight`, d * d),
    ffn1W: param(params, `${p}.ffn.ffn1.weight`, 2 * d * d),
    ffn1B: param(params, `${p}.ffn.ffn1.bias`, 2 * d),
    gateW: param(params, `${p}.ffn.gate.weight`, 2 * d * d),
    gateB: param(params, `${p}.ffn.gate.bias`, 2 * d),
    ffn2W: param(params, `${p}.ffn.ffn2.weight`, d * 2 * d),
    ffn2B: param(params, `${p}.ffn.ffn2.bias`, d),
    lnW: param(params, `${p}.layer_norm.weight`, d),
    lnB: param(params, `${p}.layer_norm.bias`, d),
    alpha: param(params, `${p}.alpha`, 1)[0],
  };
}

/** What one layer's forward keeps for the backward pass (`R = B S` rows). */
export interface LayerCache {
  /** `[R, 2d]` concat(pos, h). */
  cat: Float64Array;
  /** `[R, d]` Down output. */
  u: Float64Array;
  /** `[R, d]` head2 output `c`. */
  c: Float64Array;
  /** `[R, d]` running max of `z = (a + b) / sqrt(hs)`. */
  m: Float64Array;
  /** `[R, d]` time index of each running max. */
  argmax: Int32Array;
  /** `[R, d]` `(m + c) m + b`. */
  s: Float64Array;
  /** `[R, 2d]` Ffn1(s). */
  f1: Float64Array;
  /** `[R, 2d]` Gate(s). */
  g: Float64Array;
  /** `[R, 2d]` f1 relu(g). */
  gated: Float64Array;
  /** `[R, d]` Ffn2 output. */
  f: Float64Array;
  /** `[R, d]` alpha f + (1 - alpha) u: the LayerNorm input. */
  mix: Float64Array;
  /** `[R]` LayerNorm row means. */
  mean: Float64Array;
  /** `[R]` LayerNorm reciprocal standard deviations. */
  rstd: Float64Array;
}

/** Activations of {@link samoutForward}. */
export interface ForwardCache {
  /** Batch rows. */
  B: number;
  /** Sequence length. */
  S: number;
  /** `[B, S]` input ids. */
  ids: Int32Array;
  /** Per layer activations, layer 0 first. */
  layers: LayerCache[];
  /** `[B S, d]` the last layer's output (the head's input). */
  hOut: Float64Array;
}

function checkIds(ids: Int32Array, cfg: SamOutConfig, B: number, S: number): void {
  if (ids.length !== B * S) {
    throw new RangeError(`samout: ${ids.length} ids for a batch of ${B} x ${S}`);
  }
  if (S > cfg.maxPositions) {
    throw new UserError("sequence longer than the model's maximum positions", {
      field: "sequence length",
      expected: `at most max_positions = ${cfg.maxPositions} tokens`,
      found: String(S),
    });
  }
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= cfg.vocabSize) {
      throw new UserError("token id outside the vocabulary", {
        field: "token id",
        expected: `an id from 0 to ${cfg.vocabSize - 1}`,
        found: String(ids[i]),
      });
    }
  }
}

/**
 * The full forward pass (SAMOUT.md, "Forward pass") for `ids[B, S]`:
 * `logits[B S, V]` and the activations the backward pass needs.
 */
export function samoutForward(
  params: ParameterMap,
  cfg: SamOutConfig,
  ids: Int32Array,
  B: number,
  S: number,
): { logits: Float64Array; cache: ForwardCache } {
  checkIds(ids, cfg, B, S);
  const { vocabSize: V, hidden: d } = cfg;
  const R = B * S;
  const scale = 1 / Math.sqrt(headSize(cfg));
  const em = param(params, "em.weight", V * d);
  const pos = param(params, "pos.weight", cfg.maxPositions * d);
  const head = param(params, "head.weight", V * d);
  let h = embeddingForward(ids, em, d);
  const layers: LayerCache[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const w = layerWeights(params, cfg, l);
    const cat = concatPositionHidden(pos, h, B, S, d);
    const u = linearForward(cat, w.down, undefined, R, 2 * d, d);
    const a = linearForward(u, w.w0, undefined, R, d, d);
    const b = linearForward(u, w.w1, undefined, R, d, d);
    const c = linearForward(u, w.w2, undefined, R, d, d);
    const z = new Float64Array(R * d);
    for (let i = 0; i < z.length; i++) z[i] = (a[i] + b[i]) * scale;
    const { m, argmax } = runningMaxForward(z, B, S, d);
    const s = maxStateForward(m, c, b);
    const f1 = linearForward(s, w.ffn1W, w.ffn1B, R, d, 2 * d);
    const g = linearForward(s, w.gateW, w.gateB, R, d, 2 * d);
    const gated = gatedForward(f1, g);
    const f = linearForward(gated, w.ffn2W, w.ffn2B, R, 2 * d, d);
    const mix = alphaMixForward(f, u, w.alpha);
    const { y: r, mean, rstd } = layerNormForward(mix, w.lnW, w.lnB, R, d);
    h = new Float64Array(R * d);
    for (let i = 0; i < h.length; i++) h[i] = r[i] + u[i];
    layers.push({ cat, u, c, m, argmax, s, f1, g, gated, f, mix, mean, rstd });
  }
  const logits = linearForward(h, head, undefined, R, d, V);
  return { logits, cache: { B, S, ids, layers, hOut: h } };
}

/**
 * Gradients of a scalar loss with respect to every parameter, given
 * `dlogits[B S, V]` and the forward cache. The map is in canonical order;
 * `pos.weight` rows >= S and `em.weight` row 0 are zero.
 */
export function samoutBackward(
  params: ParameterMap,
  cfg: SamOutConfig,
  cache: ForwardCache,
  dlogits: Numbers,
): Map<string, Float64Array> {
  const { vocabSize: V, hidden: d, maxPositions: P } = cfg;
  const { B, S } = cache;
  const R = B * S;
  const scale = 1 / Math.sqrt(headSize(cfg));
  const grads = new Map<string, Float64Array>();
  const head = param(params, "head.weight", V * d);
  const headGrad = linearBackward(cache.hOut, head, dlogits, R, d, V);
  let dh = headGrad.dx;
  const dpos = new Float64Array(P * d);
  const layerGrads: Map<string, Float64Array>[] = [];
  const downGrads: Float64Array[] = [];
  for (let l = cfg.layers - 1; l >= 0; l--) {
    const w = layerWeights(params, cfg, l);
    const k = cache.layers[l];
    const p = `decoder_layers.${l}`;
    const lg = new Map<string, Float64Array>();
    // h = r + u: dh reaches both the LayerNorm output and u.
    const ln = layerNormBackward(dh, k.mix, w.lnW, k.mean, k.rstd, R, d);
    const mixG = alphaMixBackward(ln.dx, k.f, k.u, w.alpha);
    const du = new Float64Array(R * d);
    for (let i = 0; i < du.length; i++) du[i] = dh[i] + mixG.du[i];
    const ffn2 = linearBackward(k.gated, w.ffn2W, mixG.df, R, 2 * d, d);
    const gateG = gatedBackward(ffn2.dx, k.f1, k.g);
    const ffn1 = linearBackward(k.s, w.ffn1W, gateG.df1, R, d, 2 * d);
    const gate = linearBackward(k.s, w.gateW, gateG.dg, R, d, 2 * d);
    const ds = new Float64Array(R * d);
    for (let i = 0; i < ds.length; i++) ds[i] = ffn1.dx[i] + gate.dx[i];
    const ms = maxStateBackward(ds, k.m, k.c);
    const dz = runningMaxBackward(ms.dm, k.argmax, B, S, d);
    // z = (a + b) scale; b also feeds s directly.
    const da = new Float64Array(R * d);
    const db = new Float64Array(R * d);
    for (let i = 0; i < da.length; i++) {
      da[i] = dz[i] * scale;
      db[i] = da[i] + ms.db[i];
    }
    const h0 = linearBackward(k.u, w.w0, da, R, d, d);
    const h1 = linearBackward(k.u, w.w1, db, R, d, d);
    const h2 = linearBackward(k.u, w.w2, ms.dc, R, d, d);
    for (let i = 0; i < du.length; i++) du[i] += h0.dx[i] + h1.dx[i] + h2.dx[i];
    const down = linearBackward(k.cat, w.down, du, R, 2 * d, d);
    const cat = concatPositionHiddenBackward(down.dx, B, S, d);
    for (let i = 0; i < S * d; i++) dpos[i] += cat.dpos[i];
    dh = cat.dh;
    downGrads[l] = down.dw;
    lg.set(`${p}.self_attention.head0.weight`, h0.dw);
    lg.set(`${p}.self_attention.head1.weight`, h1.dw);
    lg.set(`${p}.self_attention.head2.weight`, h2.dw);
    lg.set(`${p}.ffn.ffn1.weight`, ffn1.dw);
    lg.set(`${p}.ffn.ffn1.bias`, ffn1.db);
    lg.set(`${p}.ffn.gate.weight`, gate.dw);
    lg.set(`${p}.ffn.gate.bias`, gate.db);
    lg.set(`${p}.ffn.ffn2.weight`, ffn2.dw);
    lg.set(`${p}.ffn.ffn2.bias`, ffn2.db);
    lg.set(`${p}.layer_norm.weight`, ln.dgamma);
    lg.set(`${p}.layer_norm.bias`, ln.dbeta);
    lg.set(`${p}.alpha`, Float64Array.of(mixG.dalpha));
    layerGrads[l] = lg;
  }
  grads.set("em.weight", embeddingBackward(cache.ids, dh, V, d));
  grads.set("pos.weight", dpos);
  for (let l = 0; l < cfg.layers; l++) grads.set(`down.${l}.weight`, downGrads[l]);
  for (let l = 0; l < cfg.layers; l++) for (const [n, g] of layerGrads[l]) grads.set(n, g);
  grads.set("head.weight", headGrad.dw);
  return grads;
}

/** Loss, metrics and gradients of one teacher-forced batch. */
export interface LossAndGrads {
  /** Mean cross-entropy over non-padding targets (nats). */
  loss: number;
  /** `correct / count` (0 when count is 0). */
  accuracy: number;
  /** Targets != 0 predicted right (argmax). */
  correct: number;
  /** Targets != 0. */
  count: number;
  /** d loss / d parameter, canonical order. */
  grads: Map<string, Float64Array>;
}

/**
 * Teacher forcing on `seq[B, S1]`: input `seq[:, :-1]`, target `seq[:, 1:]`;
 * the loss, token accuracy and every parameter's gradient.
 */
export function samoutLossAndGrads(
  params: ParameterMap,
  cfg: SamOutConfig,
  seq: Int32Array,
  B: number,
  S1: number,
): LossAndGrads {
  if (S1 < 2) throw new RangeError(`samoutLossAndGrads: sequences of ${S1} < 2 tokens`);
  const { input, target } = teacherForcingSplit(seq, B, S1);
  const S = S1 - 1;
  const { logits, cache } = samoutForward(params, cfg, input, B, S);
  const ce = crossEntropy(logits, target, B * S, cfg.vocabSize);
  const grads = samoutBackward(params, cfg, cache, ce.dlogits);
  return {
    loss: ce.loss,
    accuracy: ce.count > 0 ? ce.correct / ce.count : 0,
    correct: ce.correct,
    count: ce.count,
    grads,
  };
}

/** `seq[B, S1]` -> `input = seq[:, :-1]`, `target = seq[:, 1:]`, both `[B, S1 - 1]`. */
export function teacherForcingSplit(
  seq: Int32Array,
  B: number,
  S1: number,
): { input: Int32Array; target: Int32Array } {
  if (seq.length !== B * S1) throw new RangeError(`${seq.length} ids for a batch of ${B} x ${S1}`);
  const S = S1 - 1;
  const input = new Int32Array(B * S);
  const target = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < S; t++) {
      input[b * S + t] = seq[b * S1 + t];
      target[b * S + t] = seq[b * S1 + t + 1];
    }
  }
  return { input, target };
}

// ---------------------------------------------------------------------------
// Recurrent (step) form
// ---------------------------------------------------------------------------

/** Generation state: per layer the running-max vector, and the next position. */
export interface SamOutStepState {
  /** Batch rows. */
  B: number;
  /** Position of the next token (tokens consumed so far). */
  t: number;
  /** Per layer `[B, d]` running maximum of z, -Infinity before the first token. */
  m: Float64Array[];
}

/** The state before the first token: `t = 0`, every `m = -Infinity`. */
export function samoutInitialState(cfg: SamOutConfig, B: number): SamOutStepState {
  const m: Float64Array[] = [];
  for (let l = 0; l < cfg.layers; l++) m.push(new Float64Array(B * cfg.hidden).fill(-Infinity));
  return { B, t: 0, m };
}

/**
 * One step of the recurrent form: feeds `ids[B]` at position `state.t`,
 * updates `state` in place (m = max(m, z), t += 1) and returns `logits[B, V]`.
 * Over a sequence this equals {@link samoutForward}'s logits.
 */
export function samoutStep(
  params: ParameterMap,
  cfg: SamOutConfig,
  state: SamOutStepState,
  ids: Int32Array,
): Float64Array {
  const { B, t } = state;
  if (t >= cfg.maxPositions) {
    throw new UserError("generation past the model's maximum positions", {
      field: "position",
      expected: `positions below max_positions = ${cfg.maxPositions}`,
      found: String(t),
    });
  }
  checkIds(ids, cfg, B, 1);
  const { vocabSize: V, hidden: d } = cfg;
  const scale = 1 / Math.sqrt(headSize(cfg));
  const em = param(params, "em.weight", V * d);
  const pos = param(params, "pos.weight", cfg.maxPositions * d);
  const head = param(params, "head.weight", V * d);
  let h = embeddingForward(ids, em, d);
  for (let l = 0; l < cfg.layers; l++) {
    const w = layerWeights(params, cfg, l);
    const cat = new Float64Array(B * 2 * d);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < d; j++) {
        cat[b * 2 * d + j] = pos[t * d + j];
        cat[b * 2 * d + d + j] = h[b * d + j];
      }
    }
    const u = linearForward(cat, w.down, undefined, B, 2 * d, d);
    const a = linearForward(u, w.w0, undefined, B, d, d);
    const bb = linearForward(u, w.w1, undefined, B, d, d);
    const c = linearForward(u, w.w2, undefined, B, d, d);
    const m = state.m[l];
    for (let i = 0; i < m.length; i++) m[i] = Math.max(m[i], (a[i] + bb[i]) * scale);
    const s = maxStateForward(m, c, bb);
    const f1 = linearForward(s, w.ffn1W, w.ffn1B, B, d, 2 * d);
    const g = linearForward(s, w.gateW, w.gateB, B, d, 2 * d);
    const f = linearForward(gatedForward(f1, g), w.ffn2W, w.ffn2B, B, 2 * d, d);
    const { y: r } = layerNormForward(alphaMixForward(f, u, w.alpha), w.lnW, w.lnB, B, d);
    h = new Float64Array(B * d);
    for (let i = 0; i < h.length; i++) h[i] = r[i] + u[i];
  }
  state.t = t + 1;
  return linearForward(h, head, undefined, B, d, V);
}
