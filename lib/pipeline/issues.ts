/**
 * Turns zod issues into `UserError`s that name the file, the step, the field
 * path, what was expected and what was found.
 *
 * @module
 */
import type { z } from "zod";
import { UserError } from "../errors/mod.ts";

/** Renders a field path as `steps.tokenize.params.codebook_size` (array indices as `[i]`). */
export function fieldPath(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else s += s ? `.${String(p)}` : String(p);
  }
  return s;
}

/** A short rendering of a found value for messages (YAML-ish, truncated). */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  if (value === null) return "null";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number") {
    return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
  }
  if (typeof value === "boolean") return `the boolean ${value}`;
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text.length > 80) text = text.slice(0, 77) + "...";
  return Array.isArray(value) ? `the list ${text}` : `the mapping ${text}`;
}

const TYPE_NAMES: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "a boolean (true or false)",
  object: "a mapping",
  record: "a mapping",
  array: "a list",
  bigint: "an integer",
  null: "null",
};

function bound(kind: "min" | "max", issue: Record<string, unknown>): string {
  const n = issue[kind === "min" ? "minimum" : "maximum"];
  const incl = issue.inclusive !== false;
  const op = kind === "min" ? (incl ? ">=" : ">") : (incl ? "<=" : "<");
  switch (issue.origin) {
    case "string":
      return `a string of ${kind === "min" ? "at least" : "at most"} ${n} characters`;
    case "array":
    case "set":
      return `a list of ${kind === "min" ? "at least" : "at most"} ${n} items`;
    default:
      return `a number ${op} ${n}`;
  }
}

/** Where and how to report issues: the file, a prefix for their paths, and the step. */
export interface IssueContext {
  file: string;
  /** Prepended to each issue's path, e.g. `["steps", "tokenize", "params"]`. */
  prefix?: PropertyKey[];
  step?: string;
  /** Returns a note (e.g. "set by --set x=1") for a full field path, when an override put it there. */
  noteFor?(field: string): string | undefined;
  /** Known keys of the object at a path, to list in "unknown key" errors. */
  knownKeys?(path: readonly PropertyKey[]): string[] | undefined;
}

function oneIssue(issue: z.core.$ZodIssue, ctx: IssueContext): UserError {
  const raw = issue as unknown as Record<string, unknown>;
  let path = [...(ctx.prefix ?? []), ...issue.path];
  const input = raw.input;
  let message = issue.message;
  let expected: string | undefined;
  let found: string | undefined = describeValue(input);
  switch (issue.code) {
    case "invalid_type":
      expected = TYPE_NAMES[String(raw.expected)] ?? String(raw.expected);
      message = `wrong type`;
      break;
    case "too_small":
      expected = bound("min", raw);
      message = "value too small";
      break;
    case "too_big":
      expected = bound("max", raw);
      message = "value too large";
      break;
    case "invalid_value":
      expected = `one of ${(raw.values as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
      message = "value not allowed";
      break;
    case "unrecognized_keys": {
      const keys = raw.keys as string[];
      const parent = path;
      path = [...path, keys[0]];
      message = `unknown key${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")}`;
      const known = ctx.knownKeys?.(parent.slice((ctx.prefix ?? []).length));
      expected = known ? `only the keys ${known.join(", ")}` : "no other keys";
      found = keys.join(", ");
      break;
    }
    case "invalid_format":
      expected = `a string in ${String(raw.format)} format${
        raw.pattern ? ` (${raw.pattern})` : ""
      }`;
      message = "badly formed string";
      break;
    case "not_multiple_of":
      expected = `a multiple of ${raw.divisor}`;
      message = "value not allowed";
      break;
    default:
      expected = issue.message;
      message = "invalid value";
  }
  const field = fieldPath(path);
  const note = ctx.noteFor?.(field);
  if (note) message += ` (${note})`;
  return new UserError(message, { file: ctx.file, step: ctx.step, field, expected, found });
}

/** One `UserError` for a failed parse: the first issue in full, the others listed in the hint. */
export function issuesToError(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): UserError {
  const errors = issues.map((i) => oneIssue(i, ctx));
  const first = errors[0];
  if (errors.length === 1) return first;
  const rest = errors.slice(1).map((e) =>
    `${e.location.field}: ${e.message}; expected ${e.expected}, found ${e.found}`
  );
  return new UserError(first.message, {
    file: first.location.file,
    step: first.location.step,
    field: first.location.field,
    expected: first.expected,
    found: first.found,
    hint: `${rest.length} more problem${rest.length > 1 ? "s" : ""}:\n    ${rest.join("\n    ")}`,
  });
}
