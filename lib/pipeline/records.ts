/**
 * Run records: one JSON file per pipeline run under `<store>/runs/`, holding
 * the pipeline text, overrides and per-step outcome, so a run can be explained
 * (`--dry-run` reasons) and repeated exactly (`--rerun`).
 *
 * A run in which every step is cached writes no record: it would repeat the
 * record of the run that built those artifacts (which the runner names
 * instead), it would fill `runs/` with copies on every CI poll, and a store
 * that can only be read could not serve cached runs at all.
 *
 * A record is written when a run starts (`running`), rewritten as each step
 * finishes (so a run killed with SIGKILL still lists what it built), and
 * rewritten when it ends; it ends in a final state, even on a full disk (see
 * {@link finishRunRecord}), unless the process dies first. While it runs, the
 * process holds the run's lock (`locks/run-<id>.lock`, an flock the kernel
 * releases when the process dies, wherever it runs); a reader that finds a
 * `running` record whose lock is free shows it as `died`
 * ({@link settleRunStatus}) and leaves the file as it is.
 *
 * @module
 */
import { dirname, join } from "./path.ts";
import { UserError } from "../errors/mod.ts";
import { checkStorePath } from "../artifacts/faults.ts";
import type { StepIdentity } from "./plan.ts";
import type { FlatMetrics } from "./metrics.ts";

/** What happened to a step in a run. */
export type StepStatus = "ran" | "cached" | "pruned" | "failed" | "not-run";

/** One step in a run record. */
export interface StepRecord {
  job: string;
  status: StepStatus;
  /** Why it ran, was skipped or failed. */
  reason: string;
  /** Step key (absent for pruned steps). */
  key?: string;
  identity?: StepIdentity;
  started_at?: string;
  finished_at?: string;
  duration_s?: number;
  /**
   * The artifact's flat metrics (top-level scalars of its metrics.json), for
   * steps that ran or were cached: listing and diffing runs read these.
   */
  metrics?: FlatMetrics;
}

/** `runs/<timestamp>-<name>-<short>.json`. */
/** The longest run name a `--name` may give (and a sweep cuts its generated names to). */
export const MAX_RUN_NAME = 100;

export interface RunRecord {
  format: 1;
  id: string;
  /** A name given with `--name` (runs are named by it, newest first, wherever a run is taken). */
  name?: string;
  pipeline: {
    name: string;
    /** The file as named when run (repo-relative where possible). */
    file: string;
    /** Hex SHA-256 of the YAML text. */
    sha256: string;
    text: string;
  };
  overrides: string[];
  seed: number;
  /** The jobs folder, repo-relative where possible. */
  jobs_dir: string;
  options: {
    dry_run?: boolean;
    force?: string[];
    only?: string;
    until?: string;
    /** `--verify`: cached artifacts and sources were fully re-hashed. */
    verify?: boolean;
  };
  started_at: string;
  finished_at?: string;
  /**
   * `died` is never written: readers show it for a `running` record whose
   * process is gone ({@link settleRunStatus}).
   */
  status: "running" | "succeeded" | "failed" | "interrupted" | "died";
  /** The failure, formatted, when the run failed. */
  error?: string;
  steps: Record<string, StepRecord>;
  /**
   * Job name -> the files behind its code hash (repo-relative name -> hex
   * SHA-256), so a later `--rerun` can name the files that changed.
   */
  code?: Record<string, Record<string, string>>;
  /** The record this run repeated (`--rerun`). */
  rerun_of?: string;
  /** What the user was warned of (damaged artifacts set aside, code that differs). */
  warnings?: string[];
  /** Set when the record had to be shortened to fit on a full disk. */
  shortened?: string;
  /** The `--fail-if` gates and how the run met them (succeeded runs with gates). */
  gates?: { gate: string; value: number | null; passed: boolean }[];
}

/** A new record id: `<UTC timestamp>-<name>-<6 hex>`. */
export function newRunId(name: string, at: Date): string {
  const ts = at.toISOString().replace(/[:.]/g, "-");
  const rand = crypto.getRandomValues(new Uint8Array(3));
  return `${ts}-${name}-${[...rand].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Writes (or rewrites) a record atomically; returns its path. Leaves no temporary file when it fails. */
export function writeRunRecord(runsDir: string, record: RunRecord): string {
  // Sync: a small file, written once or twice per run; async ops hop threads.
  Deno.mkdirSync(runsDir, { recursive: true });
  const path = join(runsDir, `${record.id}.json`);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, JSON.stringify(record, null, 2) + "\n");
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw e;
  }
  return path;
}

/**
 * Writes a run's final record. When the atomic rewrite fails (a full disk
 * has no room for the temporary copy), the `running` record already on disk
 * is overwritten in place with a shortened final record (no step identities,
 * no code file list; the keys, statuses and error stay), which fits in the
 * space the old one holds. `problem` says what happened when even that failed.
 */
export function finishRunRecord(
  runsDir: string,
  record: RunRecord,
): { path: string; problem?: string } {
  const path = join(runsDir, `${record.id}.json`);
  let first: unknown;
  try {
    return { path: writeRunRecord(runsDir, record) };
  } catch (e) {
    first = e;
  }
  const shortened: RunRecord = {
    ...record,
    code: undefined,
    error: record.error?.slice(0, 2000),
    shortened: `written in place on a full disk (${
      first instanceof Error ? first.message : String(first)
    }): step identities, metrics and code files left out`,
    steps: Object.fromEntries(
      Object.entries(record.steps).map((
        [n, s],
      ) => [n, { ...s, identity: undefined, metrics: undefined }]),
    ),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(shortened) + "\n");
  try {
    const size = Deno.statSync(path).size;
    if (bytes.length > size) throw new Error(`the shortened record needs ${bytes.length} bytes`);
    const f = Deno.openSync(path, { write: true });
    try {
      let off = 0;
      while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
      f.truncateSync(bytes.length);
      f.syncSync();
    } finally {
      f.close();
    }
    return { path };
  } catch (e) {
    return {
      path,
      problem: `the run record ${path} could not be updated (${
        first instanceof Error ? first.message : String(first)
      }; then ${e instanceof Error ? e.message : String(e)}); it still says "running"`,
    };
  }
}

/** `<store>/locks/run-<id>.lock`, held by the process running that run. */
export function runLockPath(storeDir: string, id: string): string {
  return join(storeDir, "locks", `run-${id}.lock`);
}

/**
 * Takes the lock of run `id` (call before its first record is written);
 * returns what releases it (call after its final record is written), which
 * also removes the lock file. Dying releases it too, and leaves the file.
 */
export function holdRunLock(storeDir: string, id: string): () => void {
  Deno.mkdirSync(join(storeDir, "locks"), { recursive: true });
  const path = runLockPath(storeDir, id);
  const file = Deno.openSync(path, { read: true, write: true, create: true });
  try {
    file.lockSync(true); // ids are unique: free at once
  } catch (e) {
    file.close();
    throw e;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    // Removed before it is released: a reader that finds it free or gone then re-reads the record.
    try {
      Deno.removeSync(path);
    } catch { /* a read-only lock folder: the file stays, free */ }
    file.close();
  };
}

/**
 * The record as a reader should show it: a `running` record whose run lock is
 * free or gone (its process died: killed, or its machine or container
 * stopped) comes back with status `died`; any other record as it is. Reads
 * only: the record file is not changed. A lock this user cannot open says
 * nothing, and the record stays `running`.
 */
export function settleRunStatus(recordFile: string, record: RunRecord): RunRecord {
  if (record.status !== "running") return record;
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(runLockPath(dirname(dirname(recordFile)), record.id), { read: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return record;
  }
  try {
    if (file && !file.tryLockSync(false)) return record; // its process holds it: running
    // Free: the run ended, or died. Its final record, if any, was written before the lock went.
    let now: RunRecord;
    try {
      now = JSON.parse(Deno.readTextFileSync(recordFile));
    } catch {
      now = record;
    }
    return now.status === "running" ? { ...now, status: "died" } : now;
  } finally {
    file?.close();
  }
}

/**
 * The newest record of pipeline `name` that succeeded with every step in
 * `keys` ran or cached under that key (the run that built those artifacts);
 * looks at the 50 newest records of the pipeline.
 */
export function findRecordWithKeys(
  runsDir: string,
  name: string,
  keys: Record<string, string>,
): string | undefined {
  let names: string[];
  try {
    names = [...Deno.readDirSync(runsDir)]
      .filter((e) => e.isFile && e.name.endsWith(".json") && e.name.includes(`-${name}-`))
      .map((e) => e.name).sort().reverse().slice(0, 50);
  } catch {
    return undefined;
  }
  for (const f of names) {
    try {
      const r: RunRecord = JSON.parse(Deno.readTextFileSync(join(runsDir, f)));
      if (r.pipeline?.name !== name || r.status !== "succeeded") continue;
      const same = Object.entries(keys).every(([step, key]) => {
        const s = r.steps?.[step];
        return s?.key === key && (s.status === "ran" || s.status === "cached");
      });
      if (same) return join(runsDir, f);
    } catch { /* unreadable: skip */ }
  }
  return undefined;
}

/** Reads a run record, with a clear error when it is not one. */
export async function readRunRecord(path: string): Promise<RunRecord> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UserError(`cannot read the run record`, {
      file: path,
      expected: "a run record from <store>/runs/",
      found: e instanceof Error ? e.message : String(e),
    });
  }
  let rec: RunRecord;
  try {
    rec = JSON.parse(text);
  } catch {
    throw new UserError(`the run record is not valid JSON`, { file: path });
  }
  if (
    rec?.format !== 1 || typeof rec.pipeline?.text !== "string" || !Array.isArray(rec.overrides)
  ) {
    throw new UserError(`not a run record`, {
      file: path,
      expected: "a JSON file with format 1, pipeline.text and overrides",
      found: text.slice(0, 60),
    });
  }
  return rec;
}

/**
 * Record file names in `runsDir`, newest first (none when it does not exist).
 * A store that is a file, or a `runs` that cannot be read, is a `UserError`.
 */
export async function listRunFiles(runsDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(runsDir)) {
      if (e.isFile && e.name.endsWith(".json")) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    checkStorePath(dirname(runsDir), { mustExist: true }); // a file as the store: says so
    throw new UserError(`cannot read the run records of the store ${dirname(runsDir)}`, {
      file: runsDir,
      expected: "a folder of run records (<store>/runs/)",
      found: e instanceof Error ? e.message : String(e),
      hint: "give --store DIR naming a store folder this user can read",
    });
  }
  return names.sort().reverse();
}

/**
 * Finds, per step, the newest earlier record of pipeline `name` in which the
 * step was planned (ran, cached or failed). Reads records lazily, newest first.
 */
export class RunHistory {
  #runsDir: string;
  #name: string;
  #files: string[] | undefined;
  #records: RunRecord[] = [];
  #next = 0;

  /** @param runsDir `<store>/runs`; @param name the pipeline name */
  constructor(runsDir: string, name: string) {
    this.#runsDir = runsDir;
    this.#name = name;
  }

  /**
   * Among the newest `limit` record entries of `step`, the one with the lowest
   * `distance` (ties: the newest): the run a change is best explained against.
   */
  async closest(
    step: string,
    distance: (s: StepRecord) => number,
    limit = 20,
  ): Promise<StepRecord | undefined> {
    let best: StepRecord | undefined;
    let bestDistance = Infinity;
    const pick = (r: RunRecord) => {
      const s = r.steps[step];
      return s && s.identity && ["ran", "cached", "failed"].includes(s.status) ? s : undefined;
    };
    // Make sure up to `limit` records are loaded (last() loads lazily).
    await this.last(step);
    this.#files ??= (await listRunFiles(this.#runsDir)).filter((f) =>
      f.includes(`-${this.#name}-`)
    );
    while (this.#records.length < limit && this.#next < this.#files.length) {
      const f = this.#files[this.#next++];
      try {
        const r: RunRecord = JSON.parse(await Deno.readTextFile(join(this.#runsDir, f)));
        if (r.pipeline?.name === this.#name && r.steps) this.#records.push(r);
      } catch {
        // An unreadable record explains nothing.
      }
    }
    for (const r of this.#records.slice(0, limit)) {
      const s = pick(r);
      if (!s) continue;
      const d = distance(s);
      if (d < bestDistance) [best, bestDistance] = [s, d];
    }
    return best;
  }

  /** The newest record entry of `step`, if any run planned it. */
  async last(step: string): Promise<StepRecord | undefined> {
    const pick = (r: RunRecord) => {
      const s = r.steps[step];
      return s && s.identity && ["ran", "cached", "failed"].includes(s.status) ? s : undefined;
    };
    for (const r of this.#records) {
      const s = pick(r);
      if (s) return s;
    }
    this.#files ??= (await listRunFiles(this.#runsDir)).filter((f) =>
      f.includes(`-${this.#name}-`)
    );
    while (this.#next < this.#files.length) {
      const f = this.#files[this.#next++];
      let r: RunRecord;
      try {
        r = JSON.parse(await Deno.readTextFile(join(this.#runsDir, f)));
      } catch {
        continue;
      }
      if (r.pipeline?.name !== this.#name || !r.steps) continue;
      this.#records.push(r);
      const s = pick(r);
      if (s) return s;
    }
    return undefined;
  }
}

/**
 * The warning for a run record that is not readable JSON. Readers that look
 * for `latest` or a run's name leave such a record out, which can make them
 * name an older run, so the user is told which file was passed over.
 */
export function unreadableRecordWarning(path: string, problem: unknown): string {
  const why = problem instanceof Error ? problem.message : String(problem);
  return `warning: skipped the run record ${path}, which is not readable (${why}); ` +
    "latest, latest~N, run ids and names are read as if it were not there " +
    "(move it out of runs/ if that run is lost)\n";
}
