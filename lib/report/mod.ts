/**
 * The evaluate report: one self-contained HTML page (styles, scripts, data,
 * audio all inlined; nothing fetched) that opens from disk in any browser.
 * It shows the learning curves, the metrics against baselines, the category
 * confusion, and test and generated clips with spectrograms and players.
 *
 * The same data always renders to the same bytes.
 *
 * @module
 */
import { renderLineChart } from "./chart.ts";
import { dataUrl, escapeHtml, jsonForScript } from "./html.ts";
import type { EvaluateReportData, MetricRow, ReportClip, Spectrogram } from "./types.ts";

export type * from "./types.ts";

/** Colours shared by the charts (a colour-blind-safe pair plus neutrals). */
const COLOR = { train: "#0072b2", val: "#d55e00", other: "#009e73" };

/** Renders the report page for `data` as HTML text. */
export function renderEvaluateReport(data: EvaluateReportData): string {
  const spectrograms: SpectrogramJson[] = [];
  const clipSections = [
    clipSection("clips", "Test clips: original and token reconstruction", data.clips, spectrograms),
    clipSection("generated", "Generated samples", data.generated, spectrograms),
  ];
  const nav = [
    ["curves", "Learning curves"],
    ["metrics", "Metrics"],
    ...(data.confusion ? [["confusion", "Confusion"]] : []),
    ...(data.clips.length ? [["clips", "Test clips"]] : []),
    ...(data.generated.length ? [["generated", "Generated"]] : []),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(data.title)}</h1>
<nav>${nav.map(([id, label]) => `<a href="#${id}">${escapeHtml(label)}</a>`).join(" · ")}</nav>
${factsTable(data.facts)}
</header>
<main>
${curvesSection(data.curves)}
${metricsSection(data.table)}
${data.confusion ? confusionSection(data.confusion) : ""}
${clipSections.join("\n")}
</main>
<script type="application/json" id="spectrogram-data">${jsonForScript(spectrograms)}</script>
<script>${SPECTROGRAM_SCRIPT}</script>
</body>
</html>
`;
}

function factsTable(facts: [string, string][]): string {
  if (facts.length === 0) return "";
  const rows = facts.map(([k, v]) =>
    `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`
  );
  return `<table class="facts">\n${rows.join("\n")}\n</table>`;
}

function curvesSection(curves: EvaluateReportData["curves"]): string {
  const { train, eval: evals, best_step: best } = curves;
  const marker = { markerX: best, markerLabel: `best step ${best}` };
  const charts = [
    renderLineChart({
      id: "loss",
      title: "Loss",
      xLabel: "step",
      yLabel: "cross-entropy (nats/token)",
      series: [
        { name: "train", color: COLOR.train, points: train.map((p) => [p.step, p.loss]) },
        {
          name: "validation",
          color: COLOR.val,
          points: evals.map((p) => [p.step, p.val_loss]),
          markers: true,
        },
      ],
      ...marker,
    }),
    renderLineChart({
      id: "accuracy",
      title: "Token accuracy",
      xLabel: "step",
      yLabel: "next-token accuracy",
      yFormat: "percent",
      series: [
        {
          name: "train",
          color: COLOR.train,
          points: train.map((p) => [p.step, p.token_accuracy]),
        },
        {
          name: "validation",
          color: COLOR.val,
          points: evals.map((p) => [p.step, p.val_token_accuracy]),
          markers: true,
        },
      ],
      ...marker,
    }),
    renderLineChart({
      id: "lr",
      title: "Learning rate",
      xLabel: "step",
      yLabel: "learning rate",
      series: [{ name: "lr", color: COLOR.other, points: train.map((p) => [p.step, p.lr]) }],
      ...marker,
    }),
    renderLineChart({
      id: "grad_norm",
      title: "Gradient norm",
      xLabel: "step",
      yLabel: "global L2 norm",
      series: [{
        name: "grad norm",
        color: COLOR.other,
        points: train.map((p) => [p.step, p.grad_norm]),
      }],
      ...marker,
    }),
  ];
  return `<section id="curves">
<h2>Learning curves</h2>
<p class="note">The dashed line marks step ${best}, whose weights were kept (lowest validation loss).</p>
<div class="charts">
${charts.map((c) => `<figure>${c}</figure>`).join("\n")}
</div>
</section>`;
}

/** Prints a metric as its row asks: nats (3 decimals), percent (1 decimal), number (4 significant). */
export function formatMetric(value: number | null, format: MetricRow["format"]): string {
  if (value === null) return "—";
  if (!Number.isFinite(value)) return String(value);
  switch (format) {
    case "nats":
      return value.toFixed(3);
    case "percent":
      return `${(value * 100).toFixed(1)}%`;
    case "number":
      return String(Number(value.toPrecision(4)));
  }
}

/** How the model stands against the best baseline of a row. */
export function compareToBaselines(row: MetricRow): "better" | "worse" | "tie" | "n/a" {
  const values = row.baselines.map((b) => b.value).filter((v): v is number =>
    v !== null && Number.isFinite(v)
  );
  if (row.model === null || !Number.isFinite(row.model) || values.length === 0) return "n/a";
  const best = row.better === "lower" ? Math.min(...values) : Math.max(...values);
  if (row.model === best) return "tie";
  const wins = row.better === "lower" ? row.model < best : row.model > best;
  return wins ? "better" : "worse";
}

const VERDICT = {
  better: ["✓", "beats the best baseline"],
  worse: ["✗", "does not beat the best baseline"],
  tie: ["=", "ties the best baseline"],
  "n/a": ["—", "no baseline to compare with"],
} as const;

function metricsSection(rows: MetricRow[]): string {
  if (rows.length === 0) {
    return `<section id="metrics"><h2>Metrics</h2><p class="no-data">no data</p></section>`;
  }
  const names: string[] = [];
  for (const row of rows) {
    for (const b of row.baselines) if (!names.includes(b.name)) names.push(b.name);
  }
  const head = [
    "<th>metric</th>",
    "<th>model</th>",
    ...names.map((b) => `<th>${escapeHtml(b)}</th>`),
    "<th>vs best baseline</th>",
  ];
  const body = rows.map((row) => {
    const verdict = compareToBaselines(row);
    const [mark, words] = VERDICT[verdict];
    const cells = names.map((name) => {
      const b = row.baselines.find((x) => x.name === name);
      return `<td class="num">${b ? formatMetric(b.value, row.format) : ""}</td>`;
    });
    return `<tr><th scope="row" title="${escapeHtml(row.name)}">${escapeHtml(row.label)}` +
      ` <span class="dir">(${row.better} is better)</span></th>` +
      `<td class="num model">${formatMetric(row.model, row.format)}</td>${cells.join("")}` +
      `<td class="verdict ${verdict === "n/a" ? "na" : verdict}" data-verdict="${verdict}" ` +
      `title="${words}">${mark} ${verdict}</td></tr>`;
  });
  return `<section id="metrics">
<h2>Metrics</h2>
<table class="metrics">
<thead><tr>${head.join("")}</tr></thead>
<tbody>
${body.join("\n")}
</tbody>
</table>
</section>`;
}

function confusionSection(confusion: NonNullable<EvaluateReportData["confusion"]>): string {
  const { categories, matrix } = confusion;
  const head = categories.map((c) => `<th class="pred"><span>${escapeHtml(c)}</span></th>`);
  const body = categories.map((truth, i) => {
    const row = matrix[i] ?? [];
    const total = row.reduce((a, b) => a + b, 0);
    const cells = categories.map((pred, j) => {
      const count = row[j] ?? 0;
      const share = total > 0 ? count / total : 0;
      // Light to dark blue by row share; white text on the darker half.
      const lightness = (97 - share * 62).toFixed(1);
      const ink = share > 0.5 ? "#fff" : "#111";
      const title = `true ${truth} → predicted ${pred}: ${count} (${(share * 100).toFixed(1)}%)`;
      return `<td class="cell${
        i === j ? " diag" : ""
      }" style="background:hsl(212 70% ${lightness}%);` +
        `color:${ink}" title="${escapeHtml(title)}">${count}</td>`;
    });
    const correct = total > 0 ? `${(((row[i] ?? 0) / total) * 100).toFixed(1)}%` : "—";
    return `<tr><th scope="row">${escapeHtml(truth)}</th>${cells.join("")}` +
      `<td class="num">${total}</td><td class="num">${correct}</td></tr>`;
  });
  return `<section id="confusion">
<h2>Category confusion (test split)</h2>
<p class="note">Rows: true category; columns: predicted. Shading is each row's share; numbers are counts.</p>
<div class="scroll">
<table class="confusion">
<thead><tr><th class="corner">true \\ predicted</th>${
    head.join("")
  }<th>n</th><th>correct</th></tr></thead>
<tbody>
${body.join("\n")}
</tbody>
</table>
</div>
</section>`;
}

/** A spectrogram as the page's script reads it: values rounded to 0.1, non-finite as null. */
interface SpectrogramJson {
  frames: number;
  bins: number;
  data: (number | null)[];
}

function clipSection(
  id: string,
  heading: string,
  clips: ReportClip[],
  spectrograms: SpectrogramJson[],
): string {
  if (clips.length === 0) return "";
  const cards = clips.map((clip) => {
    const sounds = clip.sounds.map((sound) => {
      const index = spectrograms.length;
      spectrograms.push(spectrogramJson(sound.spectrogram));
      const { frames, bins, frame_seconds } = sound.spectrogram;
      const seconds = (frames * frame_seconds).toFixed(2);
      const picture = frames > 0 && bins > 0
        ? `<canvas data-spectrogram="${index}" width="${frames}" height="${bins}" ` +
          `aria-label="spectrogram: ${escapeHtml(sound.label)}"></canvas>`
        : `<p class="no-data">no spectrogram</p>`;
      return `<figure class="sound">
<figcaption>${escapeHtml(sound.label)}</figcaption>
${picture}
<div class="axis-note"><span>0 s</span><span>time →</span><span>${seconds} s</span></div>
<audio controls preload="metadata" src="${dataUrl("audio/wav", sound.wav)}"></audio>
</figure>`;
    });
    return `<article class="clip">
<h3><span class="category">${escapeHtml(clip.category)}</span> <code>${
      escapeHtml(clip.path)
    }</code></h3>
<div class="sounds">
${sounds.join("\n")}
</div>
</article>`;
  });
  return `<section id="${id}">
<h2>${escapeHtml(heading)}</h2>
<p class="note">Spectrograms: time left to right, low frequencies at the bottom, colour scaled per picture.</p>
${cards.join("\n")}
</section>`;
}

function spectrogramJson(s: Spectrogram): SpectrogramJson {
  return {
    frames: s.frames,
    bins: s.bins,
    data: s.data.map((v) => Number.isFinite(v) ? Math.round(v * 10) / 10 + 0 : null),
  };
}

const STYLE = `
:root { color-scheme: light; --ink: #1b1f24; --muted: #5f6b7a; --line: #d8dee6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #f4f6f9; }
header, main { max-width: 1160px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 8px; }
nav { margin-bottom: 12px; color: var(--muted); }
nav a { color: #0b5cad; text-decoration: none; }
.note { color: var(--muted); margin: 4px 0 10px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 4px 10px; border: 1px solid var(--line); text-align: left; }
.facts th { font-weight: 600; color: var(--muted); }
.facts td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.metrics th { background: #f8f9fb; }
.metrics td.model { font-weight: 600; }
.metrics .dir { color: var(--muted); font-weight: normal; font-size: 12px; }
.verdict { white-space: nowrap; font-weight: 600; }
.verdict.better { color: #12733a; background: #e7f6ec; }
.verdict.worse { color: #b3261e; background: #fdecea; }
.verdict.tie { color: #8a6d00; background: #fff7db; }
.verdict.na { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 14px; }
figure { margin: 0; }
.charts figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
svg.chart { display: block; width: 100%; height: auto; font-family: system-ui, sans-serif; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: var(--ink); }
svg .tick { font-size: 11px; fill: var(--muted); }
svg .axis-label { font-size: 12px; fill: var(--ink); }
svg .legend { font-size: 11px; fill: var(--ink); }
svg .grid { stroke: #eceff3; stroke-width: 1; }
svg .axis { stroke: #7b8794; fill: none; stroke-width: 1; }
svg .series { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
svg .marker line { stroke: #7a3db8; stroke-width: 1.4; stroke-dasharray: 5 4; }
svg .marker text { font-size: 11px; fill: #7a3db8; font-weight: 600; }
svg .no-data, p.no-data { font-size: 14px; fill: var(--muted); color: var(--muted); }
.scroll { overflow-x: auto; }
.confusion td.cell { text-align: center; min-width: 44px; font-variant-numeric: tabular-nums; }
.confusion td.diag { outline: 2px solid #1b1f24; outline-offset: -2px; }
.confusion th.pred { vertical-align: bottom; font-size: 12px; }
.confusion th.corner { color: var(--muted); font-weight: normal; font-size: 12px; }
.clip { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  margin-bottom: 12px; }
.clip .category { background: #eef3fa; color: #0b5cad; padding: 1px 8px; border-radius: 10px; }
.clip code { color: var(--muted); font-size: 12px; word-break: break-all; }
.sounds { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
.sound figcaption { font-weight: 600; margin-bottom: 4px; }
.sound canvas { display: block; width: 100%; height: 140px; background: #000; border-radius: 3px; }
.axis-note { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px; }
.sound audio { width: 100%; margin-top: 4px; }
`;

/**
 * Draws each `<canvas data-spectrogram="i">` from the inlined JSON: colour by
 * viridis (a polynomial fit), scaled per spectrogram from its 2nd percentile
 * to its maximum, low bins at the bottom.
 */
const SPECTROGRAM_SCRIPT = `
(function () {
  "use strict";
  var spectrograms = JSON.parse(document.getElementById("spectrogram-data").textContent);
  // Viridis, as a degree-6 polynomial per channel (t in [0, 1]).
  var C = [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832]
  ];
  var lut = new Uint8ClampedArray(256 * 3);
  for (var i = 0; i < 256; i++) {
    var t = i / 255;
    for (var ch = 0; ch < 3; ch++) {
      var v = 0;
      for (var k = 6; k >= 0; k--) v = v * t + C[k][ch];
      lut[i * 3 + ch] = Math.round(Math.max(0, Math.min(1, v)) * 255);
    }
  }
  var canvases = document.querySelectorAll("canvas[data-spectrogram]");
  for (var c = 0; c < canvases.length; c++) {
    var canvas = canvases[c];
    var s = spectrograms[Number(canvas.getAttribute("data-spectrogram"))];
    var finite = [];
    for (var j = 0; j < s.data.length; j++) if (s.data[j] !== null) finite.push(s.data[j]);
    finite.sort(function (a, b) { return a - b; });
    var lo = finite.length ? finite[Math.floor((finite.length - 1) * 0.02)] : 0;
    var hi = finite.length ? finite[finite.length - 1] : 1;
    var range = hi > lo ? hi - lo : 1;
    var ctx = canvas.getContext("2d");
    var image = ctx.createImageData(s.frames, s.bins);
    for (var f = 0; f < s.frames; f++) {
      for (var b = 0; b < s.bins; b++) {
        var x = s.data[f * s.bins + b];
        var level = x === null ? 0 : Math.max(0, Math.min(1, (x - lo) / range));
        var li = Math.round(level * 255) * 3;
        var p = ((s.bins - 1 - b) * s.frames + f) * 4;
        image.data[p] = lut[li];
        image.data[p + 1] = lut[li + 1];
        image.data[p + 2] = lut[li + 2];
        image.data[p + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
  }
})();
`;
