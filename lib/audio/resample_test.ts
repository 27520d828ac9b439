import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { resample, resampledLength, toMono } from "./resample.ts";

function sine(hz: number, rate: number, frames: number): Float32Array {
  return Float32Array.from(
    { length: frames },
    (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / rate),
  );
}

Deno.test("toMono averages channels sample by sample", () => {
  const mono = toMono([new Float32Array([1, 0, -1]), new Float32Array([0, 0.5, -1])]);
  assertEquals(Array.from(mono), [0.5, 0.25, -1]);
});

Deno.test("toMono returns a single channel as it is and rejects ragged channels", () => {
  const one = new Float32Array([0.1, 0.2]);
  assert(toMono([one]) === one, "expected the same array back for one channel");
  assertThrows(() => toMono([new Float32Array(2), new Float32Array(3)]), "different lengths");
});

Deno.test("resample is the identity when the rates match", async () => {
  const x = sine(440, 16000, 100);
  assert((await resample(x, 16000, 16000)) === x, "expected the input array back");
});

Deno.test("resample 44.1 kHz → 16 kHz keeps a 440 Hz tone and gives the rounded length", async () => {
  const x = sine(440, 44100, 44100 / 10);
  const y = await resample(x, 44100, 16000);
  assertEquals(y.length, resampledLength(x.length, 44100, 16000));
  assertEquals(y.length, 1600);
  // Compare the middle (away from the filter's edge effects) with the ideal 16 kHz sine.
  const ideal = sine(440, 16000, 1600);
  let worst = 0;
  for (let i = 200; i < 1400; i++) worst = Math.max(worst, Math.abs(y[i] - ideal[i]));
  assert(worst < 0.01, `max deviation ${worst} from the ideal 16 kHz sine, expected < 0.01`);
});

Deno.test("resample removes content above the new Nyquist frequency", async () => {
  const x = sine(7000, 32000, 3200); // above 4 kHz, the Nyquist frequency of 8 kHz
  const y = await resample(x, 32000, 8000);
  let rms = 0;
  for (let i = 100; i < y.length - 100; i++) rms += y[i] * y[i];
  rms = Math.sqrt(rms / (y.length - 200));
  assert(rms < 0.01, `rms ${rms} left of a 7 kHz tone at 8 kHz, expected < 0.01`);
});

Deno.test("resample is deterministic: same input, same output bits", async () => {
  const x = sine(1234, 22050, 5000);
  const a = await resample(x, 22050, 16000);
  const b = await resample(x, 22050, 16000);
  assertEquals(new Uint8Array(a.buffer), new Uint8Array(b.buffer));
});

Deno.test("resample rejects non-integer or out-of-range rates", async () => {
  let message = "";
  await resample(new Float32Array(4), 0, 16000).catch((e) => message = e.message);
  assert(message.includes("fromRate 0"), `expected a fromRate error, got "${message}"`);
});
