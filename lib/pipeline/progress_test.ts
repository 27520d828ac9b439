import { assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import { formatDuration, ProgressRenderer } from "./progress.ts";

function fakeOutput(tty: boolean) {
  const lines: string[] = [];
  return {
    out: { err: (t: string) => lines.push(t), out: (t: string) => lines.push(t), tty },
    lines,
  };
}

Deno.test("plain progress prints 0 %, then at most every 5 s, then 100 %", () => {
  let now = 0;
  const { out, lines } = fakeOutput(false);
  const r = new ProgressRenderer(out, () => now);
  const ui = r.begin("train");
  ui.progress.start(100, "steps");
  for (let i = 1; i <= 100; i++) {
    now += 200; // 20 s in all
    ui.progress.update(i, `loss ${i}`);
  }
  ui.progress.finish("done");
  ui.end();
  r.close();
  assertEquals(lines.length, 1 + 4 + 1, lines.join(""));
  assertStringIncludes(lines[0], "0/100 steps  0%");
  assertStringIncludes(lines[1], "25/100 steps  25%");
  assertStringIncludes(lines[1], "ETA 15.0s");
  assertStringIncludes(lines[5], "100/100 steps  100%");
  assertStringIncludes(lines[5], "done");
});

Deno.test("TTY progress redraws a bar line in place", () => {
  let now = 0;
  const { out, lines } = fakeOutput(true);
  const r = new ProgressRenderer(out, () => now);
  const ui = r.begin("scan");
  ui.progress.start(10, "files");
  now += 1000;
  ui.progress.update(5);
  r.close();
  ui.end();
  const text = lines.join("");
  assertStringIncludes(
    text,
    "scan  [############............]  5/10 files  50%  5.00 files/s  ETA 1.0s",
  );
  assertStringIncludes(text, "\x1b[1A", "moves the cursor up to redraw");
});

Deno.test("formatDuration shows tenths under a minute, then whole seconds, then whole minutes", () => {
  const cases: [number, string][] = [
    [0, "0.0s"],
    [3.21, "3.2s"],
    [59.94, "59.9s"],
    [59.96, "1m00s"], // rounds to 60.0 s: a minute, not "60.0s"
    [60, "1m00s"],
    [119.4, "1m59s"],
    [119.6, "2m00s"], // not "1m60s"
    [125, "2m05s"],
    [3599.4, "59m59s"],
    [3599.5, "1h00m"], // not "60m00s"
    [3720, "1h02m"],
    [7199.9, "2h00m"], // not "1h60m"
    [Infinity, "?"],
    [NaN, "?"],
  ];
  for (const [seconds, text] of cases) {
    assertEquals(formatDuration(seconds), text, `formatDuration(${seconds})`);
  }
});
