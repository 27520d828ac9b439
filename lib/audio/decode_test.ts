import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "../../tests/assert.ts";
import {
  AudioDecodeError,
  decodeAudioBytes,
  decodeAudioFile,
  detectAudioFormat,
} from "./decode.ts";
import { encodeWav } from "./wav.ts";

const FIXTURES = new URL("../../tests/fixtures/audio/", import.meta.url);
const fixture = (name: string) => new URL(name, FIXTURES).pathname;

/**
 * The pitch from sign changes over the middle half of the signal, and its resolution
 * (one sign change more or less), in Hz.
 */
function pitchByCrossings(x: Float32Array, sampleRate: number): { hz: number; step: number } {
  const from = Math.floor(x.length / 4), to = Math.floor((3 * x.length) / 4);
  let n = 0;
  for (let i = from + 1; i < to; i++) if ((x[i - 1] < 0) !== (x[i] < 0)) n++;
  const seconds = (to - from) / sampleRate;
  return { hz: n / seconds / 2, step: 1 / seconds / 2 };
}

for (
  const [name, format, rate, nCh, seconds, slack] of [
    ["tone440_mono_8k.flac", "flac", 8000, 1, 0.3, 0],
    ["tone440_stereo_16k.flac", "flac", 16000, 2, 0.2, 0],
    ["tone440_mono_16k.ogg", "ogg", 16000, 1, 0.5, 0],
    // MP3 frames hold 576 samples at 16 kHz; the decoder keeps the encoder's padding.
    ["tone440_mono_16k.mp3", "mp3", 16000, 1, 0.5, 0.1],
    ["tone440_s24.wav", "wav", 8000, 1, 0.05, 0],
    // A-law is not PCM: it goes through audio-decode.
    ["tone440_alaw.wav", "wav", 8000, 1, 0.05, 0],
  ] as const
) {
  Deno.test(`decodeAudioFile reads ${name} as a ${seconds} s 440 Hz ${format} tone`, async () => {
    const audio = await decodeAudioFile(fixture(name));
    assertEquals(audio.format, format);
    assertEquals(audio.sampleRate, rate);
    assertEquals(audio.channels.length, nCh);
    assert(
      audio.durationS >= seconds - 1e-9 && audio.durationS <= seconds + slack + 1e-9,
      `duration ${audio.durationS} s, expected ${seconds} s (+${slack})`,
    );
    assertAlmostEquals(audio.durationS, audio.channels[0].length / rate, 1e-12);
    for (const ch of audio.channels) {
      const peak = ch.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assert(peak > 0.4 && peak < 0.6, `peak ${peak}, expected about 0.5`);
      const { hz, step } = pitchByCrossings(ch, rate);
      assert(Math.abs(hz - 440) <= 5 + step, `pitch ${hz} Hz, expected 440 ± ${5 + step} Hz`);
    }
  });
}

Deno.test("format detection uses magic bytes, not the extension", async () => {
  const flac = await Deno.readFile(fixture("tone440_mono_8k.flac"));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/really_flac.wav`, flac);
    assertEquals((await decodeAudioFile(`${dir}/really_flac.wav`)).format, "flac");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("detectAudioFormat recognises each signature and nothing else", () => {
  const bytes = (text: string, ...tail: number[]) =>
    new Uint8Array([...new TextEncoder().encode(text), ...tail]);
  assertEquals(detectAudioFormat(bytes("RIFF\0\0\0\0WAVE")), "wav");
  assertEquals(detectAudioFormat(bytes("RIFF\0\0\0\0AVI ")), null);
  assertEquals(detectAudioFormat(bytes("fLaC")), "flac");
  assertEquals(detectAudioFormat(bytes("OggS")), "ogg");
  assertEquals(detectAudioFormat(bytes("ID3\x04\0\0\0\0\0\0")), "mp3");
  assertEquals(detectAudioFormat(bytes("ID3\x04\0\0\0\0\0\x02", 0, 0, ...bytes("fLaC"))), "flac");
  assertEquals(detectAudioFormat(new Uint8Array([0xff, 0xfb, 0x90, 0x00])), "mp3");
  // AAC ADTS shares the sync word but has layer 00.
  assertEquals(detectAudioFormat(new Uint8Array([0xff, 0xf1, 0x50, 0x80])), null);
  assertEquals(detectAudioFormat(bytes("hello")), null);
});

Deno.test("a text file is rejected as not-audio with the file and expected formats named", async () => {
  const e = await assertRejects(
    () => decodeAudioBytes(new TextEncoder().encode("just some notes\n"), "notes.wav"),
    "not a recognised audio file",
  );
  assert(e instanceof AudioDecodeError);
  assertEquals(e.failure, "not-audio");
  assertEquals(e.location.file, "notes.wav");
  assertStringIncludes(e.expected ?? "", "FLAC");
  assertStringIncludes(e.found ?? "", "just som");
});

Deno.test("an empty file is rejected as empty", async () => {
  const e = await assertRejects(() => decodeAudioBytes(new Uint8Array(0), "e.wav"), "empty file");
  assert(e instanceof AudioDecodeError && e.failure === "empty");
});

Deno.test("a truncated WAV is rejected as cannot-decode with the byte counts", async () => {
  const wav = encodeWav([new Float32Array(1000)], 8000, { bits: 16 });
  const e = await assertRejects(() => decodeAudioBytes(wav.subarray(0, 500), "t.wav"), "truncated");
  assert(e instanceof AudioDecodeError && e.failure === "cannot-decode");
  assertEquals(e.location.file, "t.wav");
});

Deno.test("a FLAC file cut to its signature is rejected as cannot-decode", async () => {
  const flac = await Deno.readFile(fixture("tone440_mono_8k.flac"));
  const e = await assertRejects(() => decodeAudioBytes(flac.subarray(0, 20), "cut.flac"));
  assert(e instanceof AudioDecodeError, `expected AudioDecodeError, got ${e.name}: ${e.message}`);
  assertEquals(e.location.file, "cut.flac");
});

Deno.test("an Ogg stream that is not Vorbis is rejected as unsupported", async () => {
  const ogg = await Deno.readFile(fixture("tone440_mono_16k.ogg"));
  const opus = ogg.slice();
  opus.set(new TextEncoder().encode("OpusHead"), 27 + opus[26]);
  const e = await assertRejects(() => decodeAudioBytes(opus, "o.ogg"), "unsupported Ogg stream");
  assert(e instanceof AudioDecodeError && e.failure === "unsupported");
});

Deno.test("a missing file is a UserError naming it", async () => {
  const e = await assertRejects(() => decodeAudioFile("/nonexistent/x.wav"), "cannot read");
  assertEquals((e as AudioDecodeError).location.file, "/nonexistent/x.wav");
});

Deno.test("our WAV reader agrees with audio-decode on every sox-written WAV fixture", async () => {
  const { default: libraryDecode } = await import("audio-decode");
  for (const name of ["tone440_u8.wav", "tone440_s24.wav", "tone440_s32.wav", "tone440_f32.wav"]) {
    const bytes = await Deno.readFile(fixture(name));
    const ours = await decodeAudioBytes(bytes, name);
    const theirs = await libraryDecode(bytes);
    assertEquals(ours.channels.length, theirs.channelData.length, name);
    let worst = 0;
    ours.channels[0].forEach((x, i) =>
      worst = Math.max(worst, Math.abs(x - theirs.channelData[0][i]))
    );
    // The library scales positive integer codes by 1/(2^(bits-1) - 1), we by 1/2^(bits-1).
    assert(worst < 0.005, `${name}: max difference ${worst}, expected < 0.005`);
  }
});
