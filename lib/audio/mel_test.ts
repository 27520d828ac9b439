import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import {
  checkMelSettings,
  DEFAULT_MEL,
  hzToMel,
  logMelSpectrogram,
  melFilterbank,
  type MelSettings,
  melToHz,
  powerSpectrogram,
} from "./mel.ts";

/** Awkward settings: window shorter than the FFT, hop not dividing anything. */
const ODD: MelSettings = {
  sample_rate: 11025,
  n_fft: 64,
  win_length: 50,
  hop_length: 17,
  n_mels: 13,
  f_min: 40,
  f_max: 5000,
};

function noise(n: number, seed: number): Float32Array {
  const r = new Random(seed, "mel-test");
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r.normal(0, 0.3);
  return x;
}

/** The textbook definition: reflect pad, periodic Hann centred in n_fft, O(n^2) DFT. */
function referencePower(x: Float32Array, s: MelSettings): Float64Array[] {
  const n = x.length;
  const half = s.n_fft / 2;
  const padded: number[] = [];
  for (let i = -half; i < n + half; i++) {
    let j = i;
    while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
    padded.push(x[j]);
  }
  const win = new Float64Array(s.n_fft);
  const left = Math.floor((s.n_fft - s.win_length) / 2);
  for (let i = 0; i < s.win_length; i++) {
    win[left + i] = 0.5 * (1 - Math.cos(2 * Math.PI * i / s.win_length));
  }
  const frames = 1 + Math.floor(n / s.hop_length);
  const out: Float64Array[] = [];
  for (let t = 0; t < frames; t++) {
    const row = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      let re = 0, im = 0;
      for (let i = 0; i < s.n_fft; i++) {
        const v = padded[t * s.hop_length + i] * win[i];
        re += v * Math.cos(-2 * Math.PI * k * i / s.n_fft);
        im += v * Math.sin(-2 * Math.PI * k * i / s.n_fft);
      }
      row[k] = re * re + im * im;
    }
    out.push(row);
  }
  return out;
}

Deno.test("powerSpectrogram matches a direct DFT on an awkward length", () => {
  const x = noise(1237, 1);
  const ref = referencePower(x, ODD);
  const got = powerSpectrogram(x, ODD);
  assertEquals(got.frames, ref.length, "frames = 1 + floor(1237 / 17)");
  assertEquals(got.bins, 33);
  let maxErr = 0, maxRef = 0;
  for (let t = 0; t < ref.length; t++) {
    for (let k = 0; k < 33; k++) {
      maxErr = Math.max(maxErr, Math.abs(got.data[t * 33 + k] - ref[t][k]));
      maxRef = Math.max(maxRef, ref[t][k]);
    }
  }
  assert(maxErr <= 1e-5 * maxRef, `max |err| ${maxErr} vs max power ${maxRef}`);
});

Deno.test("powerSpectrogram matches a direct DFT at the smallest and the default FFT sizes", () => {
  const cases: MelSettings[] = [
    { ...ODD, n_fft: 4, win_length: 3, hop_length: 3, n_mels: 1, f_min: 0, f_max: 2000 },
    { ...DEFAULT_MEL, hop_length: 397 },
  ];
  for (const s of cases) {
    const x = noise(1601, 5);
    const ref = referencePower(x, s);
    const got = powerSpectrogram(x, s);
    const bins = s.n_fft / 2 + 1;
    assertEquals(got.frames, ref.length);
    let maxErr = 0, maxRef = 0;
    for (let t = 0; t < ref.length; t++) {
      for (let k = 0; k < bins; k++) {
        maxErr = Math.max(maxErr, Math.abs(got.data[t * bins + k] - ref[t][k]));
        maxRef = Math.max(maxRef, ref[t][k]);
      }
    }
    assert(maxErr <= 1e-5 * maxRef, `n_fft ${s.n_fft}: max |err| ${maxErr} vs ${maxRef}`);
  }
});

Deno.test("powerSpectrogram reflects repeatedly for signals shorter than n_fft / 2", () => {
  const x = noise(9, 2);
  const ref = referencePower(x, ODD);
  const got = powerSpectrogram(x, ODD);
  assertEquals(got.frames, 1);
  for (let k = 0; k < 33; k++) assertAlmostEquals(got.data[k], ref[0][k], 1e-4 * (1 + ref[0][k]));
  assertEquals(powerSpectrogram(new Float32Array(0), ODD).frames, 0);
});

Deno.test("a pure tone's power peaks at its FFT bin", () => {
  const s = DEFAULT_MEL;
  const x = new Float32Array(4000);
  const bin = 37; // 37 * 16000 / 512 = 1156.25 Hz
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(2 * Math.PI * bin * i / s.n_fft);
  const p = powerSpectrogram(x, s);
  const mid = Math.floor(p.frames / 2) * p.bins;
  let best = 0;
  for (let k = 1; k < p.bins; k++) if (p.data[mid + k] > p.data[mid + best]) best = k;
  assertEquals(best, bin);
});

Deno.test("melFilterbank: HTK triangles, peak <= 1, each band non-empty, bands ordered", () => {
  const fb = melFilterbank(ODD);
  const bins = 33;
  assertEquals(fb.length, 13 * bins);
  let prevCentre = -1;
  for (let m = 0; m < 13; m++) {
    let peak = 0, arg = 0;
    for (let k = 0; k < bins; k++) {
      if (fb[m * bins + k] > peak) [peak, arg] = [fb[m * bins + k], k];
    }
    assert(peak > 0 && peak <= 1 + 1e-6, `band ${m} peak ${peak}`);
    assert(arg >= prevCentre, `band ${m} centre bin ${arg} before ${prevCentre}`);
    prevCentre = arg;
  }
  // Nothing outside [f_min, f_max].
  for (let k = 0; k < bins; k++) {
    const f = k * ODD.sample_rate / ODD.n_fft;
    if (f < ODD.f_min || f > ODD.f_max) {
      for (let m = 0; m < 13; m++) assertEquals(fb[m * bins + k], 0, `bin ${k} (${f} Hz)`);
    }
  }
  assertAlmostEquals(melToHz(hzToMel(1234.5)), 1234.5, 1e-9);
  assertAlmostEquals(hzToMel(1000), 999.9855, 1e-3);
});

Deno.test("logMelSpectrogram = ln(max(filterbank · DFT power, 1e-10))", () => {
  const x = noise(777, 3);
  for (let i = 0; i < 100; i++) x[i] = 0; // a silent start exercises the floor
  const ref = referencePower(x, ODD);
  const fb = melFilterbank(ODD);
  const got = logMelSpectrogram(x, ODD);
  assertEquals(got.frames, ref.length);
  for (let t = 0; t < ref.length; t++) {
    for (let m = 0; m < 13; m++) {
      let acc = 0;
      for (let k = 0; k < 33; k++) acc += fb[m * 33 + k] * ref[t][k];
      const want = Math.log(Math.max(acc, 1e-10));
      assertAlmostEquals(got.data[t * 13 + m], want, 1e-3, `frame ${t} band ${m}`);
    }
  }
  const silent = logMelSpectrogram(new Float32Array(500), DEFAULT_MEL);
  assertAlmostEquals(silent.data[0], Math.log(1e-10), 1e-4);
});

Deno.test("bad mel settings are UserErrors naming the field", () => {
  const e = assertThrows(() => checkMelSettings({ ...DEFAULT_MEL, n_fft: 500 }), "n_fft");
  assert(e instanceof UserError);
  assertEquals(e.location.field, "n_fft");
  const f = assertThrows(() => checkMelSettings({ ...DEFAULT_MEL, f_max: 9000 }), "f_max");
  assertEquals((f as UserError).location.field, "f_max");
  assertThrows(() => checkMelSettings({ ...DEFAULT_MEL, win_length: 600 }), "win_length");
});
