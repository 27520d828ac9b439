/**
 * Usage errors and help of the commands (README "Exit codes": 1 bad input,
 * 2 a bug with a stack trace): a malformed command line exits 1 with
 * commander's one-line message, `--help` exits 0 with the help on stdout.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { main as modelMain } from "../lib/cli/model.ts";
import { main as tokensMain } from "../lib/cli/tokens.ts";
import { main as runsMain } from "../lib/cli/runs.ts";
import { main as showMain } from "../lib/cli/show.ts";
import { hasStackTrace, runCli, shown } from "./cli_fixture.ts";

Deno.test("usage errors of the commander-based commands exit 1, not 2 (the bug code)", async () => {
  const cases: [string, () => Promise<number>][] = [
    ["model (no sub-command: help on stderr)", () => modelMain([])],
    ["model bogus", () => modelMain(["bogus"])],
    ["model info (missing argument)", () => modelMain(["info"])],
    ["model loss --weights x (missing --batch)", () => modelMain(["loss", "--weights", "x"])],
    ["tokens", () => tokensMain([])],
    ["tokens encode --bogus", () => tokensMain(["encode", "--bogus"])],
    ["runs --bogus", () => runsMain(["--bogus"])],
    ["show (missing run)", () => showMain([])],
  ];
  for (const [name, run] of cases) assertEquals(await run(), 1, name);
  assertEquals(await modelMain(["--help"]), 0, "model --help");
  assertEquals(await tokensMain(["encode", "--help"]), 0, "tokens encode --help");
});

Deno.test("eval, generate and classify print --help on stdout and exit 0", async () => {
  for (const command of ["eval", "generate", "classify"]) {
    const r = await runCli([command, "--help"]);
    assertEquals(r.code, 0, shown(r));
    assertStringIncludes(r.stdout, `Usage: ${command}`, shown(r));
    assertStringIncludes(r.stdout, "--model <name>", shown(r));
    assertEquals(r.stderr, "", `${command} --help writes nothing on stderr`);
  }
});

Deno.test("main.ts model with a missing argument exits 1 with commander's message, no stack", async () => {
  const r = await runCli(["model", "info"]);
  assertEquals(r.code, 1, shown(r));
  assertStringIncludes(r.stderr, "missing required argument 'weights'");
  assert(!hasStackTrace(r), shown(r));
});
