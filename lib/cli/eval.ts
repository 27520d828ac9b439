/**
 * `main.ts eval`: the evaluate job's figures for any trained model, outside
 * a pipeline, as a table beside the baselines (or JSON).
 *
 * ```
 * deno task eval --model latest [--split test|val] [--store DIR] [--json]
 * ```
 *
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { consoleOutput } from "../pipeline/progress.ts";
import { modelCommand, parseCommandLine, resolveModel } from "./resolve.ts";
import { UserError } from "../errors/mod.ts";

/** Runs `eval`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const say = (text: string) => out.out(text + "\n");
  const program = modelCommand(
    "eval",
    "Evaluate a trained model on held-out data beside n-gram and trivial baselines.",
    (text) => out.err(text),
  )
    .addOption(
      new Option("--split <split>", "split to report").choices(["test", "val"]).default("test"),
    )
    .option("--json", "every figure as JSON on stdout");
  const early = parseCommandLine(program, args);
  if (early !== null) return early;
  const o = program.opts();
  const model = await resolveModel(o.model, o.store);
  if (!model.dataDir) {
    throw new UserError("eval needs the data the model was trained on", {
      field: "--model",
      found: `${model.via} (an export bundle)`,
      expected: "a train artifact, run or key in a store that holds its bucket artifact",
    });
  }
  const { evaluateModel } = await import("../evaluate/mod.ts");
  const { evaluationMetrics, headlineLines } = await import("../evaluate/summary.ts");
  const { metricRows } = await import("../evaluate/report_data.ts");
  const { formatMetric } = await import("../report/mod.ts");
  const split = o.split as "test" | "val";
  const evaluation = await evaluateModel({
    modelDir: model.modelDir,
    dataDir: model.dataDir,
    splits: [split],
  });
  const metrics = evaluationMetrics(evaluation);
  if (o.json) {
    say(JSON.stringify({ model: model.key, via: model.via, ...metrics }, null, 1));
    return 0;
  }
  say(`model ${model.key.slice(0, 12)} (${model.via}), ${split} split\n`);
  const rows = metricRows(evaluation);
  const names = [...new Set(rows.flatMap((r) => r.baselines.map((b) => b.name)))];
  const table = [["metric", "model", ...names]];
  for (const r of rows) {
    const cell = (v: number | null | undefined) =>
      v === undefined ? "" : formatMetric(v ?? null, r.format);
    table.push([
      r.label,
      cell(r.model),
      ...names.map((n) => cell(r.baselines.find((b) => b.name === n)?.value)),
    ]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) say(row.map((x, c) => x.padEnd(widths[c])).join("  ").trimEnd());
  say("");
  for (const line of headlineLines(metrics)) say(line);
  return 0;
}
