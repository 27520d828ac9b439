import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import {
  codesToAudio,
  griffinLim,
  logSpectralDistanceDb,
  melToLinear,
  quantizeLogMel,
  reconstructionErrorDb,
  spectralConvergence,
} from "./inverse.ts";
import {
  DEFAULT_MEL,
  logMelSpectrogram,
  melFilterbank,
  type MelSettings,
  powerSpectrogram,
} from "./mel.ts";

const S = DEFAULT_MEL;
const BINS = S.n_fft / 2 + 1;

/** 0.5 s: a rising chirp, a decaying partial and a little noise. */
function testSignal(seed = 1): Float32Array {
  const r = new Random(seed, "inverse-test");
  const x = new Float32Array(S.sample_rate / 2);
  for (let i = 0; i < x.length; i++) {
    const t = i / S.sample_rate;
    x[i] = 0.3 * Math.sin(2 * Math.PI * (220 + 400 * t) * t) +
      0.2 * Math.sin(2 * Math.PI * 660 * t) * Math.exp(-3 * t) + 0.02 * r.normal();
  }
  return x;
}

/** `F x` for a `[bins]` power spectrum, f64. */
function applyFilterbank(fb: Float32Array, x: ArrayLike<number>, s: MelSettings): Float64Array {
  const bins = s.n_fft / 2 + 1;
  const m = new Float64Array(s.n_mels);
  for (let j = 0; j < s.n_mels; j++) {
    for (let k = 0; k < bins; k++) m[j] += fb[j * bins + k] * x[k];
  }
  return m;
}

function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

Deno.test("melToLinear recovers a known smooth non-negative spectrum through the filterbank", () => {
  const fb = melFilterbank(S);
  const x = new Float64Array(BINS);
  for (let k = 0; k < BINS; k++) {
    x[k] = 1 + 0.8 * Math.sin(k / 15) + 0.5 * Math.exp(-(((k - 100) / 20) ** 2));
  }
  const mel = applyFilterbank(fb, x, S);
  const power = melToLinear(Float32Array.from(mel, Math.log), S).map((v) => v * v);
  const melError = relativeError(applyFilterbank(fb, power, S), mel);
  assert(melError < 1e-4, `expected F·x̂ within 1e-4 of the mel power, relative error ${melError}`);
  const spectrumError = relativeError(power, x);
  assert(spectrumError < 0.15, `expected x̂ within 15 % of x, relative error ${spectrumError}`);
});

Deno.test("melToLinear keeps the fit when bands are empty (the non-negativity bound is active)", () => {
  const fb = melFilterbank(S);
  // Energy only below bin 60 and a narrow peak at bin 200; zero elsewhere.
  const x = new Float64Array(BINS);
  for (let k = 0; k < 60; k++) x[k] = 2 + Math.cos(k / 7);
  x[200] = 50;
  const mel = applyFilterbank(fb, x, S);
  const logMel = Float32Array.from(mel, (v) => Math.log(Math.max(v, 1e-10)));
  const power = melToLinear(logMel, S).map((v) => v * v);
  const fitted = applyFilterbank(fb, power, S);
  const melError = relativeError(fitted, mel);
  assert(
    melError < 1e-3,
    `expected the mel power refitted within 1e-3, relative error ${melError}`,
  );
  let farEnergy = 0;
  for (let k = 300; k < BINS; k++) farEnergy += power[k];
  assert(farEnergy < 1e-6, `expected no energy far above the peak, found ${farEnergy}`);
});

Deno.test("melToLinear rejects a buffer that is not whole frames", () => {
  assertThrows(() => melToLinear(new Float32Array(S.n_mels + 1), S), "not a multiple of n_mels");
});

Deno.test("griffinLim rebuilds a real signal's magnitude with spectral convergence below 0.12", () => {
  const p = powerSpectrogram(testSignal(), S);
  const magnitude = p.data.map(Math.sqrt);
  const y = griffinLim(magnitude, S, { iterations: 32, seed: 3 });
  assertEquals(y.length, p.frames * S.hop_length);
  const sc = spectralConvergence(magnitude, y, S);
  assert(sc < 0.12, `expected spectral convergence < 0.12 after 32 iterations, got ${sc}`);
  const start = spectralConvergence(magnitude, griffinLim(magnitude, S, { iterations: 0 }), S);
  assert(sc < start / 4, `expected iterations to cut the convergence 4x from ${start}, got ${sc}`);
});

Deno.test("griffinLim is a pure function of its inputs and seed", () => {
  const magnitude = powerSpectrogram(testSignal().subarray(0, 2000), S).data.map(Math.sqrt);
  const a = griffinLim(magnitude, S, { iterations: 4, seed: 7 });
  const b = griffinLim(magnitude, S, { iterations: 4, seed: 7 });
  const c = griffinLim(magnitude, S, { iterations: 4, seed: 8 });
  assertEquals(new Uint8Array(a.buffer), new Uint8Array(b.buffer));
  assert(a.some((v, i) => v !== c[i]), "expected another seed to give other samples");
});

Deno.test("codesToAudio gives codes × hop samples", () => {
  const r = new Random(5, "codebook");
  const k = 6;
  const codebook = Float32Array.from({ length: k * S.n_mels }, () => r.range(-8, 2));
  const codes = Uint32Array.from([0, 5, 5, 2, 1, 3, 4, 0, 0, 2, 5]);
  const audio = codesToAudio(codes, codebook, S, { iterations: 4 });
  assertEquals(audio.length, codes.length * S.hop_length);
  assert(audio.every(Number.isFinite), "expected finite samples");
  assert(audio.some((v) => v !== 0), "expected a non-silent reconstruction");
});

Deno.test("codesToAudio names the position of a code outside the codebook", () => {
  const codebook = new Float32Array(3 * S.n_mels);
  const e = assertThrows(() => codesToAudio(Uint32Array.from([0, 2, 3]), codebook, S));
  assert(e instanceof UserError, "expected a UserError");
  assertEquals(e.location.field, "codes[2]");
  assertEquals(e.expected, "a code in [0, 3)");
});

Deno.test("codesToAudio rejects a codebook that is not [K, n_mels]", () => {
  const e = assertThrows(() => codesToAudio(Uint32Array.from([0]), new Float32Array(7), S));
  assert(e instanceof UserError, "expected a UserError");
  assertEquals(e.location.field, "codebook");
});

Deno.test("logSpectralDistanceDb is 0 for a signal and itself", () => {
  const x = testSignal();
  assertAlmostEquals(logSpectralDistanceDb(x, x, S), 0, 0);
});

Deno.test("logSpectralDistanceDb grows with added noise", () => {
  const x = testSignal();
  const r = new Random(2, "noise");
  const noise = Float32Array.from(x, () => r.normal());
  const lsd = [0.001, 0.01, 0.1].map((a) =>
    logSpectralDistanceDb(x, x.map((v, i) => v + a * noise[i]), S)
  );
  assert(lsd[0] > 0, `expected a positive distance for faint noise, got ${lsd[0]}`);
  assert(lsd[0] < lsd[1] && lsd[1] < lsd[2], `expected increasing distances, got ${lsd}`);
});

Deno.test("quantizeLogMel picks the nearest row, lower index on ties", () => {
  // codebook [3, 2]: rows (0,0), (1,1), (0,0)
  const codebook = Float32Array.from([0, 0, 1, 1, 0, 0]);
  const codes = quantizeLogMel(Float32Array.from([0.9, 0.8, -1, 0.2, 0.5, 0.5]), codebook, 2);
  assertEquals(Array.from(codes), [1, 0, 0]);
});

Deno.test("reconstructionErrorDb is lower for a codebook that fits the signal than for one mean frame", () => {
  const x = testSignal();
  const mel = logMelSpectrogram(x, S);
  const mean = new Float32Array(S.n_mels);
  for (let t = 0; t < mel.frames; t++) {
    for (let m = 0; m < S.n_mels; m++) mean[m] += mel.data[t * S.n_mels + m] / mel.frames;
  }
  const own = reconstructionErrorDb(x, mel.data, S, { iterations: 16 });
  const flat = reconstructionErrorDb(x, mean, S, { iterations: 16 });
  assert(
    own < flat - 0.5,
    `expected the signal's own frames to beat one mean frame: ${own} vs ${flat}`,
  );
});

Deno.test("griffinLim at hop >= win/2 has no click at the end (the window-sum floor)", () => {
  // 50 frames/s with a 640-sample window: past the last frame's centre only a window tail
  // covers the output. Dividing by that near-zero sum made a full-scale click there.
  for (
    const s of [{ ...S, hop_length: 320, win_length: 640, n_fft: 1024 }, {
      ...S,
      hop_length: 480,
      win_length: 960,
      n_fft: 1024,
    }]
  ) {
    const p = powerSpectrogram(testSignal(), s);
    const y = griffinLim(p.data.map(Math.sqrt), s, { iterations: 16, seed: 3 });
    const tail = Math.round(0.03 * s.sample_rate);
    let body = 0, end = 0;
    for (let i = 0; i < y.length - tail; i++) body = Math.max(body, Math.abs(y[i]));
    for (let i = y.length - tail; i < y.length; i++) end = Math.max(end, Math.abs(y[i]));
    assert(body > 0.1, `hop ${s.hop_length}: the clip keeps its level (peak ${body})`);
    assert(end <= 1.5 * body, `hop ${s.hop_length}: last 30 ms peak ${end} vs body ${body}`);
  }
});
