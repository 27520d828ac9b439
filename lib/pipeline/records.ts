/**
 * Run records: one JSON file per pipeline run under `<store>/runs/`, holding
 * the pipeline text, overrides and per-step outcome, so a run can be explained
 * (`--dry-run` reasons) and repeated exactly (`--rerun`).
 *
 * @module
 */
import { join } from "./path.ts";
import { UserError } from "../errors/mod.ts";
import type { StepIdentity } from "./plan.ts";

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
}

/** `runs/<timestamp>-<name>-<short>.json`. */
export interface RunRecord {
  format: 1;
  id: string;
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
  options: { dry_run?: boolean; force?: string[]; only?: string; until?: string };
  started_at: string;
  finished_at?: string;
  status: "running" | "succeeded" | "failed" | "interrupted";
  /** The failure, formatted, when the run failed. */
  error?: string;
  steps: Record<string, StepRecord>;
}

/** A new record id: `<UTC timestamp>-<name>-<6 hex>`. */
export function newRunId(name: string, at: Date): string {
  const ts = at.toISOString().replace(/[:.]/g, "-");
  const rand = crypto.getRandomValues(new Uint8Array(3));
  return `${ts}-${name}-${[...rand].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Writes (or rewrites) a record atomically; returns its path. */
export function writeRunRecord(runsDir: string, record: RunRecord): string {
  // Sync: a small file, written once or twice per run; async ops hop threads.
  Deno.mkdirSync(runsDir, { recursive: true });
  const path = join(runsDir, `${record.id}.json`);
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(record, null, 2) + "\n");
  Deno.renameSync(tmp, path);
  return path;
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

/** Record file names in `runsDir`, newest first. */
export async function listRunFiles(runsDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(runsDir)) {
      if (e.isFile && e.name.endsWith(".json")) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
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
