/**
 * Sweeps: `--sweep STEP.PARAM=a,b` (repeatable) expands to the grid of
 * `--set` overrides (the cartesian product), each run named
 * `<pipeline>-sweep-<param>=<v>-…`, and ends in one comparison table of the
 * headline metrics, best first.
 *
 * @module
 */
import { sha256Sync, toHex } from "../artifacts/hash.ts";
import { UserError } from "../errors/mod.ts";
import { parseOverride } from "../pipeline/file.ts";
import type { RunSummary, StepSummary } from "../pipeline/runner.ts";
import { MAX_RUN_NAME } from "../pipeline/records.ts";
import { compareHeadlines, type Headline } from "./runs.ts";
import { fmt } from "./compare.ts";
import { textTable } from "./table.ts";

/** One `--sweep` axis. */
export interface SweepAxis {
  /** The dotted path as written (`train.lr`). */
  path: string;
  /** The values as written (each a `--set` value). */
  texts: string[];
  /** The parsed values (as `--set` reads them). */
  values: unknown[];
}

/** One grid point: its overrides and the values by path. */
export interface SweepPoint {
  overrides: string[];
  values: Record<string, unknown>;
  texts: Record<string, string>;
}

/** Splits on commas outside brackets and braces (`[1, 2]` stays one value). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** Parses one `--sweep STEP.PARAM=a,b[,…]`; a `UserError` for anything malformed. */
export async function parseSweep(text: string, file: string): Promise<SweepAxis> {
  const eq = text.indexOf("=");
  const bad = (why: string, found = text) =>
    new UserError(`bad sweep "--sweep ${text}": ${why}`, {
      field: "--sweep",
      expected: "--sweep STEP.PARAM=V1,V2[,…] (values as --set reads them)",
      found,
    });
  if (eq <= 0) throw bad("no STEP.PARAM=");
  const path = text.slice(0, eq).trim();
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(path) && path !== "seed") {
    throw bad("the path is not STEP.PARAM (or seed)", path);
  }
  const texts = splitTopLevel(text.slice(eq + 1));
  if (texts.some((t) => t === "")) throw bad("an empty value", text.slice(eq + 1));
  if (new Set(texts).size !== texts.length) throw bad("a value given twice", text.slice(eq + 1));
  const values: unknown[] = [];
  for (const t of texts) values.push((await parseOverride(`${path}=${t}`, file)).value);
  return { path, texts, values };
}

/** Parses every `--sweep`; a path swept twice is an error. */
export async function parseSweeps(texts: string[], file: string): Promise<SweepAxis[]> {
  const axes: SweepAxis[] = [];
  for (const t of texts) {
    const axis = await parseSweep(t, file);
    if (axes.some((a) => a.path === axis.path)) {
      throw new UserError(`"${axis.path}" is swept twice`, {
        field: "--sweep",
        expected: "each STEP.PARAM in one --sweep (list its values with commas)",
        found: t,
      });
    }
    axes.push(axis);
  }
  return axes;
}

/** The grid: every combination of the axes' values, the first axis slowest. */
export function sweepGrid(axes: SweepAxis[]): SweepPoint[] {
  let points: SweepPoint[] = [{ overrides: [], values: {}, texts: {} }];
  for (const a of axes) {
    points = points.flatMap((p) =>
      a.texts.map((t, i) => ({
        overrides: [...p.overrides, `${a.path}=${t}`],
        values: { ...p.values, [a.path]: a.values[i] },
        texts: { ...p.texts, [a.path]: t },
      }))
    );
  }
  return points;
}

/** The first 10 hex digits of the SHA-256 of `text`: short, stable across runs and machines. */
function shortHash(text: string): string {
  return toHex(sha256Sync(new TextEncoder().encode(text))).slice(0, 10);
}

/**
 * `<pipeline>-sweep-<param>=<v>-…`, characters a run name cannot hold as `_`.
 * A name longer than {@link MAX_RUN_NAME} (list values, many axes) is cut
 * and ends in `-` and a hash of the point's values, so each point keeps a
 * distinct, valid name; the table and the record hold the full values.
 */
export function sweepRunName(pipeline: string, point: SweepPoint): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._=,+-]/g, "_");
  const parts = Object.entries(point.texts).map(([p, t]) => `${safe(p)}=${safe(t)}`);
  const name = `${safe(pipeline)}-sweep-${parts.join("-")}`;
  if (name.length <= MAX_RUN_NAME) return name;
  const hash = shortHash(JSON.stringify(Object.entries(point.texts)));
  return `${name.slice(0, MAX_RUN_NAME - hash.length - 1)}-${hash}`;
}

/**
 * An error met while planning a grid point, worded in terms of `--sweep`: the
 * runner sees a point's values as `--set` overrides, so its notes say
 * "set by --set P=V"; for a swept path they say "set by --sweep P=V1,V2 (the
 * value V)". Anything that is not a `UserError` is returned as it is.
 */
export function sweepPointError(e: unknown, point: SweepPoint, axes: SweepAxis[]): unknown {
  if (!(e instanceof UserError)) return e;
  let { message, found, hint } = e;
  for (const a of axes) {
    const text = point.texts[a.path];
    if (text === undefined) continue;
    const from = `--set ${a.path}=${text}`;
    const to = `--sweep ${a.path}=${a.texts.join(",")} (the value ${text})`;
    message = message.split(from).join(to);
    found = found?.split(from).join(to);
    hint = hint?.split(from).join(to);
  }
  if (message === e.message && found === e.found && hint === e.hint) return e;
  return new UserError(message, { ...e.location, expected: e.expected, found, hint, cause: e });
}

/** One row of the comparison table. */
export interface SweepRow extends Headline {
  name: string;
  status: string;
  /** The run record (absent when every step was cached and an earlier record holds the run). */
  record?: string;
  values: Record<string, unknown>;
}

const num = (x: unknown): number | null => typeof x === "number" && Number.isFinite(x) ? x : null;

/** {@link Headline} from a run summary's steps (evaluate's test figures, train's best_val_loss). */
export function summaryHeadline(steps: StepSummary[]): Headline {
  const done = (job: string) =>
    steps.find((s) => s.job === job && (s.status === "ran" || s.status === "cached"));
  const e = done("evaluate")?.metrics ?? {};
  const t = done("train")?.metrics ?? {};
  return {
    test_loss: num(e.test_loss),
    category_accuracy: num(e.category_accuracy),
    best_val_loss: num(t.best_val_loss),
  };
}

/** A table row for a finished grid point. */
export function sweepRow(name: string, point: SweepPoint, summary: RunSummary): SweepRow {
  return {
    name,
    status: summary.status,
    record: summary.record ?? summary.same_as,
    values: point.values,
    ...summaryHeadline(summary.steps),
  };
}

/** Best first: lowest test loss, else lowest best_val_loss; failed runs last. */
export function sortRows(rows: SweepRow[]): SweepRow[] {
  return [...rows].sort((a, b) => compareHeadlines(a, b));
}

const cell = (v: unknown) => v !== null && typeof v === "object" ? JSON.stringify(v) : fmt(v);

/** The comparison table as aligned text. */
export function renderSweepTable(rows: SweepRow[], axes: SweepAxis[]): string {
  const head = [
    "run",
    ...axes.map((a) => a.path),
    "test loss",
    "category acc",
    "best val loss",
    "status",
  ];
  const body = rows.map((r) => [
    r.name,
    ...axes.map((a) => cell(r.values[a.path])),
    fmt(r.test_loss ?? undefined),
    fmt(r.category_accuracy ?? undefined),
    fmt(r.best_val_loss ?? undefined),
    r.status,
  ]);
  return textTable([head, ...body]);
}
