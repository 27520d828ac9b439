/**
 * Diffing two experiments: two runs (step by step) or two artifacts of one
 * job. Says which steps differ and why, the parameters (dotted) and metrics
 * that changed, and looks inside the artifacts that matter: trained weights
 * (per tensor), tokenizers (vocabulary, categories, codebook, reconstruction
 * error) and scanned data (files added, removed, changed; category counts).
 *
 * @module
 */
import { join } from "node:path";
import { describeChange } from "../pipeline/runner.ts";
import type { StepIdentity } from "../pipeline/plan.ts";
import type { FlatMetrics } from "../pipeline/metrics.ts";
import { readFlatMetrics } from "../pipeline/metrics.ts";
import { diffMetrics, type MetricChange } from "./compare.ts";
import { removedArtifactNote, runMetrics, type StoredRun } from "./runs.ts";
import { readSafetensors } from "../model/safetensors.ts";

/** Nested parameters as `a.b.c` -> value (arrays are values). */
export function flattenParams(p: unknown, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (p === null || typeof p !== "object" || Array.isArray(p)) {
    if (prefix) out[prefix] = p;
    return out;
  }
  for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
    Object.assign(out, flattenParams(v, prefix ? `${prefix}.${k}` : k));
  }
  return out;
}

/** One step in both experiments. */
export interface StepDiff {
  step: string;
  job: string;
  a?: string;
  b?: string;
  /** Same artifact key in both. */
  shared: boolean;
  /** Why the keys differ ("parameters changed (lr: …)", "input changed (data)"), or where the step is missing. */
  why?: string;
}

/** A parameter in both experiments. */
export interface ParamChange {
  /** `step.dotted.name`. */
  name: string;
  a: unknown;
  b: unknown;
}

/** One tensor of two weight files. */
export interface TensorDiff {
  name: string;
  shapeA?: number[];
  shapeB?: number[];
  /** max |a - b| (same shape only). */
  max_abs_diff?: number;
  /** ||a - b|| / ||a|| (same shape only). */
  relative_l2?: number;
}

/** Two tokenizers. */
export interface TokenizerDiff {
  kind: [unknown, unknown];
  codebook_size: [unknown, unknown];
  vocab_size: [number, number];
  categories_added: string[];
  categories_removed: string[];
  reconstruction_lsd_db: [unknown, unknown];
}

/** Two scans of audio. */
export interface DataDiff {
  files: [number, number];
  added: string[];
  removed: string[];
  /** Same path, other bytes. */
  changed: string[];
  categories: { name: string; a: number; b: number }[];
}

/**
 * An artifact of one side whose contents could not be compared: its run
 * record names it, but it is no longer in the store (removed by gc).
 */
export interface RemovedArtifact {
  step: string;
  job: string;
  side: "A" | "B";
  key: string;
  /** What to say and do: `artifact removed (gc); \`deno task pipeline --rerun RECORD\` rebuilds it`. */
  note: string;
}

/** Everything {@link diffRuns} and {@link diffArtifacts} find. */
export interface ExperimentDiff {
  a: string;
  b: string;
  steps: StepDiff[];
  params: ParamChange[];
  metrics: MetricChange[];
  /** By step name (train steps whose keys differ). */
  models: Record<string, TensorDiff[]>;
  tokenizers: Record<string, TokenizerDiff>;
  data: Record<string, DataDiff>;
  /** Artifacts of differing steps that are gone, so their contents are not compared. */
  removed: RemovedArtifact[];
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return undefined;
  }
}

/** Per tensor of two safetensors files: shape changes, max absolute and relative L2 difference. */
export async function diffWeights(fileA: string, fileB: string): Promise<TensorDiff[]> {
  const a = readSafetensors(await Deno.readFile(fileA), { file: fileA }).tensors;
  const b = readSafetensors(await Deno.readFile(fileB), { file: fileB }).tensors;
  const out: TensorDiff[] = [];
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const ta = a.get(name), tb = b.get(name);
    const d: TensorDiff = { name, shapeA: ta?.shape, shapeB: tb?.shape };
    if (ta && tb && ta.shape.join() === tb.shape.join()) {
      let max = 0, diff2 = 0, norm2 = 0;
      for (let i = 0; i < ta.data.length; i++) {
        const x = ta.data[i] - tb.data[i];
        max = Math.max(max, Math.abs(x));
        diff2 += x * x;
        norm2 += ta.data[i] * ta.data[i];
      }
      d.max_abs_diff = max;
      d.relative_l2 = norm2 > 0 ? Math.sqrt(diff2 / norm2) : diff2 > 0 ? Infinity : 0;
    }
    out.push(d);
  }
  return out;
}

interface Vocab {
  tokens: string[];
  categories: string[];
}

/** Two tokenize artifacts: kind, codebook size, vocabulary and categories, reconstruction error. */
export async function diffTokenizers(dirA: string, dirB: string): Promise<TokenizerDiff> {
  const [ta, tb] = await Promise.all(
    [dirA, dirB].map((d) => readJson<Record<string, unknown>>(join(d, "tokenizer.json"))),
  );
  const [va, vb] = await Promise.all(
    [dirA, dirB].map((d) => readJson<Vocab>(join(d, "vocab.json"))),
  );
  const [ma, mb] = [readFlatMetrics(dirA), readFlatMetrics(dirB)];
  const ca = new Set(va?.categories ?? []), cb = new Set(vb?.categories ?? []);
  return {
    kind: [ta?.kind, tb?.kind],
    codebook_size: [ta?.codebook_size, tb?.codebook_size],
    vocab_size: [va?.tokens.length ?? 0, vb?.tokens.length ?? 0],
    categories_added: [...cb].filter((c) => !ca.has(c)),
    categories_removed: [...ca].filter((c) => !cb.has(c)),
    reconstruction_lsd_db: [ma.reconstruction_lsd_db, mb.reconstruction_lsd_db],
  };
}

interface Listing {
  files: { path: string; sha256: string; category: string }[];
  categories: Record<string, number>;
}

/** Two scan artifacts: files added, removed and changed (by path and SHA-256), and category counts. */
export async function diffData(dirA: string, dirB: string): Promise<DataDiff> {
  const la = await readJson<Listing>(join(dirA, "files.json"));
  const lb = await readJson<Listing>(join(dirB, "files.json"));
  const fa = new Map((la?.files ?? []).map((f) => [f.path, f.sha256]));
  const fb = new Map((lb?.files ?? []).map((f) => [f.path, f.sha256]));
  const names = [
    ...new Set([...Object.keys(la?.categories ?? {}), ...Object.keys(lb?.categories ?? {})]),
  ].sort();
  return {
    files: [fa.size, fb.size],
    added: [...fb.keys()].filter((p) => !fa.has(p)).sort(),
    removed: [...fa.keys()].filter((p) => !fb.has(p)).sort(),
    changed: [...fa.keys()].filter((p) => fb.has(p) && fb.get(p) !== fa.get(p)).sort(),
    categories: names.map((name) => ({
      name,
      a: la?.categories?.[name] ?? 0,
      b: lb?.categories?.[name] ?? 0,
    })),
  };
}

/** The parameter changes of one step (`all`: equal ones too). */
function paramChanges(step: string, a: unknown, b: unknown, all: boolean): ParamChange[] {
  const fa = flattenParams(a), fb = flattenParams(b);
  const out: ParamChange[] = [];
  for (const k of [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort()) {
    if (all || JSON.stringify(fa[k]) !== JSON.stringify(fb[k])) {
      out.push({ name: `${step}.${k}`, a: fa[k], b: fb[k] });
    }
  }
  return out;
}

/** The jobs whose artifacts {@link diffRuns} looks inside. */
const LOOKED_INTO = new Set(["train", "tokenize", "scan"]);

const exists = async (p: string) => await Deno.stat(p).then(() => true, () => false);

/** Looks inside two artifacts of `job` that differ: weights, tokenizer or data. */
async function inside(
  d: ExperimentDiff,
  step: string,
  job: string,
  dirA: string,
  dirB: string,
): Promise<void> {
  // Both sides, or neither: a file missing on one side is no reason to report everything removed.
  const both = async (name: string) =>
    (await exists(join(dirA, name))) && (await exists(join(dirB, name)));
  if (job === "train") {
    if (await both("best.safetensors")) {
      d.models[step] = await diffWeights(
        join(dirA, "best.safetensors"),
        join(dirB, "best.safetensors"),
      );
    }
  } else if (job === "tokenize") {
    if (await both("vocab.json")) d.tokenizers[step] = await diffTokenizers(dirA, dirB);
  } else if (job === "scan") {
    if (await both("files.json")) d.data[step] = await diffData(dirA, dirB);
  }
}

/** Diffs two runs step by step (steps matched by name). */
export async function diffRuns(
  a: StoredRun,
  b: StoredRun,
  storeDir: string,
  options: { all?: boolean } = {},
): Promise<ExperimentDiff> {
  const all = options.all ?? false;
  const d: ExperimentDiff = {
    a: a.record.name ?? a.record.id,
    b: b.record.name ?? b.record.id,
    steps: [],
    params: [],
    metrics: diffMetrics(runMetrics(a.record, storeDir), runMetrics(b.record, storeDir), all),
    models: {},
    tokenizers: {},
    data: {},
    removed: [],
  };
  const names = [...new Set([...Object.keys(a.record.steps), ...Object.keys(b.record.steps)])];
  for (const step of names) {
    const sa = a.record.steps[step], sb = b.record.steps[step];
    const done = (s?: typeof sa) => s && (s.status === "ran" || s.status === "cached");
    const job = (sa ?? sb)!.job;
    const sd: StepDiff = { step, job, a: sa?.key, b: sb?.key, shared: false };
    if (!sa || !sb) sd.why = `only in ${sa ? "A" : "B"}`;
    else if (sa.key && sa.key === sb.key) sd.shared = true;
    else if (sa.identity && sb.identity) sd.why = describeChange(sa.identity, sb.identity);
    else sd.why = "not run in both";
    d.steps.push(sd);
    d.params.push(...paramChanges(step, sa?.identity?.params, sb?.identity?.params, all));
    if (!sd.shared && done(sa) && done(sb) && sa!.key && sb!.key && LOOKED_INTO.has(job)) {
      const [dirA, dirB] = [join(storeDir, "objects", sa!.key), join(storeDir, "objects", sb!.key)];
      const gone: RemovedArtifact[] = [];
      for (
        const [side, dir, key, run] of [["A", dirA, sa!.key, a], ["B", dirB, sb!.key, b]] as const
      ) {
        if (!(await exists(join(dir, "manifest.json")))) {
          gone.push({ step, job, side, key, note: removedArtifactNote(run.file) });
        }
      }
      if (gone.length) d.removed.push(...gone);
      else await inside(d, step, job, dirA, dirB);
    }
  }
  return d;
}

interface ManifestLike {
  key: string;
  job: string;
  job_version: string;
  code_hash: string;
  step: string;
  params: unknown;
  inputs: Record<string, string>;
  sources: Record<string, string>;
}

/** Diffs two published artifacts of the same job (by folder). */
export async function diffArtifacts(
  dirA: string,
  dirB: string,
  options: { all?: boolean } = {},
): Promise<ExperimentDiff> {
  const ma = await readJson<ManifestLike>(join(dirA, "manifest.json"));
  const mb = await readJson<ManifestLike>(join(dirB, "manifest.json"));
  if (!ma || !mb) throw new Error("diffArtifacts: both folders need a manifest.json");
  const identity = (m: ManifestLike): StepIdentity => ({
    job: m.job,
    version: m.job_version,
    code_hash: m.code_hash,
    params: m.params,
    inputs: m.inputs,
    sources: m.sources,
    seed: 0,
  } as StepIdentity);
  const step = ma.step === mb.step ? ma.step : ma.job;
  const shared = ma.key === mb.key;
  const metrics: Record<string, FlatMetrics> = { [step]: readFlatMetrics(dirA) };
  const d: ExperimentDiff = {
    a: ma.key.slice(0, 12),
    b: mb.key.slice(0, 12),
    steps: [{
      step,
      job: ma.job,
      a: ma.key,
      b: mb.key,
      shared,
      why: shared ? undefined : describeChange(identity(ma), identity(mb)).replace(
        /;? ?seed changed \([^)]*\)/,
        "",
      ),
    }],
    params: paramChanges(step, ma.params, mb.params, options.all ?? false),
    metrics: diffMetrics(metrics, { [step]: readFlatMetrics(dirB) }, options.all ?? false),
    models: {},
    tokenizers: {},
    data: {},
    removed: [],
  };
  if (!shared) await inside(d, step, ma.job, dirA, dirB);
  return d;
}
