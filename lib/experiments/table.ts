/**
 * Tables for people: aligned plain text for the terminal and GitHub-flavoured
 * Markdown for job summaries and pull-request comments.
 *
 * @module
 */

/** Rows (the first is the header) as aligned columns, two spaces apart. */
export function textTable(rows: string[][]): string {
  if (!rows.length) return "";
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd())
    .join("\n") + "\n";
}

/** A Markdown cell: pipes escaped, newlines as spaces. */
function mdCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** Rows (the first is the header) as a Markdown table; `right` lists right-aligned columns. */
export function mdTable(rows: string[][], right: number[] = []): string {
  if (!rows.length) return "";
  const [head, ...body] = rows;
  const sep = head.map((_, i) => (right.includes(i) ? "---:" : "---"));
  return [head, sep, ...body].map((r) => `| ${r.map(mdCell).join(" | ")} |`).join("\n") + "\n";
}
