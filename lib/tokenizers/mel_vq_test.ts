import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { logMelSpectrogram, type MelSettings } from "../audio/mel.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import { MelVqTokenizer } from "./mel_vq.ts";

const S: MelSettings = {
  sample_rate: 8000,
  n_fft: 128,
  win_length: 100,
  hop_length: 40,
  n_mels: 12,
  f_min: 0,
  f_max: 4000,
};

function noise(n: number, seed: number): Float32Array {
  const r = new Random(seed, "mel-vq-test");
  return Float32Array.from({ length: n }, (_, i) => r.normal(0, 0.1) * (1 + Math.sin(i / 50)));
}

Deno.test("MelVqTokenizer.encode maps each frame to itself when the codebook is the signal's frames", () => {
  const x = noise(1000, 1);
  const mel = logMelSpectrogram(x, S);
  const tok = new MelVqTokenizer(S, mel.data);
  assertEquals(Array.from(tok.encode(x)), Array.from({ length: mel.frames }, (_, i) => i));
});

Deno.test("MelVqTokenizer.decode gives codes × hop samples", () => {
  const x = noise(600, 2);
  const tok = new MelVqTokenizer(S, logMelSpectrogram(x, S).data);
  assertEquals(tok.decode(Uint32Array.from([0, 3, 3, 1]), { iterations: 2 }).length, 4 * 40);
});

Deno.test("MelVqTokenizer rejects a codebook that is not [K, n_mels]", () => {
  const e = assertThrows(() => new MelVqTokenizer(S, new Float32Array(13)));
  assertEquals((e as UserError).location.field, "codebook");
});
