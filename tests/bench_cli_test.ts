import { assert, assertEquals } from "./assert.ts";

// `deno run -A bench/train.ts` alone (the README's profile command): a
// mistyped or malformed option is refused before anything runs, instead of
// being ignored by a benchmark that then takes minutes.
const script = new URL("../bench/train.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
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
