/**
 * `--summary-md FILE`: a run as a GitHub job summary (Markdown): outcome,
 * gates, steps with cache hits, headline metrics (every flat metric folded
 * away), and the change against a baseline run.
 *
 * @module
 */
import type { RunSummary } from "../pipeline/runner.ts";
import type { FlatMetrics } from "../pipeline/metrics.ts";
import { formatDuration } from "../pipeline/progress.ts";
import { diffMetrics, fmt, fmtChange, fmtRelative, metricDirection } from "./compare.ts";
import { mdTable } from "./table.ts";
import { runMetrics, type StoredRun } from "./runs.ts";

/** Metrics shown up front, in this order, when the run has them (step job -> names). */
const HEADLINE: Record<string, string[]> = {
  evaluate: [
    "test_loss",
    "bigram_test_loss",
    "test_loss_vs_bigram",
    "test_token_accuracy",
    "category_accuracy",
    "chance_category_accuracy",
    "macro_f1",
    "generation_recognised",
  ],
  train: ["best_val_loss", "steps", "train_seconds"],
  tokenize: ["reconstruction_lsd_db", "codebook_usage"],
};

/** The outcome word and mark of a run. */
function outcome(s: RunSummary): string {
  if (s.status !== "succeeded") return `${s.status} ❌`;
  if (s.gates?.some((g) => !g.passed)) return "gate failed ❌";
  return "succeeded ✅";
}

/** Renders the summary; `baseline` adds a comparison, `storeDir` finds old records' metrics. */
export function renderSummaryMarkdown(
  s: RunSummary,
  options: { baseline?: StoredRun; storeDir: string },
): string {
  const parts: string[] = [];
  const done = s.steps.filter((x) =>
    x.status === "ran" || x.status === "cached" || x.status === "failed"
  );
  const cached = done.filter((x) => x.status === "cached").length;
  const id = s.record ? s.record.replace(/^.*\//, "").replace(/\.json$/, "") : undefined;
  parts.push(`## Pipeline \`${s.pipeline}\`: ${outcome(s)}\n`);
  parts.push(
    [
      `\`${s.file}\``,
      s.name ? `name \`${s.name}\`` : "",
      s.seed !== undefined ? `seed ${s.seed}` : "",
      s.duration_s !== undefined ? formatDuration(s.duration_s) : "",
      `${cached} of ${done.length} steps cached`,
      id ? `record \`${id}\`` : s.same_as ? "every step cached, no record written" : "",
    ].filter(Boolean).join(" · ") + "\n",
  );
  if (s.error !== undefined) {
    const msg = s.error instanceof Error ? s.error.message : String(s.error);
    parts.push(`**Step \`${s.failed_step}\` failed:** ${msg.split("\n")[0]}\n`);
  }
  if (s.gates?.length) {
    parts.push("### Gates\n");
    parts.push(mdTable([
      ["gate", "value", "result"],
      ...s.gates.map((g) => [`\`${g.text}\``, fmt(g.value), g.passed ? "✅ passed" : "❌ failed"]),
    ]));
  }
  parts.push("### Steps\n");
  parts.push(mdTable([
    ["step", "job", "status", "time", "key"],
    ...s.steps.map((x) => [
      x.step,
      x.job,
      x.status === "failed" ? `❌ ${x.reason}` : x.status,
      x.duration_s !== undefined ? formatDuration(x.duration_s) : "",
      x.key ? `\`${x.key.slice(0, 12)}\`` : "",
    ]),
  ], [3]));
  const metrics: Record<string, FlatMetrics> = {};
  for (const x of s.steps) if (x.metrics) metrics[x.step] = x.metrics;
  const head: string[][] = [];
  for (const x of s.steps) {
    for (const name of HEADLINE[x.job] ?? []) {
      if (x.metrics && name in x.metrics) head.push([`${x.step}.${name}`, fmt(x.metrics[name])]);
    }
  }
  if (head.length) {
    parts.push("### Metrics\n");
    parts.push(mdTable([["metric", "value"], ...head], [1]));
    const every: string[][] = [];
    for (const [step, m] of Object.entries(metrics)) {
      for (const [name, v] of Object.entries(m)) {
        if (typeof v === "number") every.push([`${step}.${name}`, fmt(v)]);
      }
    }
    parts.push(
      `<details><summary>every metric (${every.length})</summary>\n\n` +
        mdTable([["metric", "value"], ...every], [1]) + "\n</details>\n",
    );
  }
  const base = options.baseline;
  if (base) {
    parts.push(`### Against baseline \`${base.record.name ?? base.record.id}\`\n`);
    const steps = s.steps.filter((x) => x.key && base.record.steps[x.step]?.key);
    const same = steps.filter((x) => base.record.steps[x.step].key === x.key).map((x) => x.step);
    const differ = steps.filter((x) => base.record.steps[x.step].key !== x.key).map((x) => x.step);
    parts.push(
      `Same artifacts: ${same.join(", ") || "none"}. Different: ${differ.join(", ") || "none"}.\n`,
    );
    const changes = diffMetrics(runMetrics(base.record, options.storeDir), metrics)
      .filter((c) => typeof c.a === "number" || typeof c.b === "number")
      .filter((c) => metricDirection(c.name) !== undefined);
    if (changes.length) {
      parts.push(mdTable([
        ["metric", "baseline", "this run", "change", "relative", ""],
        ...changes.map((c) => [
          `${c.step}.${c.name}`,
          fmt(c.a),
          fmt(c.b),
          fmtChange(c.change),
          fmtRelative(c.relative),
          c.verdict === "better" ? "🟢 better" : c.verdict === "worse" ? "🔴 worse" : "",
        ]),
      ], [1, 2, 3, 4]));
    } else parts.push("No metric with a direction changed.\n");
  }
  return parts.join("\n");
}
