/**
 * The CPU reference for SamOut (/work/shared/SAMOUT.md), in float64.
 *
 * First the per-op forward/backward pairs that every WGSL kernel is tested
 * against, then the full model: forward, loss and gradients, and the recurrent
 * step form. Arrays are row-major; inputs are any `ArrayLike<number>` (f32 or
 * f64), outputs are new `Float64Array`s. Every sum runs in a fixed order, so a
 * result is a pure function of the inputs.
 *
 * @module
 */
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
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
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
