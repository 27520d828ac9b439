/**
 * Line charts as inline SVG: axes with tick labels, a legend, and an optional
 * vertical marker (the best step). No charting library: a chart is a few
 * dozen SVG elements, written as text so the same data gives the same bytes.
 *
 * @module
 */
import { escapeHtml } from "./html.ts";

/** One line on a chart. */
export interface ChartSeries {
  name: string;
  /** CSS colour. */
  color: string;
  /** `[x, y]` points in x order; non-finite points are skipped. */
  points: [number, number][];
  /** Draw a dot at each point (for sparse series such as evaluations). */
  markers?: boolean;
}

/** What a chart shows. */
export interface LineChartSpec {
  /** Stable id, written as the SVG's `data-chart` attribute. */
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** x of a vertical marker line, e.g. the best step; null for none. */
  markerX: number | null;
  markerLabel?: string;
  /** How y tick labels read: plain numbers or percentages of 1. */
  yFormat?: "number" | "percent";
}

// Chart geometry in SVG user units; the SVG scales to its container's width.
const WIDTH = 520;
const HEIGHT = 300;
const MARGIN = { left: 64, right: 18, top: 40, bottom: 46 };
/** Most points drawn per series; longer series are thinned by stride. */
const MAX_POINTS = 800;

/** Nice tick positions covering [min, max]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(min: number, max: number, target = 5): { ticks: number[]; step: number } {
  if (!(max > min)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, target - 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  // The 1-2-5 step nearest the raw one on a log scale (thresholds at √2, √10, √50).
  const step = (fraction >= 7.07 ? 10 : fraction >= 3.16 ? 5 : fraction >= 1.41 ? 2 : 1) * power;
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return { ticks, step };
}

/** A tick label that tells neighbouring ticks apart without noise digits. */
export function formatTick(value: number, step: number, format: "number" | "percent"): string {
  if (format === "percent") {
    const decimals = Math.max(0, -Math.floor(Math.log10(step * 100) + 1e-9));
    return `${(value * 100).toFixed(decimals)}%`;
  }
  if (value === 0) return "0";
  if (step < 0.01 || Math.abs(value) >= 1e6) return value.toExponential().replace("e+", "e");
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return value.toFixed(decimals);
}

function thin(points: [number, number][]): [number, number][] {
  const finite = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (finite.length <= MAX_POINTS) return finite;
  const stride = Math.ceil(finite.length / MAX_POINTS);
  const out = finite.filter((_, i) => i % stride === 0);
  if (out[out.length - 1] !== finite[finite.length - 1]) out.push(finite[finite.length - 1]);
  return out;
}

const n = (v: number) => v.toFixed(1);

/** Renders a line chart as an `<svg>` element (text). */
export function renderLineChart(spec: LineChartSpec): string {
  const series = spec.series.map((s) => ({ ...s, points: thin(s.points) }));
  const all = series.flatMap((s) => s.points);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" data-chart="${escapeHtml(spec.id)}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `role="img" aria-label="${escapeHtml(spec.title)}" xmlns="http://www.w3.org/2000/svg">`,
  );
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`);
  parts.push(
    `<text class="chart-title" x="${MARGIN.left}" y="20">${escapeHtml(spec.title)}</text>`,
  );

  if (all.length === 0) {
    parts.push(
      `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" ` +
        `fill="#fafafa" stroke="#ccc"/>`,
      `<text class="no-data" x="${n(MARGIN.left + plotW / 2)}" y="${
        n(MARGIN.top + plotH / 2)
      }" text-anchor="middle" dominant-baseline="middle">no data</text>`,
      "</svg>",
    );
    return parts.join("\n");
  }

  const xs = all.map(([x]) => x);
  if (spec.markerX !== null && Number.isFinite(spec.markerX)) xs.push(spec.markerX);
  const ys = all.map(([, y]) => y);
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs), 6);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys), 5);
  const x0 = xTicks.ticks[0], x1 = xTicks.ticks[xTicks.ticks.length - 1];
  const y0 = yTicks.ticks[0], y1 = yTicks.ticks[yTicks.ticks.length - 1];
  const px = (x: number) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number) => MARGIN.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const bottom = MARGIN.top + plotH;
  const yFormat = spec.yFormat ?? "number";

  // Grid and tick labels.
  for (const t of yTicks.ticks) {
    const y = n(py(t));
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y}" y2="${y}"/>`,
      `<text class="tick" x="${MARGIN.left - 6}" y="${y}" text-anchor="end" ` +
        `dominant-baseline="middle">${formatTick(t, yTicks.step, yFormat)}</text>`,
    );
  }
  for (const t of xTicks.ticks) {
    const x = n(px(t));
    parts.push(
      `<line class="grid" x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${bottom}"/>`,
      `<text class="tick" x="${x}" y="${bottom + 16}" text-anchor="middle">${
        formatTick(t, xTicks.step, "number")
      }</text>`,
    );
  }
  parts.push(
    `<path class="axis" d="M${MARGIN.left},${MARGIN.top}V${bottom}H${MARGIN.left + plotW}"/>`,
    `<text class="axis-label" x="${n(MARGIN.left + plotW / 2)}" y="${HEIGHT - 6}" ` +
      `text-anchor="middle">${escapeHtml(spec.xLabel)}</text>`,
    `<text class="axis-label" transform="translate(14 ${n(MARGIN.top + plotH / 2)}) rotate(-90)" ` +
      `text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`,
  );

  // The marker sits under the data so the lines stay readable where they cross it.
  if (spec.markerX !== null && Number.isFinite(spec.markerX)) {
    const x = n(px(spec.markerX));
    const label = spec.markerLabel ?? `x = ${spec.markerX}`;
    parts.push(
      `<g class="marker" data-best-step="${spec.markerX}">`,
      `<line x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${bottom}"/>`,
      // Anchored so the label stays inside the chart near either edge.
      `<text x="${x}" y="${MARGIN.top - 4}" text-anchor="${
        px(spec.markerX) > MARGIN.left + 0.75 * plotW
          ? "end"
          : px(spec.markerX) < MARGIN.left + 0.25 * plotW
          ? "start"
          : "middle"
      }">${escapeHtml(label)}</text>`,
      `</g>`,
    );
  }

  for (const s of series) {
    if (s.points.length === 0) continue;
    const color = escapeHtml(s.color);
    if (s.points.length > 1) {
      const d = s.points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${n(px(x))},${n(py(y))}`)
        .join("");
      parts.push(`<path class="series" d="${d}" stroke="${color}"/>`);
    }
    if (s.markers || s.points.length === 1) {
      for (const [x, y] of s.points) {
        parts.push(`<circle cx="${n(px(x))}" cy="${n(py(y))}" r="2.5" fill="${color}"/>`);
      }
    }
  }

  // Legend, right-aligned above the plot: a short line and the name per series.
  let right = WIDTH - MARGIN.right;
  const legend: string[] = [];
  for (const s of [...spec.series].reverse()) {
    const textWidth = s.name.length * 6.2;
    const textX = right - textWidth;
    legend.push(
      `<line x1="${n(textX - 22)}" x2="${n(textX - 4)}" y1="16" y2="16" stroke="${
        escapeHtml(s.color)
      }" stroke-width="2.5"/>`,
      `<text class="legend" x="${n(textX)}" y="20">${escapeHtml(s.name)}</text>`,
    );
    right = textX - 34;
  }
  parts.push(...legend.reverse(), "</svg>");
  return parts.join("\n");
}
