import { assert, assertEquals } from "./assert.ts";
import { requestGpu } from "../lib/gpu/device.ts";

// The benchmarks run alone (`deno run -A bench/X.ts`, the README's profile
// command among them): a mistyped or malformed option is refused before
// anything runs, instead of being ignored by a benchmark that then takes
// minutes.
const bench = (name: string) => new URL(`../bench/${name}.ts`, import.meta.url).pathname;

async function run(
  args: string[],
  script = bench("train"),
): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stderr: text(out.stderr), stdout: text(out.stdout) };
}

Deno.test("bench/train.ts: --help lists the options and runs nothing", async () => {
  const r = await run(["--help"]);
  assertEquals(r.code, 0);
  for (const option of ["--steps", "--large", "--profile", "--no-pytorch", "--json"]) {
    assert(r.stdout.includes(option), `--help does not list ${option}:\n${r.stdout}`);
  }
  assert(!r.stdout.includes("tokens/s"), "--help ran the benchmark");
});

Deno.test("bench/train.ts: an unknown option or a bad step count is refused, naming it", async () => {
  const unknown = await run(["--stepz", "3"]);
  assertEquals(unknown.code, 1);
  assert(unknown.stderr.includes("unknown option '--stepz'"), unknown.stderr);
  const zero = await run(["--steps", "0"]);
  assertEquals(zero.code, 1);
  assert(zero.stderr.includes('--steps takes a positive integer, not "0"'), zero.stderr);
  const profile = await run(["--profile=two"]);
  assertEquals(profile.code, 1);
  assert(profile.stderr.includes('--profile takes a positive integer, not "two"'), profile.stderr);
});

Deno.test("bench/noop.ts and bench/tokenize.ts: bad counts are refused, naming the option", async () => {
  const runs = await run(["--runs", "-1"], bench("noop"));
  assertEquals(runs.code, 1);
  assert(runs.stderr.includes('--runs takes a positive integer, not "-1"'), runs.stderr);
  const seconds = await run(["--seconds", "abc"], bench("tokenize"));
  assertEquals(seconds.code, 1);
  assert(seconds.stderr.includes('--seconds takes a positive number, not "abc"'), seconds.stderr);
  const help = await run(["--help"], bench("noop"));
  assertEquals(help.code, 0);
  assert(help.stdout.includes("--set"), help.stdout);
});

Deno.test("bench tokenize runs: its synthetic scan output is one the tokenize job accepts", async () => {
  // It broke unnoticed once, when the scan output gained each file's split.
  const { benchTokenize } = await import("../bench/tokenize.ts");
  const result = await benchTokenize(5, 1);
  assert(result.seconds_audio >= 5, `seconds of audio: ${result.seconds_audio}`);
  assert(result.seconds_audio_per_second > 0, JSON.stringify(result));
});

// On a software adapter (CI's) `bench gpu` must refuse before it runs anything: its figures would
// pass for a GPU's. On a real GPU it would run for minutes, so the test runs only on software.
const software = (await requestGpu()).isFallback;

Deno.test({
  name: "bench gpu refuses a software adapter, saying what to check and how to go on",
  ignore: !software,
  fn: async () => {
    const r = await run(["gpu"], bench("main"));
    assertEquals(r.code, 1, r.stderr);
    for (
      const expected of ["software fallback, not a GPU", "VK_DRIVER_FILES", "--allow-software"]
    ) {
      assert(r.stderr.includes(expected), `no "${expected}" in:\n${r.stderr}`);
    }
    assert(!r.stderr.includes("tokens/s"), `it ran the benchmark:\n${r.stderr}`);
  },
});

Deno.test("bench --json: the benchmarks' lines go to stderr, and console.log comes back", async () => {
  const { linesToStderr } = await import("../bench/common.ts");
  const log = console.log;
  const error = console.error;
  const seen: string[] = [];
  console.error = (...a: unknown[]) => seen.push(`stderr ${a.join(" ")}`);
  try {
    const r = await linesToStderr(true, () => {
      console.log("a benchmark's line");
      return Promise.resolve(7);
    });
    assertEquals(r, 7);
    assertEquals(seen, ["stderr a benchmark's line"]);
    assert(console.log === log, "console.log was not restored");
    // Restored when the benchmark throws, too.
    let thrown = false;
    try {
      await linesToStderr(true, () => Promise.reject(new Error("boom")));
    } catch {
      thrown = true;
    }
    assert(thrown && console.log === log, "console.log was not restored after a throw");
    // Without --json nothing is redirected.
    await linesToStderr(false, () => {
      assert(console.log === log, "console.log was redirected without --json");
      return Promise.resolve();
    });
  } finally {
    console.log = log;
    console.error = error;
  }
});

Deno.test("bench/train.ts: --batch and --seq set the batch's shape; out-of-range values are refused", async () => {
  const long = await run(["--seq", "1024"]);
  assertEquals(long.code, 1);
  assert(long.stderr.includes('--seq takes an integer from 1 to 1023, not "1024"'), long.stderr);
  const zero = await run(["--batch", "0"]);
  assertEquals(zero.code, 1);
  assert(zero.stderr.includes('--batch takes a positive integer, not "0"'), zero.stderr);
  const small = await run([
    "--batch=2",
    "--seq=16",
    "--steps=1",
    "--no-tune",
    "--no-pytorch",
    "--no-bound",
    "--json",
  ]);
  assertEquals(small.code, 0, small.stderr);
  const result = JSON.parse(small.stdout);
  assertEquals([result.config.batch, result.config.seq], [2, 16]);
  assertEquals(result.config.hidden, 128, "the rest of the bench configuration stays");
  assert(result.tokens_per_s > 0, small.stdout);
});
