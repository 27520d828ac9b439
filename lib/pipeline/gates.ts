/**
 * Metric gates: `--fail-if 'evaluate.category_accuracy < 0.9'` fails a run
 * (exit code {@link GATE_FAILED_EXIT}) when the condition holds. A gate names
 * a step, one of the flat metrics its job declares (`JobDefinition.metrics`),
 * an operator and a number; all of it is checked before anything runs.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** The exit code of a run whose steps all succeeded but a gate failed. */
export const GATE_FAILED_EXIT = 3;

/** Comparison operators a gate may use. */
export const GATE_OPS = ["<=", ">=", "==", "!=", "<", ">"] as const;
/** One of {@link GATE_OPS}. */
export type GateOp = typeof GATE_OPS[number];

/** A parsed `--fail-if` condition. */
export interface Gate {
  /** As given, trimmed: `evaluate.category_accuracy < 0.9`. */
  text: string;
  step: string;
  metric: string;
  op: GateOp;
  threshold: number;
}

/** A gate checked against a run's metrics. */
export interface GateResult extends Gate {
  /** The metric's value in the run (null when the job wrote none, or wrote null). */
  value: number | null;
  /** True when the run passes: the value exists and the fail condition does not hold. */
  passed: boolean;
  /** One line: `evaluate.category_accuracy = 0.43 < 0.9: failed`. */
  message: string;
}

const GATE_RE = /^\s*([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$/;

/** Parses one `--fail-if` condition; a `UserError` saying what is expected when it is malformed. */
export function parseGate(text: string): Gate {
  const m = GATE_RE.exec(text);
  const threshold = m ? Number(m[4]) : NaN;
  if (!m || !Number.isFinite(threshold)) {
    throw new UserError(`malformed gate "${text}"`, {
      field: "--fail-if",
      expected: `STEP.METRIC OP NUMBER, OP one of ${GATE_OPS.join(" ")} ` +
        `(e.g. 'evaluate.category_accuracy < 0.9')`,
      found: text,
    });
  }
  return { text: text.trim(), step: m[1], metric: m[2], op: m[3] as GateOp, threshold };
}

/** What {@link checkGates} needs to know about a step. */
export interface GateStepInfo {
  job: string;
  /** The job's declared metric names (undefined: it declares none). */
  metrics?: readonly string[];
  /** False when the step will not run or be cached in this run (pruned, or outside --until/--only). */
  inRun: boolean;
}

/**
 * Checks gates against the plan before anything runs: the step exists and is
 * part of the run, and its job declares the metric. Throws one `UserError`
 * naming the gate and what would be valid.
 */
export function checkGates(gates: Gate[], steps: Map<string, GateStepInfo>, file: string): void {
  for (const g of gates) {
    const st = steps.get(g.step);
    if (!st) {
      throw new UserError(`gate "${g.text}": no step "${g.step}" in the pipeline`, {
        file,
        field: "--fail-if",
        expected: `one of the steps ${[...steps.keys()].join(", ")}`,
        found: g.step,
      });
    }
    if (!st.inRun) {
      throw new UserError(`gate "${g.text}": step "${g.step}" is not part of this run`, {
        file,
        field: "--fail-if",
        expected: "a step that runs or is cached in this run (see --until, --only)",
        found: `${g.step} (pruned or not selected)`,
      });
    }
    if (!st.metrics?.length) {
      throw new UserError(`gate "${g.text}": the ${st.job} job declares no metrics to gate on`, {
        file,
        step: g.step,
        field: "--fail-if",
        expected: "a step whose job lists its metrics (`metrics` in its job definition)",
        found: `job ${st.job}`,
      });
    }
    if (!st.metrics.includes(g.metric)) {
      throw new UserError(`gate "${g.text}": the ${st.job} job has no metric "${g.metric}"`, {
        file,
        step: g.step,
        field: "--fail-if",
        expected: `one of ${st.metrics.join(", ")}`,
        found: g.metric,
        hint: st.job === "evaluate" ? 'README "Metrics" lists every name' : undefined,
      });
    }
  }
}

function holds(value: number, op: GateOp, threshold: number): boolean {
  switch (op) {
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "==":
      return value === threshold;
    case "!=":
      return value !== threshold;
  }
}

/** Compact number for messages: up to 4 significant digits. */
export function formatMetric(x: number | null | undefined): string {
  if (x === null || x === undefined) return "n/a";
  if (Number.isInteger(x)) return String(x);
  return Number(x.toPrecision(4)).toString();
}

/**
 * Applies gates to a run's metrics (step -> flat metrics). A gate fails when
 * its condition holds, or when the metric has no numeric value (a gate must
 * never pass for want of a figure).
 */
export function evaluateGates(
  gates: Gate[],
  metrics: Record<string, Record<string, unknown> | undefined>,
): GateResult[] {
  return gates.map((g) => {
    const raw = metrics[g.step]?.[g.metric];
    const value = typeof raw === "number" && Number.isFinite(raw) ? raw : null;
    if (value === null) {
      return {
        ...g,
        value,
        passed: false,
        message: `gate "${g.text}" failed: step "${g.step}" wrote no value for ${g.metric} (${
          raw === undefined ? "missing" : JSON.stringify(raw)
        }), so the gate cannot pass`,
      };
    }
    const failed = holds(value, g.op, g.threshold);
    return {
      ...g,
      value,
      passed: !failed,
      message: failed
        ? `gate "${g.text}" failed: ${g.step}.${g.metric} is ${formatMetric(value)}, ` +
          `which is ${g.op} ${formatMetric(g.threshold)}`
        : `gate "${g.text}" passed: ${g.step}.${g.metric} is ${formatMetric(value)}`,
    };
  });
}
