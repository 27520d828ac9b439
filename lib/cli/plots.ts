/**
 * `main.ts plots A B [C …]`: the learning curves of several runs overlaid on
 * one self-contained HTML page, and a PNG of it (headless Chromium).
 *
 * ```
 * deno task plots latest~1 latest [--out DIR] [--store DIR]
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { newProgram, runProgram } from "./commander.ts";
import { existingStoreDir, runArgument } from "./resolve.ts";
import { fromCaller } from "./caller.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { renderPlotsPage, type RunCurves, runCurvesOf, screenshot } from "../experiments/plots.ts";

/** Runs `plots`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const program = newProgram("plots", "Overlay the learning curves of several runs (HTML + PNG).")
    .argument("<runs...>", "latest, latest~N, a run id (or prefix), a --name, or a record file")
    .option("--out <dir>", "folder for plots.html and plots.png", "plots")
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .action(async (names, o) => {
      const storeDir = existingStoreDir(o.store);
      const runs: RunCurves[] = [];
      for (const name of names) {
        runs.push(await runCurvesOf(runArgument(name), storeDir, runs.map((r) => r.label)));
      }
      const dir = fromCaller(o.out);
      await Deno.mkdir(dir, { recursive: true });
      const html = join(dir, "plots.html");
      const png = join(dir, "plots.png");
      await Deno.writeTextFile(html, renderPlotsPage(runs));
      out.err(`page  ${displayPath(html)}\n`);
      if (await screenshot(html, png)) out.err(`png   ${displayPath(png)}\n`);
      else out.err(`png   skipped: no Chromium at /usr/bin/chromium\n`);
    });
  return await runProgram(program, args);
}
