/**
 * `plots A B`: two fixture runs' learning curves on one HTML page (both names,
 * three charts) and, when Debian's Chromium is installed, a PNG of it.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { runExperiment } from "./fixtures/experiments_run.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { CHROMIUM } from "../lib/experiments/plots.ts";

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);

Deno.test("plots of two runs: one HTML page with both names and three charts, and a PNG", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  await runExperiment(store, [], "slow-lr");
  await runExperiment(store, ["train.lr=0.002", "train.steps=8"], "fast-lr");
  const outDir = join(dir.path, "plots");
  const r = await cli(["plots", "slow-lr", "latest", "--store", store, "--out", outDir]);
  assertEquals(r.code, 0, r.err);
  const html = await Deno.readTextFile(join(outDir, "plots.html"));
  for (const words of ["slow-lr", "fast-lr", 'data-chart="train_loss"', 'data-chart="val_loss"']) {
    assertStringIncludes(html, words);
  }
  assertStringIncludes(html, 'data-chart="val_token_accuracy"');
  assert(!/<script src=|<link /.test(html), "self-contained");
  if (hasChromium) {
    const png = await Deno.readFile(join(outDir, "plots.png"));
    assert(png.length > 1000, `png of ${png.length} bytes`);
    assertEquals([...png.slice(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  } else {
    assertStringIncludes(r.err, "skipped");
  }
  const missing = await cli(["plots", "slow-lr", "nosuch", "--store", store, "--out", outDir]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.err, 'no run named "nosuch"');
});
