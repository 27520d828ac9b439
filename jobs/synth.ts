/**
 * synth: the built-in data set. Generates labelled game-style sound effects
 * (coin, laser, explosion, jump, powerup, hit, blip) with a small sfxr-like
 * synthesiser: one oscillator (square, saw, triangle, sine or noise) with
 * frequency slides, vibrato, arpeggio and repeat, an attack/sustain/decay
 * envelope with punch, and one-pole low- and high-pass filters with sweeps.
 *
 * Each clip's parameters come from `new Random(seed, "synth/<category>/<i>")`,
 * so a clip depends only on the seed, its category and its index: the same
 * seed gives byte-identical files, and adding categories or clips leaves the
 * existing ones unchanged.
 *
 * Writes: `audio/<category>/<category>_<NNN>.wav` (16-bit mono PCM).
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { encodeWav } from "../lib/audio/wav.ts";
import { defineJob } from "../lib/pipeline/job.ts";
import { Random } from "../lib/random/mod.ts";

/** The sound-effect categories synth can generate. */
export const SYNTH_CATEGORIES = [
  "coin",
  "laser",
  "explosion",
  "jump",
  "powerup",
  "hit",
  "blip",
] as const;

/** One of {@link SYNTH_CATEGORIES}. */
export type SynthCategory = typeof SYNTH_CATEGORIES[number];

/** The synth job's parameters. */
export const SynthParams = z.strictObject({
  /** Which categories to generate (each once). */
  categories: z.array(z.enum(SYNTH_CATEGORIES)).min(1)
    .refine((c) => new Set(c).size === c.length, "categories must not repeat")
    .default([...SYNTH_CATEGORIES]),
  /** Clips per category. */
  clips_per_category: z.number().int().min(1).max(100000).default(40),
  /** Output sample rate in Hz. */
  sample_rate: z.number().int().min(8000).max(96000).default(16000),
  /**
   * Clip lengths are each category's natural length, time-scaled into
   * [min_duration_s, max_duration_s] when outside it (natural lengths: 0.04–1.05 s).
   */
  min_duration_s: z.number().positive().default(0.05),
  /** See `min_duration_s`. */
  max_duration_s: z.number().positive().max(60).default(1.5),
}).refine((p) => p.min_duration_s <= p.max_duration_s, {
  message: "min_duration_s must not exceed max_duration_s",
  path: ["min_duration_s"],
});

/** Parsed synth parameters. */
export type SynthParams = z.output<typeof SynthParams>;

type Wave = "square" | "saw" | "triangle" | "sine" | "noise";

/** Everything that defines one sound. Times in seconds, frequencies in Hz, slides in octaves/s. */
export interface Voice {
  wave: Wave;
  /** Square duty cycle at t = 0, and its change per second. */
  duty: number;
  dutySweep: number;
  /** Start frequency (for noise: the rate scale, new values at 16 × this). */
  freqHz: number;
  /** Pitch slide in octaves per second, and its change per second. */
  slide: number;
  slideAccel: number;
  /** Vibrato depth (fraction of the frequency) and rate. */
  vibratoDepth: number;
  vibratoHz: number;
  /** After `arpTime` seconds the pitch is multiplied by `arpMult` (0: no arpeggio). */
  arpTime: number;
  arpMult: number;
  /** Every `repeat` seconds the slide and arpeggio restart (0: never). */
  repeat: number;
  attack: number;
  sustain: number;
  decay: number;
  /** Extra level at the start of the sustain, fading to 1 by its end. */
  punch: number;
  /** Decay shape: level = (1 - x)^decayCurve. */
  decayCurve: number;
  /** Low-pass cutoff (Infinity: none) and its sweep; high-pass cutoff (0: none) and its sweep. */
  lowPassHz: number;
  lowPassSweep: number;
  highPassHz: number;
  highPassSweep: number;
  /** Peak level of the written clip. */
  gain: number;
}

function pick<T>(rng: Random, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/** Draws one sound's parameters in the character of `category`. */
export function drawVoice(category: SynthCategory, rng: Random): Voice {
  const v: Voice = {
    wave: "square",
    duty: 0.5,
    dutySweep: 0,
    freqHz: 440,
    slide: 0,
    slideAccel: 0,
    vibratoDepth: 0,
    vibratoHz: 0,
    arpTime: 0,
    arpMult: 1,
    repeat: 0,
    attack: 0,
    sustain: 0.1,
    decay: 0.1,
    punch: 0,
    decayCurve: 1,
    lowPassHz: Infinity,
    lowPassSweep: 0,
    highPassHz: 0,
    highPassSweep: 0,
    gain: rng.range(0.5, 0.9),
  };
  switch (category) {
    case "coin": // bright tone that jumps up a fourth to a sixth
      v.wave = pick(rng, ["square", "square", "saw"] as const);
      v.duty = rng.range(0.3, 0.5);
      v.freqHz = rng.range(700, 1600);
      v.arpTime = rng.range(0.05, 0.11);
      v.arpMult = rng.range(1.3, 1.7);
      v.sustain = rng.range(0.06, 0.14);
      v.punch = rng.range(0.3, 0.7);
      v.decay = rng.range(0.15, 0.4);
      v.decayCurve = rng.range(1, 1.8);
      break;
    case "laser": // fast falling zap
      v.wave = pick(rng, ["square", "saw", "sine"] as const);
      v.duty = rng.range(0.1, 0.5);
      v.dutySweep = rng.range(0, 1.5);
      v.freqHz = rng.range(700, 2200);
      v.slide = -rng.range(4, 10);
      v.slideAccel = rng.range(0, 10);
      v.sustain = rng.range(0.05, 0.15);
      v.decay = rng.range(0.05, 0.2);
      v.highPassHz = rng.uniform() < 0.5 ? rng.range(100, 400) : 0;
      break;
    case "explosion": // low rumbling noise with a long tail
      v.wave = "noise";
      v.freqHz = rng.range(40, 140);
      v.slide = -rng.range(0.3, 1.5);
      v.vibratoDepth = rng.uniform() < 0.5 ? rng.range(0.1, 0.4) : 0;
      v.vibratoHz = rng.range(8, 20);
      v.sustain = rng.range(0.08, 0.3);
      v.punch = rng.range(0.4, 0.9);
      v.decay = rng.range(0.35, 0.75);
      v.decayCurve = rng.range(1.2, 2.5);
      v.lowPassHz = rng.range(1200, 3500);
      v.lowPassSweep = -rng.range(0.5, 2);
      break;
    case "jump": // square tone sliding up
      v.wave = "square";
      v.duty = rng.range(0.25, 0.55);
      v.freqHz = rng.range(220, 480);
      v.slide = rng.range(2.5, 6);
      v.sustain = rng.range(0.05, 0.15);
      v.decay = rng.range(0.1, 0.28);
      v.highPassHz = rng.uniform() < 0.5 ? rng.range(80, 250) : 0;
      v.lowPassHz = rng.uniform() < 0.5 ? rng.range(2500, 6000) : Infinity;
      break;
    case "powerup": // rising sweeps that restart, with vibrato
      v.wave = pick(rng, ["square", "saw", "triangle"] as const);
      v.duty = rng.range(0.3, 0.6);
      v.freqHz = rng.range(250, 600);
      v.slide = rng.range(2, 5);
      v.repeat = rng.range(0.07, 0.14);
      v.vibratoDepth = rng.range(0.02, 0.08);
      v.vibratoHz = rng.range(8, 16);
      v.sustain = rng.range(0.25, 0.5);
      v.decay = rng.range(0.15, 0.4);
      break;
    case "hit": // short, harsh, falling burst
      v.wave = pick(rng, ["noise", "saw"] as const);
      v.freqHz = v.wave === "noise" ? rng.range(150, 450) : rng.range(200, 500);
      v.slide = -rng.range(3, 8);
      v.sustain = rng.range(0.01, 0.05);
      v.punch = rng.range(0.2, 0.6);
      v.decay = rng.range(0.06, 0.16);
      v.highPassHz = rng.range(200, 700);
      break;
    case "blip": // very short steady beep
      v.wave = pick(rng, ["square", "sine"] as const);
      v.duty = 0.5;
      v.freqHz = rng.range(400, 1400);
      v.sustain = rng.range(0.02, 0.06);
      v.decay = rng.range(0.02, 0.07);
      v.highPassHz = rng.range(80, 300);
      break;
  }
  return v;
}

/** The voice's natural length in seconds. */
export function voiceDuration(v: Voice): number {
  return v.attack + v.sustain + v.decay;
}

const OVERSAMPLE = 4;
/** Noise gets a new random value 16 times per oscillator cycle. */
const NOISE_STEPS = 16;
/** Filter coefficients are recomputed every this many output frames. */
const FILTER_BLOCK = 4;

/**
 * Renders a voice to `[frames]` f32 samples at `sampleRate`, peak-normalised to `v.gain`.
 * The oscillator runs at 4× the rate and is averaged down, which keeps the
 * aliasing of square and saw waves low; pitch, duty and envelope change once
 * per output frame. `rng` supplies the noise.
 */
export function renderVoice(v: Voice, sampleRate: number, rng: Random): Float32Array {
  const rate = sampleRate * OVERSAMPLE;
  const frames = Math.max(1, Math.round(voiceDuration(v) * sampleRate));
  const out = new Float32Array(frames);
  const maxHz = 0.45 * rate;
  let phase = 0;
  let noiseStep = -1;
  let noiseValue = 0;
  let low = 0, lowA = 1, highState = 0, highA = 0;
  for (let j = 0; j < frames; j++) {
    const t = j / sampleRate;
    if (j % FILTER_BLOCK === 0) {
      const lp = Math.min(v.lowPassHz * 2 ** (v.lowPassSweep * t), maxHz);
      lowA = lp >= maxHz ? 1 : 1 - Math.exp(-2 * Math.PI * Math.max(lp, 20) / rate);
      const hp = v.highPassHz * 2 ** (v.highPassSweep * t);
      highA = hp > 0 ? 1 - Math.exp(-2 * Math.PI * Math.min(hp, maxHz) / rate) : 0;
    }
    const local = v.repeat > 0 ? t % v.repeat : t;
    let hz = v.freqHz * 2 ** (v.slide * local + 0.5 * v.slideAccel * local * local);
    if (v.arpMult !== 1 && local >= v.arpTime) hz *= v.arpMult;
    if (v.vibratoDepth > 0) hz *= 1 + v.vibratoDepth * Math.sin(2 * Math.PI * v.vibratoHz * t);
    const dPhase = Math.min(Math.max(hz, 20), maxHz) / rate;
    const duty = Math.min(Math.max(v.duty + v.dutySweep * t, 0.05), 0.95);
    let sum = 0;
    for (let k = 0; k < OVERSAMPLE; k++) {
      phase += dPhase;
      if (phase >= 1) phase -= 1;
      let x: number;
      switch (v.wave) {
        case "square":
          x = phase < duty ? 1 : -1;
          break;
        case "saw":
          x = 2 * phase - 1;
          break;
        case "triangle":
          x = phase < 0.5 ? 4 * phase - 1 : 3 - 4 * phase;
          break;
        case "sine":
          x = Math.sin(2 * Math.PI * phase);
          break;
        case "noise": {
          const step = Math.floor(phase * NOISE_STEPS);
          if (step !== noiseStep) {
            noiseStep = step;
            noiseValue = rng.range(-1, 1);
          }
          x = noiseValue;
          break;
        }
      }
      low += lowA * (x - low);
      highState += highA * (low - highState);
      sum += low - highState;
    }
    out[j] = sum * envelope(v, t);
  }
  // Remove the DC offset that unequal duty cycles leave, then normalise the peak.
  let mean = 0;
  for (let i = 0; i < frames; i++) mean += out[i];
  mean /= frames;
  let peak = 0;
  for (let i = 0; i < frames; i++) {
    out[i] -= mean;
    peak = Math.max(peak, Math.abs(out[i]));
  }
  const scale = peak > 0 ? v.gain / peak : 0;
  for (let i = 0; i < frames; i++) out[i] *= scale;
  return out;
}

function envelope(v: Voice, t: number): number {
  if (t < v.attack) return t / v.attack;
  const s = t - v.attack;
  if (s < v.sustain) return 1 + v.punch * (1 - s / v.sustain);
  const d = (s - v.sustain) / v.decay;
  return d >= 1 ? 0 : (1 - d) ** v.decayCurve;
}

/** Scales a voice's times by `factor` (slides and rates by its inverse), keeping its shape. */
function stretchVoice(v: Voice, factor: number): Voice {
  return {
    ...v,
    attack: v.attack * factor,
    sustain: v.sustain * factor,
    decay: v.decay * factor,
    arpTime: v.arpTime * factor,
    repeat: v.repeat * factor,
    slide: v.slide / factor,
    slideAccel: v.slideAccel / (factor * factor),
    dutySweep: v.dutySweep / factor,
    lowPassSweep: v.lowPassSweep / factor,
    highPassSweep: v.highPassSweep / factor,
  };
}

/**
 * Synthesises clip `index` of `category`: `[frames]` f32 mono at `sampleRate`.
 * A pure function of its arguments.
 */
export function synthesizeClip(
  category: SynthCategory,
  index: number,
  seed: number,
  sampleRate: number,
  durationRange: [number, number] = [0, Infinity],
): Float32Array {
  const rng = new Random(seed, `synth/${category}/${index}`);
  let voice = drawVoice(category, rng);
  const natural = voiceDuration(voice);
  const wanted = Math.min(Math.max(natural, durationRange[0]), durationRange[1]);
  if (wanted !== natural) voice = stretchVoice(voice, wanted / natural);
  return renderVoice(voice, sampleRate, rng);
}

/** The synth job (see the module doc). */
export const job = defineJob({
  name: "synth",
  version: "1",
  description: "generate labelled game sound effects (coin, laser, explosion, …) as WAV files",
  params: SynthParams,
  inputs: () => [],
  slots: {},
  async run(ctx) {
    const p = ctx.params;
    const total = p.categories.length * p.clips_per_category;
    const digits = Math.max(3, String(p.clips_per_category - 1).length);
    ctx.progress.start(total, "clips", "synth");
    const counts: Record<string, number> = {};
    let seconds = 0;
    let done = 0;
    for (const category of p.categories) {
      const dir = join(ctx.outDir, "audio", category);
      await Deno.mkdir(dir, { recursive: true });
      for (let i = 0; i < p.clips_per_category; i++) {
        ctx.signal.throwIfAborted();
        const samples = synthesizeClip(category, i, ctx.seed, p.sample_rate, [
          p.min_duration_s,
          p.max_duration_s,
        ]);
        const name = `${category}_${String(i).padStart(digits, "0")}.wav`;
        await Deno.writeFile(join(dir, name), encodeWav([samples], p.sample_rate, { bits: 16 }));
        seconds += samples.length / p.sample_rate;
        ctx.progress.update(++done, category);
      }
      counts[category] = p.clips_per_category;
    }
    ctx.progress.finish(`${total} clips`);
    return {
      metrics: {
        clips: total,
        categories: counts,
        sample_rate: p.sample_rate,
        total_duration_s: Math.round(seconds * 1000) / 1000,
      },
    };
  },
});
