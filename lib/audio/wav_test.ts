import { assert, assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { decodeWav, encodeWav, parseWavHeader, type WavFormat } from "./wav.ts";

/** Samples that are exact integer codes at `bits`, covering both extremes and zero. */
function exactSamples(frames: number, bits: number, phase: number): Float32Array {
  const scale = 2 ** (Math.min(bits, 24) - 1); // float32 holds 24-bit codes exactly
  const out = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    const code = Math.round(Math.sin(i * 0.37 + phase) * (scale - 1));
    out[i] = code / scale + 0; // + 0 turns -0 into 0
  }
  out[0] = -1;
  out[1] = (scale - 1) / scale;
  out[2] = 0;
  return out;
}

const FORMATS: WavFormat[] = [
  { bits: 8 },
  { bits: 16 },
  { bits: 24 },
  { bits: 32 },
  { bits: 32, float: true },
];

for (const format of FORMATS) {
  for (const nCh of [1, 2, 3, 6]) {
    const label = `${format.bits}-bit${format.float ? " float" : ""}, ${nCh} channel(s)`;
    Deno.test(`WAV ${label} round-trips exactly`, () => {
      const frames = 101; // odd, so 8-bit mono data needs a pad byte
      const channels = Array.from({ length: nCh }, (_, c) => exactSamples(frames, format.bits, c));
      const bytes = encodeWav(channels, 22050, format);
      const back = decodeWav(bytes);
      assertEquals(back.sampleRate, 22050);
      assertEquals(back.bits, format.bits);
      assertEquals(back.float, format.float === true);
      assertEquals(back.channels.length, nCh);
      for (let c = 0; c < nCh; c++) {
        assertEquals(Array.from(back.channels[c]), Array.from(channels[c]), `channel ${c}`);
      }
    });
  }
}

Deno.test("WAV extensible header is written for > 2 channels or > 16 bits and read back", () => {
  const ch = [exactSamples(10, 16, 0)];
  assertEquals(parseWavHeader(encodeWav(ch, 8000, { bits: 16 })).extensible, false);
  assertEquals(parseWavHeader(encodeWav(ch, 8000, { bits: 24 })).extensible, true);
  const forced = encodeWav(ch, 8000, { bits: 16, extensible: true });
  assertEquals(parseWavHeader(forced).extensible, true);
  assertEquals(Array.from(decodeWav(forced).channels[0]), Array.from(ch[0]));
});

Deno.test("WAV encoding clips out-of-range samples and maps NaN to 0", () => {
  const bytes = encodeWav([new Float32Array([1.5, -2, NaN, 1])], 8000, { bits: 16 });
  assertEquals(Array.from(decodeWav(bytes).channels[0]), [32767 / 32768, -1, 0, 32767 / 32768]);
});

Deno.test("WAV 16-bit mono file has the canonical 44-byte header", () => {
  const bytes = encodeWav([new Float32Array(4)], 16000, { bits: 16 });
  assertEquals(bytes.length, 44 + 8);
  const text = new TextDecoder().decode(bytes.subarray(0, 16));
  assertEquals(text, "RIFF\x2c\x00\x00\x00WAVEfmt ");
});

Deno.test("WAV decoding skips unknown chunks (LIST before data)", () => {
  const plain = encodeWav([exactSamples(20, 16, 1)], 8000, { bits: 16 });
  // Insert a 5-byte LIST chunk (odd: one pad byte) between fmt and data.
  const list = new Uint8Array([0x4c, 0x49, 0x53, 0x54, 5, 0, 0, 0, 1, 2, 3, 4, 5, 0]);
  const bytes = new Uint8Array(plain.length + list.length);
  bytes.set(plain.subarray(0, 36));
  bytes.set(list, 36);
  bytes.set(plain.subarray(36), 36 + list.length);
  assertEquals(Array.from(decodeWav(bytes).channels[0]), Array.from(exactSamples(20, 16, 1)));
});

function expectUserError(fn: () => unknown, part: string): UserError {
  const e = assertThrows(fn, part);
  assert(e instanceof UserError, `expected a UserError, got ${e.name}`);
  return e;
}

Deno.test("WAV shorter than a RIFF header is a truncation error naming the file", () => {
  const e = expectUserError(() => decodeWav(new Uint8Array(7), "a/b.wav"), "truncated WAV");
  assertEquals(e.location.file, "a/b.wav");
  assertStringIncludes(e.message, "7 bytes");
});

Deno.test("WAV with a data chunk cut short is a truncation error", () => {
  const bytes = encodeWav([exactSamples(100, 16, 0)], 8000, { bits: 16 });
  const e = expectUserError(() => decodeWav(bytes.subarray(0, 100), "cut.wav"), "truncated WAV");
  assertStringIncludes(e.message, "declares 200 bytes but only 56 follow");
});

Deno.test("WAV without RIFF/WAVE signature is rejected as not a WAV file", () => {
  const text = new TextEncoder().encode("hello, this is not a wav file at all");
  expectUserError(() => decodeWav(text, "x.wav"), "not a WAV file");
});

Deno.test("WAV with a corrupt block align is rejected", () => {
  const bytes = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  new DataView(bytes.buffer).setUint16(32, 3, true);
  expectUserError(() => decodeWav(bytes), "block align 3");
});

Deno.test("WAV with 0 channels or 0 Hz is rejected", () => {
  const a = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  new DataView(a.buffer).setUint16(22, 0, true);
  expectUserError(() => decodeWav(a), "0 channels");
  const b = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  new DataView(b.buffer).setUint32(24, 0, true);
  expectUserError(() => decodeWav(b), "sample rate of 0");
});

Deno.test("WAV with no data chunk, or data before fmt, is rejected", () => {
  const bytes = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  expectUserError(() => decodeWav(bytes.subarray(0, 36)), "no data chunk");
  const swapped = bytes.slice();
  swapped.set(new TextEncoder().encode("data"), 12);
  expectUserError(() => decodeWav(swapped), "data chunk comes before the fmt chunk");
});

Deno.test("WAV with a chunk running past the end before any data is a truncation error", () => {
  const bytes = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  bytes.set(new TextEncoder().encode("LIST"), 36); // the data chunk's header, renamed
  expectUserError(() => decodeWav(bytes), "no data chunk");
  bytes.set(new Uint8Array([0xff, 0xff, 0, 0]), 40);
  expectUserError(() => decodeWav(bytes), 'the "LIST" chunk at byte 36 declares 65535 bytes');
});

Deno.test("WAV in a compressed encoding is unsupported with the tag named", () => {
  const bytes = encodeWav([exactSamples(10, 16, 0)], 8000, { bits: 16 });
  new DataView(bytes.buffer).setUint16(20, 6, true); // A-law; 16 bits keeps the layout valid
  const e = expectUserError(() => decodeWav(bytes), "unsupported WAV encoding 0x0006 (A-law)");
  assertStringIncludes(e.expected ?? "", "PCM");
});

Deno.test("WAV streaming placeholder size 0xFFFFFFFF reads to the end of the file", () => {
  const samples = exactSamples(30, 16, 2);
  const bytes = encodeWav([samples], 8000, { bits: 16 });
  new DataView(bytes.buffer).setUint32(40, 0xffffffff, true);
  assertEquals(Array.from(decodeWav(bytes).channels[0]), Array.from(samples));
});

const FIXTURES = new URL("../../tests/fixtures/audio/", import.meta.url);

for (
  const [name, bits, float, nCh] of [
    ["tone440_u8.wav", 8, false, 1],
    ["tone440_s24.wav", 24, false, 1],
    ["tone440_s32.wav", 32, false, 1],
    ["tone440_f32.wav", 32, true, 1],
    ["tone440_3ch_s16.wav", 16, false, 3],
  ] as const
) {
  Deno.test(`WAV written by sox (${name}) decodes to a 0.5-amplitude 440 Hz tone`, async () => {
    const wav = decodeWav(await Deno.readFile(new URL(name, FIXTURES)), name);
    assertEquals([wav.sampleRate, wav.bits, wav.float, wav.channels.length], [
      8000,
      bits,
      float,
      nCh,
    ]);
    for (const ch of wav.channels) {
      assertEquals(ch.length, 400);
      const peak = ch.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assert(Math.abs(peak - 0.5) < 0.01, `peak ${peak}, expected about 0.5`);
      // Past the 10 ms fades, 440 Hz over 200 samples (0.025 s) is 11 cycles, 22 sign changes.
      let crossings = 0;
      for (let i = 101; i < 300; i++) if ((ch[i - 1] < 0) !== (ch[i] < 0)) crossings++;
      assert(Math.abs(crossings - 22) <= 1, `${crossings} zero crossings, expected about 22`);
    }
  });
}
