/**
 * Learning curves of several runs overlaid (`deno task plots A B …`): train
 * loss, validation loss and validation token accuracy against step, one
 * colour per run, on one self-contained HTML page (the evaluate report's
 * charts), and a PNG of it by headless Chromium.
 *
 * @module
 */
import { renderLineChart } from "../report/chart.ts";
import { escapeHtml } from "../report/html.ts";
import type { EvalCurvePoint, TrainCurvePoint } from "../report/types.ts";
import { join } from "node:path";
import { UserError } from "../errors/mod.ts";
import { readCurves } from "../evaluate/report_data.ts";
import { removedArtifactNote, resolveRun, stepOfJob } from "./runs.ts";

/** One run's curves and how the legend names it. */
export interface RunCurves {
  label: string;
  train: TrainCurvePoint[];
  eval: EvalCurvePoint[];
}

/**
 * The learning curves of the run `name` names (as `show` names runs), from
 * its train artifact's `curves.jsonl`, labelled by its `--name` or id (with
 * the id added when `labels`, those taken already, has the name). A run
 * without a train step, or whose train artifact is no longer in the store
 * (removed by gc), is a `UserError`: plotting it would draw an empty series.
 */
export async function runCurvesOf(
  name: string,
  storeDir: string,
  labels: string[] = [],
): Promise<RunCurves> {
  const { file, record } = await resolveRun(name, storeDir);
  const train = stepOfJob(record, "train");
  if (!train?.record.key) {
    throw new UserError(`run "${name}" has no train step with an artifact`, {
      field: "RUN",
      expected: "a run whose train step ran or was cached",
      found: record.id,
    });
  }
  const dir = join(storeDir, "objects", train.record.key);
  try {
    await Deno.stat(join(dir, "manifest.json"));
  } catch {
    throw new UserError(
      `run "${name}": the artifact of its train step "${train.step}" is not in the store`,
      {
        field: "RUN",
        file: dir,
        expected: "the train artifact whose curves.jsonl holds the learning curves",
        found: "no such artifact",
        hint: `${removedArtifactNote(file)}; or leave the run out`,
      },
    );
  }
  const curves = await readCurves(dir);
  let label = record.name ?? record.id;
  if (labels.includes(label)) label = `${label} (${record.id})`;
  return { label, train: curves.train, eval: curves.eval };
}

/** Distinct colours, one per run (cycled past ten). */
export const RUN_COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
];

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 16px; color: #1d2733; background: #f6f7f9; }
h1 { font-size: 18px; margin: 0 0 4px; }
ul.runs { list-style: none; padding: 0; margin: 0 0 12px; font-size: 13px; }
ul.runs li { display: inline-block; margin-right: 18px; }
.swatch { display: inline-block; width: 22px; height: 4px; margin-right: 6px; vertical-align: middle; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 4px; }
svg.chart { display: block; width: 100%; height: auto; font-family: system-ui, sans-serif; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1d2733; }
svg .tick { font-size: 11px; fill: #5b6673; }
svg .axis-label { font-size: 12px; fill: #1d2733; }
svg .legend { font-size: 11px; fill: #1d2733; }
svg .grid { stroke: #eceff3; stroke-width: 1; }
svg .axis { stroke: #7b8794; fill: none; stroke-width: 1; }
svg .series { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
svg .no-data { font-size: 14px; fill: #5b6673; }
`;

/**
 * The page: a legend (colour, `#N`, run name) and three charts, train loss,
 * validation loss and validation token accuracy (their own legends say `#N`,
 * short enough not to cover the titles).
 */
export function renderPlotsPage(runs: RunCurves[], title = "Learning curves"): string {
  const color = (i: number) => RUN_COLORS[i % RUN_COLORS.length];
  const charts = [
    renderLineChart({
      id: "train_loss",
      title: "Train loss",
      xLabel: "step",
      yLabel: "cross-entropy (nats/token)",
      series: runs.map((r, i) => ({
        name: `#${i + 1}`,
        color: color(i),
        points: r.train.map((p) => [p.step, p.loss] as [number, number]),
      })),
      markerX: null,
    }),
    renderLineChart({
      id: "val_loss",
      title: "Validation loss",
      xLabel: "step",
      yLabel: "cross-entropy (nats/token)",
      series: runs.map((r, i) => ({
        name: `#${i + 1}`,
        color: color(i),
        points: r.eval.map((p) => [p.step, p.val_loss] as [number, number]),
        markers: true,
      })),
      markerX: null,
    }),
    renderLineChart({
      id: "val_token_accuracy",
      title: "Validation token accuracy",
      xLabel: "step",
      yLabel: "next-token accuracy",
      yFormat: "percent",
      series: runs.map((r, i) => ({
        name: `#${i + 1}`,
        color: color(i),
        points: r.eval.map((p) => [p.step, p.val_token_accuracy] as [number, number]),
        markers: true,
      })),
      markerX: null,
    }),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<ul class="runs">
${
    runs.map((r, i) =>
      `<li><span class="swatch" style="background:${color(i)}"></span>#${i + 1} ${
        escapeHtml(r.label)
      }</li>`
    ).join("\n")
  }
</ul>
<div class="charts">
${charts.map((c) => `<figure>${c}</figure>`).join("\n")}
</div>
</body>
</html>
`;
}

/** Where Debian's Chromium is. */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Renders `htmlFile` to `pngFile` with headless Chromium; false (and nothing
 * written) when Chromium is not installed. A Chromium that fails throws.
 */
export async function screenshot(
  htmlFile: string,
  pngFile: string,
  chromium = CHROMIUM,
): Promise<boolean> {
  try {
    await Deno.stat(chromium);
  } catch {
    return false;
  }
  const profile = await Deno.makeTempDir({ prefix: "plots-chromium-" });
  try {
    const r = await new Deno.Command(chromium, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        `--screenshot=${pngFile}`,
        "--window-size=1200,900",
        `file://${htmlFile}`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const size = await Deno.stat(pngFile).then((s) => s.size, () => 0);
    if (!r.success || size === 0) {
      throw new Error(
        `chromium could not render ${htmlFile} (exit ${r.code}): ${
          new TextDecoder().decode(r.stderr).slice(-2000)
        }`,
      );
    }
    return true;
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}
