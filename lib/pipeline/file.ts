/**
 * Pipeline files: YAML text -> a validated {@link PipelineSpec}, with `--set`
 * overrides applied before validation so they are checked exactly like the file.
 *
 * ```yaml
 * name: train
 * seed: 1234
 * steps:
 *   scan:
 *     job: scan
 *     inputs: { audio: synth }   # slot -> earlier step
 *     params: { min_duration_s: 0.05 }
 * ```
 *
 * @module
 */
import { join } from "./path.ts";
import { sha256Hex } from "../artifacts/hash.ts";
import { UserError } from "../errors/mod.ts";
import { issuesToError } from "./issues.ts";

/** One step as written in the file (job parameters not yet validated). */
export interface StepSpec {
  job: string;
  /** Slot -> name of the step whose output feeds it. */
  inputs: Record<string, string>;
  /** Raw parameters; validated later against the job's schema. */
  params: Record<string, unknown>;
}

/** A pipeline file after YAML parsing, overrides and schema validation. */
export interface PipelineSpec {
  name: string;
  seed: number;
  /** Steps in file order. */
  steps: Record<string, StepSpec>;
  /** The file for messages (as the user named it). */
  file: string;
  /** The YAML text as read. */
  text: string;
  /** The `--set` overrides applied, as given. */
  overrides: string[];
  /** Full field path -> the override that set it, for error messages. */
  overridden: Map<string, string>;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The file's schema, built on first use: zod loads only when a file must be validated. */
async function schemas() {
  const { z } = await import("zod");
  const StepSchema = z.strictObject({
    job: z.string().regex(NAME_RE),
    inputs: z.record(z.string().regex(NAME_RE), z.string()).default({}),
    params: z.record(z.string(), z.unknown()).default({}),
  });
  const PipelineSchema = z.strictObject({
    name: z.string().regex(NAME_RE),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    steps: z.record(z.string().regex(NAME_RE), StepSchema).refine(
      (s) => Object.keys(s).length > 0,
      { message: "at least one step" },
    ),
  });
  const knownKeys: Record<number, string[]> = {
    0: Object.keys(PipelineSchema.shape),
    2: Object.keys(StepSchema.shape),
  };
  return { PipelineSchema, knownKeys };
}

/** One parsed `--set path=value` override. */
export interface Override {
  /** As the user wrote it. */
  text: string;
  /** Path into the raw pipeline document, e.g. `["steps", "tokenize", "params", "codebook_size"]`. */
  path: string[];
  value: unknown;
}

/**
 * Parses `--set` text: `seed=7`, `name=x`, or `STEP.PARAM[.SUB…]=VALUE`; the
 * value is read as a YAML scalar or flow value (`256`, `true`, `[1, 2]`, `abc`).
 * Plain scalars are read without loading the YAML parser.
 */
export async function parseOverride(text: string, file: string): Promise<Override> {
  const eq = text.indexOf("=");
  const where = `--set ${text}`;
  if (eq <= 0) {
    throw new UserError(`bad override "${where}"`, {
      file,
      expected: "--set STEP.PARAM=VALUE, --set seed=N or --set name=NAME",
      found: text,
    });
  }
  const lhs = text.slice(0, eq).trim();
  const rhs = text.slice(eq + 1);
  let value: unknown;
  try {
    const plain = plainScalar(rhs);
    value = plain ? plain.v : (await import("yaml")).parse(rhs);
  } catch (e) {
    throw new UserError(`the value of "${where}" is not valid YAML`, {
      file,
      expected: "a YAML scalar or flow value, e.g. 256, true, abc, [1, 2], {a: 1}",
      found: rhs,
      cause: e,
    });
  }
  const parts = lhs.split(".");
  if (parts.some((p) => p === "")) {
    throw new UserError(`bad override path in "${where}"`, {
      file,
      expected: "STEP.PARAM, seed or name",
      found: lhs,
    });
  }
  if (parts.length === 1) {
    if (parts[0] !== "seed" && parts[0] !== "name") {
      throw new UserError(`bad override path in "${where}"`, {
        file,
        expected: "seed, name or STEP.PARAM",
        found: lhs,
      });
    }
    return { text, path: parts, value };
  }
  return { text, path: ["steps", parts[0], "params", ...parts.slice(1)], value };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function applyOverride(doc: Record<string, unknown>, o: Override, file: string): void {
  if (o.path[0] === "steps") {
    const steps = isRecord(doc.steps) ? doc.steps : {};
    const step = o.path[1];
    if (!isRecord(steps[step])) {
      throw new UserError(`--set ${o.text}: the pipeline has no step "${step}"`, {
        file,
        field: `steps.${step}`,
        expected: `one of the steps ${Object.keys(steps).join(", ") || "(none)"}`,
        found: step,
      });
    }
    const spec = steps[step] as Record<string, unknown>;
    if (spec.params === undefined || spec.params === null) spec.params = {};
  }
  let node: Record<string, unknown> = doc;
  for (let i = 0; i < o.path.length - 1; i++) {
    const k = o.path[i];
    if (!isRecord(node[k])) {
      if (node[k] !== undefined && node[k] !== null) {
        throw new UserError(
          `--set ${o.text}: ${o.path.slice(0, i + 1).join(".")} is not a mapping`,
          {
            file,
            field: o.path.slice(0, i + 1).join("."),
            expected: "a mapping to set a key in",
            found: JSON.stringify(node[k]),
          },
        );
      }
      node[k] = {};
    }
    node = node[k] as Record<string, unknown>;
  }
  node[o.path[o.path.length - 1]] = o.value;
}

/**
 * The value of a plain YAML scalar that needs no YAML parser (integers, simple
 * decimals, true/false, plain words), wrapped so `null` is distinguishable; else undefined.
 */
function plainScalar(text: string): { v: unknown } | undefined {
  const t = text.trim();
  if (/^-?(0|[1-9][0-9]{0,14})$/.test(t)) return { v: Number(t) };
  if (/^-?(0|[1-9][0-9]{0,14})\.[0-9]{1,15}$/.test(t)) return { v: Number(t) };
  if (t === "true" || t === "false") return { v: t === "true" };
  if (
    /^[A-Za-z_/][A-Za-z0-9_./-]*$/.test(t) &&
    !/^(null|Null|NULL|true|True|TRUE|false|False|FALSE|y|n|yes|no|on|off)$/.test(t)
  ) return { v: t };
  return undefined;
}

/** True when `v` survives a JSON round trip unchanged (plain objects, arrays, finite numbers…). */
export function isPlainJson(v: unknown): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v) && !Object.is(v, -0);
  if (Array.isArray(v)) return v.every(isPlainJson);
  if (typeof v === "object") {
    return Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(isPlainJson);
  }
  return false;
}

/**
 * Throws a clear `UserError` when `path` exists but is not a file (a folder,
 * a device): "not found" would mislead. Returns quietly when nothing is there
 * (the caller may look elsewhere, e.g. in `pipelines/`) or when it is a file.
 */
export function checkPipelinePath(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return;
  }
  if (info.isFile) return;
  if (info.isDirectory) {
    let inside: string[] = [];
    try {
      inside = [...Deno.readDirSync(path)].filter((e) => e.isFile && /\.ya?ml$/.test(e.name))
        .map((e) => e.name).sort();
    } catch { /* unreadable: no suggestions */ }
    throw new UserError(`${path} is a folder, expected a YAML file`, {
      file: path,
      expected: "a pipeline YAML file, e.g. pipelines/train.yaml",
      found: "a folder",
      hint: inside.length
        ? `name one of the YAML files in it: ${
          inside.slice(0, 5).map((n) => join(path, n)).join(", ")
        }`
        : undefined,
    });
  }
  throw new UserError(`${path} is not a regular file, expected a YAML file`, {
    file: path,
    expected: "a pipeline YAML file, e.g. pipelines/train.yaml",
    found: "a special file (device, socket or pipe)",
  });
}

/** The most alias nodes a pipeline file may expand (the yaml package's guard against alias bombs). */
const MAX_YAML_ALIASES = 100;

/**
 * Parses YAML text, reporting syntax errors with line and column. With
 * `cacheDir`, the parsed document is cached by the text's SHA-256 as JSON
 * (when it is plain JSON data), so a cached re-run need not load the YAML parser.
 */
export async function parseYaml(text: string, file: string, cacheDir?: string): Promise<unknown> {
  const cacheFile = cacheDir ? join(cacheDir, `${await sha256Hex(text)}.json`) : undefined;
  if (cacheFile) {
    try {
      // Sync reads on the cached path: an async op is a thread hop, costly on a loaded machine.
      return JSON.parse(Deno.readTextFileSync(cacheFile));
    } catch { /* not cached yet */ }
  }
  const YAML = await import("yaml");
  let doc: unknown;
  try {
    doc = YAML.parse(text, {
      prettyErrors: true,
      uniqueKeys: true,
      maxAliasCount: MAX_YAML_ALIASES,
    });
  } catch (e) {
    // The yaml package throws a ReferenceError (not a YAMLError) when aliases expand too far.
    if (e instanceof ReferenceError && /alias/i.test(e.message)) {
      throw new UserError(`the YAML expands its aliases too far`, {
        file,
        expected: `aliases (*name) that expand at most ${MAX_YAML_ALIASES} times in all`,
        found: "aliases of aliases that expand exponentially (a billion-laughs document)",
        hint: "write the values out instead of nesting aliases of aliases",
        cause: e,
      });
    }
    if (e instanceof YAML.YAMLError) {
      const pos = e.linePos?.[0];
      const at = pos ? `line ${pos.line}, column ${pos.col}` : "unknown position";
      const first = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      throw new UserError(`YAML syntax error at ${at}: ${first}`, {
        file: pos ? `${file}:${pos.line}:${pos.col}` : file,
        expected: "a YAML mapping with name, seed and steps",
        found: e.message.split("\n").slice(1).join("\n").replace(/^\n+/, "").trimEnd() || undefined,
        cause: e,
      });
    }
    throw e;
  }
  if (cacheFile && isPlainJson(doc)) {
    try {
      await Deno.mkdir(cacheDir!, { recursive: true });
      const tmp = `${cacheFile}.${Deno.pid}.tmp`;
      await Deno.writeTextFile(tmp, JSON.stringify(doc));
      await Deno.rename(tmp, cacheFile);
    } catch { /* the cache is an optimisation only */ }
  }
  return doc;
}

/** A parsed pipeline document with overrides applied, not yet validated. */
export interface PipelineDoc {
  /** The YAML document with the overrides applied (any shape until validated). */
  doc: unknown;
  /** Full field path -> note naming the override that set it. */
  overridden: Map<string, string>;
}

/** Parses YAML text (through the cache in `yamlCacheDir`, if given) and applies `--set` overrides. */
export async function readPipelineDoc(
  text: string,
  file: string,
  overrides: string[] = [],
  yamlCacheDir?: string,
): Promise<PipelineDoc> {
  const doc = await parseYaml(text, file, yamlCacheDir);
  const parsedOverrides = await Promise.all(overrides.map((o) => parseOverride(o, file)));
  const overridden = new Map<string, string>();
  if (isRecord(doc)) {
    for (const o of parsedOverrides) {
      applyOverride(doc, o, file);
      overridden.set(o.path.join("."), `set by --set ${o.text}`);
    }
  }
  return { doc, overridden };
}

/** Validates a document from {@link readPipelineDoc} against the pipeline file schema. */
export async function validatePipelineDoc(
  { doc, overridden }: PipelineDoc,
  text: string,
  file: string,
  overrides: string[] = [],
): Promise<PipelineSpec> {
  const noteFor = (field: string) => {
    for (const [p, note] of overridden) {
      if (field === p || field.startsWith(p + ".") || field.startsWith(p + "[")) return note;
    }
    return undefined;
  };
  const { PipelineSchema, knownKeys } = await schemas();
  const r = PipelineSchema.safeParse(doc, { reportInput: true });
  if (!r.success) {
    const issue = r.error.issues[0];
    const step = issue.path[0] === "steps" && typeof issue.path[1] === "string"
      ? issue.path[1]
      : undefined;
    throw issuesToError(r.error.issues, {
      file,
      step,
      noteFor,
      knownKeys: (path) => knownKeys[path.length],
    });
  }
  return { ...r.data, file, text, overrides, overridden };
}

/**
 * Parses and validates pipeline text (not the job parameters: those need the
 * jobs and are checked by the planner).
 */
export async function parsePipelineText(
  text: string,
  file: string,
  overrides: string[] = [],
  yamlCacheDir?: string,
): Promise<PipelineSpec> {
  const doc = await readPipelineDoc(text, file, overrides, yamlCacheDir);
  return await validatePipelineDoc(doc, text, file, overrides);
}
