/**
 * The test helpers that run `main.ts` in a subprocess read relative command
 * line paths from the repository root, as `deno task` run there would, even
 * when the shell running the tests (`deno task test` from a subfolder) left
 * another `INIT_CWD` in the environment.
 */
import { assertEquals } from "./assert.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";

Deno.test("the e2e sandbox's CLI reads relative paths from the repository root, whatever INIT_CWD the tests inherit", async () => {
  await using dir = await tempDir();
  const helpers = new URL("./fixtures/e2e/helpers.ts", import.meta.url).href;
  // A process of its own: INIT_CWD is process-wide, and tests run in parallel.
  const script = `
    import { sandbox } from ${JSON.stringify(helpers)};
    await using box = await sandbox();
    const r = await box.cli([
      "pipeline", "tests/fixtures/experiments/pipeline.yaml",
      "--jobs-dir", "tests/fixtures/experiments/jobs",
      "--store", box.path + "/store", "--dry-run",
    ]);
    console.log(JSON.stringify(r));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", INIT_CWD: dir.path }, // a test run started in another folder
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assertEquals(out.code, 0, dec.decode(out.stderr));
  const r = JSON.parse(dec.decode(out.stdout).trim().split("\n").pop()!);
  assertEquals(r.code, 0, `the CLI under the sandbox failed:\n${r.stdout}\n${r.stderr}`);
});
