/**
 * Runs as experiments: reading the store's run records, naming a run
 * (`latest`, `latest~N`, an id or a unique prefix of one, a `--name`, or a
 * record file), and the figures a person compares runs by.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { UserError } from "../errors/mod.ts";
import { displayPath } from "../pipeline/paths.ts";
import {
  listRunFiles,
  type RunRecord,
  settleRunStatus,
  type StepRecord,
  unreadableRecordWarning,
} from "../pipeline/records.ts";
import { type FlatMetrics, readFlatMetrics } from "../pipeline/metrics.ts";

/** A run record and where it lies. */
export interface StoredRun {
  /** Absolute path of the record file. */
  file: string;
  record: RunRecord;
}

/** A file in `runs/` that is not a readable run record (truncated, not JSON, another format). */
export interface UnreadableRecord {
  /** Absolute path of the file. */
  file: string;
  /** What is wrong with it. */
  problem: string;
}

/**
 * Every run record file in the store, read: the readable ones newest first
 * (a `running` one whose process is gone as `died`), and the others.
 */
export async function readRunRecords(
  storeDir: string,
): Promise<{ runs: StoredRun[]; unreadable: UnreadableRecord[] }> {
  const dir = join(storeDir, "runs");
  const runs: StoredRun[] = [];
  const unreadable: UnreadableRecord[] = [];
  for (const f of await listRunFiles(dir)) {
    const file = join(dir, f);
    let record: RunRecord;
    try {
      record = JSON.parse(await Deno.readTextFile(file)) as RunRecord;
    } catch (e) {
      unreadable.push({ file, problem: e instanceof Error ? e.message : String(e) });
      continue;
    }
    if (record?.format === 1 && record.steps && record.pipeline) {
      runs.push({ file, record: settleRunStatus(file, record) });
    } else {
      unreadable.push({ file, problem: "not a run record (format 1 with pipeline and steps)" });
    }
  }
  return { runs, unreadable };
}

/** Record files already warned of by this process (a command may read the runs more than once). */
const warnedOf = new Set<string>();

/** Writes the warning for an unreadable record to stderr, once per file and process. */
function warnOnStderr(r: UnreadableRecord): void {
  if (warnedOf.has(r.file)) return;
  warnedOf.add(r.file);
  Deno.stderr.writeSync(new TextEncoder().encode(unreadableRecordWarning(r.file, r.problem)));
}

/**
 * Every readable run record in the store, newest first (ids start with the
 * UTC start time). Each file in `runs/` that is not a readable record is
 * left out and named through `onUnreadable` (by default a warning on stderr,
 * once per file).
 */
export async function loadRuns(
  storeDir: string,
  onUnreadable: (r: UnreadableRecord) => void = warnOnStderr,
): Promise<StoredRun[]> {
  const { runs, unreadable } = await readRunRecords(storeDir);
  unreadable.forEach(onUnreadable);
  return runs;
}

/** What to say of an artifact a run record names that is gone from the store, and how to get it back. */
export function removedArtifactNote(recordFile: string): string {
  return `artifact removed (gc); \`deno task pipeline --rerun ${
    displayPath(recordFile)
  }\` rebuilds it`;
}

/** `latest` / `latest~N`: N successful runs back from the newest successful run. */
export function parseLatest(name: string): number | undefined {
  const m = /^latest(?:~(\d+))?$/.exec(name);
  return m ? Number(m[1] ?? 0) : undefined;
}

/**
 * Finds the run `name` names: `latest` or `latest~N` (successful runs only,
 * newest first), a record file, a run id, a `--name` (the newest run with
 * it), or a unique prefix of a run id. A `UserError` says what was looked for.
 */
export async function resolveRun(
  name: string,
  storeDir: string,
  field = "RUN",
): Promise<StoredRun> {
  if (name.endsWith(".json")) {
    try {
      const file = resolve(name);
      const record = JSON.parse(await Deno.readTextFile(file)) as RunRecord;
      if (record?.format === 1 && record.steps) {
        return { file, record: settleRunStatus(file, record) };
      }
    } catch { /* not a record file: try the store */ }
  }
  const runs = await loadRuns(storeDir);
  const back = parseLatest(name);
  if (back !== undefined) {
    const ok = runs.filter((r) => r.record.status === "succeeded");
    if (ok[back]) return ok[back];
    throw new UserError(
      `no run "${name}": the store has ${ok.length} successful run${ok.length === 1 ? "" : "s"}`,
      {
        field,
        file: join(storeDir, "runs"),
        hint: "run a pipeline first (deno task pipeline train.yaml), or pass --store",
      },
    );
  }
  const exact = runs.find((r) => r.record.id === name);
  if (exact) return exact;
  const named = runs.find((r) => r.record.name === name);
  if (named) return named;
  const prefixed = runs.filter((r) => r.record.id.startsWith(name));
  if (prefixed.length === 1) return prefixed[0];
  if (prefixed.length > 1) {
    throw new UserError(`"${name}" names ${prefixed.length} runs`, {
      field,
      found: prefixed.slice(0, 5).map((r) => r.record.id).join(", "),
      hint: "give more of the run id",
    });
  }
  throw new UserError(`no run named "${name}"`, {
    field,
    expected: "latest, latest~N, a run id (or a unique prefix), a --name, or a run record file",
    hint: `runs are looked up in the store ${displayPath(storeDir)} (--store DIR); ` +
      "deno task runs lists them",
  });
}

/**
 * Each finished step's flat metrics: from the record, or (records written
 * before records carried metrics) from the artifact when it is still there.
 */
export function runMetrics(run: RunRecord, storeDir: string): Record<string, FlatMetrics> {
  const out: Record<string, FlatMetrics> = {};
  for (const [step, s] of Object.entries(run.steps)) {
    if (s.status !== "ran" && s.status !== "cached") continue;
    out[step] = s.metrics ?? (s.key ? readFlatMetrics(join(storeDir, "objects", s.key)) : {});
  }
  return out;
}

/** The first step of `job` in a run that ran or was cached. */
export function stepOfJob(
  run: RunRecord,
  job: string,
): { step: string; record: StepRecord } | undefined {
  for (const [step, record] of Object.entries(run.steps)) {
    if (record.job === job && (record.status === "ran" || record.status === "cached")) {
      return { step, record };
    }
  }
  return undefined;
}

/** The figures runs are listed and ranked by. */
export interface Headline {
  /** The evaluate step's test loss (nats/token). */
  test_loss: number | null;
  /** The evaluate step's category accuracy. */
  category_accuracy: number | null;
  /** The train step's best validation loss (when there is no evaluate step, the ranking figure). */
  best_val_loss: number | null;
}

const num = (x: unknown): number | null => typeof x === "number" && Number.isFinite(x) ? x : null;

/** {@link Headline} of a run, from the metrics of its evaluate and train steps. */
export function headline(run: RunRecord, metrics: Record<string, FlatMetrics>): Headline {
  const ev = stepOfJob(run, "evaluate");
  const tr = stepOfJob(run, "train");
  const e = ev ? metrics[ev.step] ?? {} : {};
  const t = tr ? metrics[tr.step] ?? {} : {};
  return {
    test_loss: num(e.test_loss),
    category_accuracy: num(e.category_accuracy),
    best_val_loss: num(t.best_val_loss),
  };
}

/** Sorts best first: lowest test loss, else lowest validation loss; runs without either last. */
export function compareHeadlines(a: Headline, b: Headline): number {
  const key = (h: Headline) => h.test_loss ?? h.best_val_loss ?? Infinity;
  return key(a) - key(b) || (b.category_accuracy ?? -1) - (a.category_accuracy ?? -1);
}

/** Wall seconds of a run (finished - started), or undefined while running. */
export function runDuration(run: RunRecord): number | undefined {
  if (!run.finished_at) return undefined;
  return (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
}

/** `3 cached / 7` : steps that were cache hits among the steps that ran or were cached. */
export function cacheHits(run: RunRecord): { cached: number; total: number } {
  const done = Object.values(run.steps).filter((s) =>
    s.status === "ran" || s.status === "cached" || s.status === "failed"
  );
  return { cached: done.filter((s) => s.status === "cached").length, total: done.length };
}
