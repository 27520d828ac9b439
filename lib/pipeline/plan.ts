/**
 * The planner: validates each step's parameters against its job, wires input
 * slots, drops slots a job does not need, prunes steps nothing consumes,
 * rejects cycles, and computes every step's key before anything runs.
 *
 * A step key is hex SHA-256 over canonical JSON of
 * `{ job, version, code_hash, params, inputs: slot -> key, sources: path -> hash }`,
 * so it is known from the inputs' keys alone and the same on every machine.
 *
 * Validated plans are cached in `<store>/cache/plans/` under a hash of the
 * document (overrides applied) and the jobs' code hashes, so a cached re-run
 * imports neither zod, the YAML parser nor any job module.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "./path.ts";
import { UserError } from "../errors/mod.ts";
import { canonicalJson, sha256Hex } from "../artifacts/hash.ts";
import type { ArtifactStore } from "../artifacts/store.ts";
import {
  isPlainJson,
  type PipelineSpec,
  readPipelineDoc,
  type StepSpec,
  validatePipelineDoc,
} from "./file.ts";
import { callerDir, REPO_ROOT } from "./paths.ts";
import { issuesToError } from "./issues.ts";
import { JobRegistry } from "./registry.ts";
import type { JobDefinition } from "./job.ts";
import { codeHash } from "./code_hash.ts";
import { SourceHasher } from "./sources.ts";

/** A step after planning. */
export interface PlannedStep {
  name: string;
  /** The job's name (`job:` in the file). */
  jobName: string;
  /** The job's version string. */
  version: string;
  /** Absolute path of the job module. */
  jobFile: string;
  /** `job.sources(params)`: paths outside the store whose content is part of the key. */
  sourcePaths: string[];
  /** Parameters after the job's schema (defaults applied). */
  params: unknown;
  /** Slot -> producing step, only the slots the job needs. */
  inputs: Record<string, string>;
  /** `job.upstream` among `inputs`: slots whose artifacts' own inputs the job reads too (absent in older plan caches). */
  upstream?: string[];
  /** False when no remaining step consumes this step's output and it was not a sink in the file. */
  active: boolean;
  /** What this step's key was computed from (active steps only). */
  identity?: StepIdentity;
  /** Hex SHA-256 step key (active steps only). */
  key?: string;
}

/** The facts hashed into a step key. */
export interface StepIdentity {
  job: string;
  version: string;
  code_hash: string;
  params: unknown;
  /** Slot -> input artifact key. */
  inputs: Record<string, string>;
  /** Source path -> content hash. */
  sources: Record<string, string>;
  /** The pipeline seed: jobs draw from it (synthetic data, the split, initial weights). */
  seed: number;
}

/** A planned pipeline: steps in a dependency order (file order among independent steps). */
export interface Plan {
  spec: PipelineSpec;
  steps: Map<string, PlannedStep>;
  /** Topological order of all steps. */
  order: string[];
}

/** Computes a step key from its identity. */
export function stepKey(identity: StepIdentity): Promise<string> {
  return sha256Hex(canonicalJson(identity));
}

function findCycle(spec: PipelineSpec): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 2) return undefined;
    if (state.get(n) === 1) return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 1);
    stack.push(n);
    for (const dep of Object.values(spec.steps[n]?.inputs ?? {})) {
      if (!(dep in spec.steps)) continue;
      const c = visit(dep);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of Object.keys(spec.steps)) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

/**
 * Checks a step's wiring against its job's `slots` (when the job declares
 * them): every wired slot is one the job can take, and is fed by a step that
 * runs a job whose artifact that slot reads.
 */
function checkSlots(spec: PipelineSpec, name: string, job: JobDefinition): void {
  const slots = job.slots;
  if (!slots) return;
  const file = spec.file;
  const describe = (slot: string) => `${slot} (from a ${slots[slot].join(" or ")} step)`;
  for (const [slot, dep] of Object.entries(spec.steps[name].inputs)) {
    const field = `steps.${name}.inputs.${slot}`;
    if (!Object.hasOwn(slots, slot)) {
      const known = Object.keys(slots);
      throw new UserError(`the job "${job.name}" has no input slot "${slot}"`, {
        file,
        step: name,
        field,
        expected: known.length
          ? `one of the input slots of "${job.name}": ${known.map(describe).join(", ")}`
          : `no inputs: the job "${job.name}" takes none`,
        found: `inputs: { ${slot}: ${dep} }`,
      });
    }
    const depJob = spec.steps[dep].job;
    if (!slots[slot].includes(depJob)) {
      throw new UserError(`input "${slot}" is wired to a step of the wrong kind`, {
        file,
        step: name,
        field,
        expected: `a step running the job ${
          slots[slot].map((j) => `"${j}"`).join(" or ")
        } (slot "${slot}" of "${job.name}" reads its artifact)`,
        found: `step "${dep}", which runs the job "${depJob}"`,
      });
    }
  }
}

/**
 * Validates the steps against their jobs (importing them), wires and prunes;
 * keys are left to {@link computeKeys}.
 */
export async function resolveSteps(spec: PipelineSpec, registry: JobRegistry): Promise<Plan> {
  const file = spec.file;
  const names = Object.keys(spec.steps);
  // Wiring to unknown steps and cycles are file errors, whatever the jobs need.
  for (const [name, s] of Object.entries(spec.steps)) {
    for (const [slot, dep] of Object.entries(s.inputs)) {
      if (!(dep in spec.steps)) {
        throw new UserError(`input "${slot}" is wired to an unknown step`, {
          file,
          step: name,
          field: `steps.${name}.inputs.${slot}`,
          expected: `one of the steps ${names.filter((n) => n !== name).join(", ") || "(none)"}`,
          found: JSON.stringify(dep),
        });
      }
    }
  }
  const cycle = findCycle(spec);
  if (cycle) {
    throw new UserError(`dependency cycle: ${cycle.join(" -> ")}`, {
      file,
      step: cycle[0],
      field: `steps.${cycle[0]}.inputs`,
      expected: "steps that depend only on earlier steps (no cycles)",
      found: cycle.join(" -> "),
    });
  }
  const loaded = await Promise.all(
    names.map((n) => registry.load(spec.steps[n].job, { file, step: n, field: `steps.${n}.job` })),
  );
  const steps = new Map<string, PlannedStep>();
  names.forEach((name, i) => {
    const { job, file: jobFile } = loaded[i];
    const s = spec.steps[name];
    checkSlots(spec, name, job);
    const r = job.params.safeParse(s.params, { reportInput: true });
    if (!r.success) {
      throw issuesToError(r.error.issues, {
        file,
        step: name,
        prefix: ["steps", name, "params"],
        noteFor: (field) => overrideNote(spec.overridden, field),
        knownKeys: (path) => {
          let schema: unknown = job.params;
          for (const k of path) {
            const shape = (schema as { shape?: Record<string, unknown> }).shape;
            schema = shape?.[String(k)];
            while (schema && (schema as { unwrap?: () => unknown }).unwrap) {
              schema = (schema as { unwrap: () => unknown }).unwrap();
            }
          }
          const shape = (schema as { shape?: Record<string, unknown> } | undefined)?.shape;
          return shape ? Object.keys(shape) : undefined;
        },
      });
    }
    const needed = job.inputs(r.data);
    const inputs: Record<string, string> = {};
    for (const slot of needed) {
      const dep = s.inputs[slot];
      if (dep === undefined) {
        throw new UserError(`missing input "${slot}"`, {
          file,
          step: name,
          field: `steps.${name}.inputs.${slot}`,
          expected: `the job "${job.name}" needs input slot${needed.length > 1 ? "s" : ""} ${
            needed.join(", ")
          } wired to earlier steps, e.g. inputs: { ${slot}: STEP }`,
          found: Object.keys(s.inputs).length
            ? `inputs: { ${Object.entries(s.inputs).map(([k, v]) => `${k}: ${v}`).join(", ")} }`
            : "no inputs",
        });
      }
      inputs[slot] = dep;
    }
    steps.set(name, {
      name,
      jobName: job.name,
      version: job.version,
      jobFile,
      sourcePaths: job.sources?.(r.data) ?? [],
      params: r.data,
      inputs,
      upstream: job.upstream?.filter((slot) => slot in inputs) ?? [],
      active: false,
    });
  });
  // Sinks of the file stay; everything else stays only if a remaining step consumes it.
  const consumedInFile = new Set(Object.values(spec.steps).flatMap((s) => Object.values(s.inputs)));
  const mark = (n: string): void => {
    const st = steps.get(n)!;
    if (st.active) return;
    st.active = true;
    for (const dep of Object.values(st.inputs)) mark(dep);
  };
  for (const n of names) if (!consumedInFile.has(n)) mark(n);

  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string): void => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const dep of Object.values(spec.steps[n].inputs)) visit(dep);
    order.push(n);
  };
  names.forEach(visit);
  return { spec, steps, order };
}

/** The dotted path of the first string parameter equal to `value` (`root`, `onnx.encoder`). */
function paramPathOf(params: unknown, value: string, prefix = ""): string | undefined {
  if (params === value) return prefix || undefined;
  if (params === null || typeof params !== "object") return undefined;
  for (const [k, v] of Object.entries(params as Record<string, unknown>)) {
    const sub = Array.isArray(params) ? `${prefix}[${k}]` : prefix ? `${prefix}.${k}` : k;
    const found = paramPathOf(v, value, sub);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The note ("set by --set x=1") of the override that set `field` or a mapping above it. */
function overrideNote(overridden: Map<string, string>, field: string): string | undefined {
  for (const [p, note] of overridden) {
    if (field === p || field.startsWith(p + ".") || field.startsWith(p + "[")) return note;
  }
  return undefined;
}

/**
 * `found` and `hint` for a source path that does not exist. A relative one is
 * read from the current folder, the project's under `deno task`, not from the
 * folder the command was typed in as other command-line paths are: say which
 * absolute path was tried, and point at the caller's copy when there is one.
 */
function missingSourceFound(path: string): { found: string; hint?: string } {
  if (isAbsolute(path)) return { found: path };
  const tried = resolve(path);
  const theirs = resolve(callerDir(), path);
  let exists = false;
  try {
    exists = theirs !== tried && Deno.statSync(theirs) !== undefined;
  } catch {
    // not there either
  }
  return {
    found: `${path} (read as ${tried})`,
    hint: `relative paths in pipeline files and --set values are read from the project's ` +
      `folder (${Deno.cwd()}), not from the folder the command was typed in; give the ` +
      `absolute path` + (exists ? ` (${theirs} exists)` : ""),
  };
}

/** Hashes sources and code and computes every active step's key, in dependency order. */
export async function computeKeys(
  plan: Plan,
  registry: JobRegistry,
  store: ArtifactStore,
): Promise<void> {
  const { spec, steps, order } = plan;
  const file = spec.file;
  const hasher = new SourceHasher(join(store.localDir, "cache", "source-hashes.json"));
  for (const n of order) {
    const st = steps.get(n)!;
    if (!st.active) continue;
    const sources: Record<string, string> = {};
    for (const path of st.sourcePaths) {
      try {
        sources[path] = await hasher.hash(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          const param = paramPathOf(st.params, path);
          const field = param === undefined ? undefined : `steps.${n}.params.${param}`;
          const note = field === undefined ? undefined : overrideNote(spec.overridden, field);
          throw new UserError(`source path does not exist${note ? ` (${note})` : ""}`, {
            file,
            step: n,
            field,
            expected: "an existing file or folder",
            ...missingSourceFound(path),
          });
        }
        throw e;
      }
    }
    const inputKeys: Record<string, string> = {};
    for (const [slot, dep] of Object.entries(st.inputs)) inputKeys[slot] = steps.get(dep)!.key!;
    st.identity = {
      job: st.jobName,
      version: st.version,
      code_hash: await codeHash(st.jobFile, dirname(registry.dir)),
      params: st.params,
      inputs: inputKeys,
      sources,
      seed: spec.seed,
    };
    st.key = await stepKey(st.identity);
  }
  await hasher.save();
}

/** The planned steps as stored in the plan cache (everything but keys). */
interface CachedPlan {
  name: string;
  seed: number;
  steps: Record<string, StepSpec>;
  planned: Omit<PlannedStep, "identity" | "key">[];
  order: string[];
}

async function fileSha(path: string): Promise<string> {
  try {
    return await sha256Hex(Deno.readFileSync(path));
  } catch {
    return "";
  }
}

/**
 * The plan-cache key of a document: its canonical JSON (overrides applied),
 * the jobs folder, each named job's code hash, the Deno version and
 * `deno.json` (which pins npm versions). Undefined when the document is not
 * shaped well enough to name its jobs (it then goes through full validation).
 */
async function planCacheKey(doc: unknown, registry: JobRegistry): Promise<string | undefined> {
  const steps = (doc as { steps?: unknown })?.steps;
  if (!steps || typeof steps !== "object") return undefined;
  const hashes = new Map<string, Promise<string>>();
  for (const s of Object.values(steps as Record<string, unknown>)) {
    const job = (s as { job?: unknown })?.job;
    if (typeof job !== "string" || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(job)) return undefined;
    if (hashes.has(job)) continue;
    const jobFile = join(registry.dir, `${job}.ts`);
    try {
      if (!Deno.statSync(jobFile).isFile) return undefined;
    } catch {
      return undefined;
    }
    hashes.set(job, codeHash(jobFile, dirname(registry.dir)));
  }
  const jobs: Record<string, string> = {};
  for (const [job, hash] of hashes) jobs[job] = await hash;
  return await sha256Hex(canonicalJson({
    format: 1,
    doc,
    jobs_dir: registry.dir,
    jobs,
    deno: Deno.version.deno,
    config: await fileSha(join(REPO_ROOT, "deno.json")),
  }));
}

/**
 * Text -> a plan with keys. A document that validated before with the same
 * job code is taken from `<store>/cache/plans/` without importing zod, the
 * YAML parser or any job module, which keeps a fully cached re-run fast.
 */
export async function planPipelineText(
  text: string,
  file: string,
  overrides: string[],
  registry: JobRegistry,
  store: ArtifactStore,
): Promise<Plan> {
  const cacheDir = join(store.localDir, "cache");
  const doc = await readPipelineDoc(text, file, overrides, join(cacheDir, "yaml"));
  const cacheKey = await planCacheKey(structuredClone(doc.doc), registry);
  const cacheFile = cacheKey ? join(cacheDir, "plans", `${cacheKey}.json`) : undefined;
  let plan: Plan | undefined;
  if (cacheFile) {
    try {
      const c: CachedPlan = JSON.parse(Deno.readTextFileSync(cacheFile));
      plan = {
        spec: {
          name: c.name,
          seed: c.seed,
          steps: c.steps,
          file,
          text,
          overrides,
          overridden: doc.overridden,
        },
        steps: new Map(c.planned.map((p) => [p.name, { ...p }])),
        order: c.order,
      };
    } catch { /* not cached */ }
  }
  if (!plan) {
    const spec = await validatePipelineDoc(doc, text, file, overrides);
    plan = await resolveSteps(spec, registry);
    const c: CachedPlan = {
      name: spec.name,
      seed: spec.seed,
      steps: spec.steps,
      planned: [...plan.steps.values()],
      order: plan.order,
    };
    // Only plans that survive JSON exactly are cached (params like Infinity would not).
    if (cacheFile && isPlainJson(c)) {
      try {
        await Deno.mkdir(dirname(cacheFile), { recursive: true });
        const tmp = `${cacheFile}.${Deno.pid}.tmp`;
        await Deno.writeTextFile(tmp, JSON.stringify(c));
        await Deno.rename(tmp, cacheFile);
      } catch { /* the cache is an optimisation only */ }
    }
  }
  await computeKeys(plan, registry, store);
  return plan;
}
