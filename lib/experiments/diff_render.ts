/**
 * An {@link ExperimentDiff} for people: terminal tables or Markdown (a
 * pull-request comment). Sections with nothing to say are left out.
 *
 * @module
 */
import type { ExperimentDiff } from "./diff.ts";
import { fmt, fmtChange, fmtRelative } from "./compare.ts";
import { mdTable, textTable } from "./table.ts";

const short = (k?: string) => k?.slice(0, 12) ?? "—";
const val = (x: unknown) => x === undefined ? "—" : typeof x === "string" ? x : JSON.stringify(x);

/** The sections as [title, rows (header first), right-aligned columns]. */
function sections(d: ExperimentDiff, all: boolean): [string, string[][], number[]][] {
  const out: [string, string[][], number[]][] = [];
  const shared = d.steps.filter((s) => s.shared).map((s) => s.step);
  out.push([
    `steps (shared: ${shared.join(", ") || "none"})`,
    [
      ["step", "job", "A", "B", "why they differ"],
      ...d.steps.filter((s) => !s.shared).map((s) => [
        s.step,
        s.job,
        short(s.a),
        short(s.b),
        s.why ?? "",
      ]),
    ],
    [],
  ]);
  if (d.removed.length) {
    out.push([
      "artifacts removed (their contents are not compared)",
      [
        ["step", "job", "side", "key", ""],
        ...d.removed.map((r) => [r.step, r.job, r.side, short(r.key), r.note]),
      ],
      [],
    ]);
  }
  if (d.params.length) {
    out.push([
      "parameters",
      [["parameter", "A", "B"], ...d.params.map((p) => [p.name, val(p.a), val(p.b)])],
      [],
    ]);
  }
  // At a glance: the figures with a direction; the rest (counts, timings, baselines) with --all.
  const shown = all ? d.metrics : d.metrics.filter((m) => m.verdict !== undefined);
  const hidden = d.metrics.length - shown.length;
  if (d.metrics.length) {
    out.push([
      `metrics${hidden ? ` (${hidden} more without a better/worse direction differ: --all)` : ""}`,
      [
        ["metric", "A", "B", "change", "relative", ""],
        ...shown.map((m) => [
          `${m.step}.${m.name}`,
          fmt(m.a),
          fmt(m.b),
          fmtChange(m.change),
          fmtRelative(m.relative),
          m.verdict === "same" ? "" : m.verdict ?? "",
        ]),
      ],
      [1, 2, 3, 4],
    ]);
  }
  for (const [step, tensors] of Object.entries(d.models)) {
    out.push([
      `model (${step}): ${tensors.length} tensors`,
      [
        ["tensor", "shape A", "shape B", "max abs diff", "relative L2"],
        ...tensors.map((t) => [
          t.name,
          t.shapeA ? `[${t.shapeA.join(", ")}]` : "—",
          t.shapeB ? `[${t.shapeB.join(", ")}]` : "—",
          t.max_abs_diff === undefined ? "shape changed" : fmt(t.max_abs_diff),
          t.relative_l2 === undefined ? "" : fmt(t.relative_l2),
        ]),
      ],
      [3, 4],
    ]);
  }
  for (const [step, t] of Object.entries(d.tokenizers)) {
    out.push([
      `tokenizer (${step})`,
      [
        ["", "A", "B"],
        ["kind", val(t.kind[0]), val(t.kind[1])],
        ["codebook size", val(t.codebook_size[0]), val(t.codebook_size[1])],
        ["vocabulary size", String(t.vocab_size[0]), String(t.vocab_size[1])],
        [
          "reconstruction (dB LSD)",
          fmt(t.reconstruction_lsd_db[0]),
          fmt(t.reconstruction_lsd_db[1]),
        ],
        ["categories added", "", t.categories_added.join(", ") || "none"],
        ["categories removed", t.categories_removed.join(", ") || "none", ""],
      ],
      [],
    ]);
  }
  for (const [step, x] of Object.entries(d.data)) {
    const list = (l: string[]) =>
      l.length ? `${l.length}: ${l.slice(0, 5).join(", ")}${l.length > 5 ? ", …" : ""}` : "none";
    out.push([
      `data (${step}): ${x.files[0]} files -> ${x.files[1]}`,
      [
        ["", "files"],
        ["added", list(x.added)],
        ["removed", list(x.removed)],
        ["changed", list(x.changed)],
        ...x.categories.map((c) => [
          `category ${c.name}`,
          c.a === c.b ? String(c.a) : `${c.a} -> ${c.b}`,
        ]),
      ],
      [],
    ]);
  }
  return out;
}

/** Terminal tables. */
export function renderDiffText(d: ExperimentDiff, all = false): string {
  const parts = [`A ${d.a}\nB ${d.b}\n`];
  for (const [title, rows] of sections(d, all)) {
    parts.push(`${title}:\n${rows.length > 1 ? textTable(rows) : "  (none)\n"}`);
  }
  return parts.join("\n");
}

/** Markdown, ready for a pull-request comment. */
export function renderDiffMarkdown(d: ExperimentDiff, all = false): string {
  const parts = [`### \`${d.a}\` → \`${d.b}\`\n`];
  for (const [title, rows, right] of sections(d, all)) {
    parts.push(`#### ${title}\n\n${rows.length > 1 ? mdTable(rows, right) : "(none)\n"}`);
  }
  return parts.join("\n");
}
