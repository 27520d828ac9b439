import { assert } from "./assert.ts";

const PROBE = new URL("./fixtures/train/memory_probe.ts", import.meta.url).pathname;

Deno.test("graph: downloading weights and optimizer state does not keep memory alive", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", PROBE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, `the probe failed:\n${text}\n${new TextDecoder().decode(out.stderr)}`);
  const { before, after, rounds, weightBytes } = JSON.parse(text.trim().split("\n").pop()!);
  // Each round downloads 3 x weightBytes; a leak of one copy per round would be
  // rounds x weightBytes. Allow a tenth of one round's worth of noise per round.
  const grown = after - before;
  assert(
    grown < rounds * weightBytes * 0.1,
    `external memory grew by ${grown} bytes over ${rounds} rounds of downloads ` +
      `(weights are ${weightBytes} bytes): downloaded buffers are being kept alive`,
  );
});
