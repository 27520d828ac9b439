/**
 * Numeric options are read strictly: `Number("")` is 0, so a blank
 * `--temperature ''` was greedy decoding and `gc --keep-last ''` kept no run.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { decimalNumber } from "../lib/cli/commander.ts";
import { hasStackTrace, runCli, shown } from "./cli_fixture.ts";

Deno.test("decimalNumber reads decimal numbers and nothing else", () => {
  for (const [text, want] of [["0", 0], ["12", 12], ["-0.5", -0.5], ["1e-3", 1e-3], [".5", 0.5]]) {
    assertEquals(decimalNumber(text as string), want, JSON.stringify(text));
  }
  for (const text of ["", " ", " 1", "1 ", "0x10", "Infinity", "1,5", "abc", "1e", "--1"]) {
    assert(Number.isNaN(decimalNumber(text)), `${JSON.stringify(text)} is not a number`);
  }
});

Deno.test("blank or non-decimal numeric options exit 1 naming the option", async () => {
  const cases: [string[], string][] = [
    [["generate", "--model", "latest", "--temperature", ""], "field --temperature"],
    [["generate", "--model", "latest", "--seed", " "], "field --seed"],
    [["generate", "--model", "latest", "--count", "0x2"], "field --count"],
    [
      ["tokens", "to-audio", "--tokenizer", "x", "--out", "y.wav", "--tokens", "1", "--seed", ""],
      "--seed must be a non-negative integer",
    ],
    [
      [
        "tokens",
        "to-audio",
        "--tokenizer",
        "x",
        "--out",
        "y.wav",
        "--tokens",
        "1",
        "--iterations",
        " ",
      ],
      "--iterations must be a non-negative integer",
    ],
    [["model", "loss", "--weights", "w", "--batch", "b", "--heads", "0x2"], "field --heads"],
    [["gc", "--dry-run", "--keep-last", "", "--store", "/nonexistent"], "field --keep-last"],
    [["runs", "--limit", "abc", "--store", "/nonexistent"], "field --limit"],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    const what = `${args.join(" ")}: ${shown(r)}`;
    assertEquals(r.code, 1, what);
    assertStringIncludes(r.stderr, message, what);
    assert(!hasStackTrace(r), what);
  }
});
