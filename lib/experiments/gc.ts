/**
 * Clean-up of a store: keeps every artifact a kept run needs (its steps'
 * artifacts and, through manifests' inputs, everything they were built
 * from), and removes the other artifacts, training scratch folders, staging
 * folders and the plan caches.
 *
 * Safe when killed at any moment: an artifact leaves `objects/` by one
 * rename into `tmp/<key>.<pid>.gc` before its files are deleted, so
 * `objects/` only ever holds complete artifacts, and what a killed gc left in
 * `tmp/` is removed by the next gc or run. Safe beside pipeline runs: gc holds
 * the store lock exclusively (runs hold it shared), so it waits for running
 * pipelines and they wait for it.
 *
 * Run records are kept (they are small, hold the history and metrics, and a
 * run whose artifacts were removed can be rebuilt with
 * `deno task pipeline --rerun RECORD`).
 * `quarantine/` is never emptied here (set-aside artifacts are evidence).
 * A record that cannot be read might name artifacts a run needs, so a real gc
 * refuses to run while one is in `runs/` (unless told to go on:
 * {@link GcOptions.ignoreUnreadableRecords}, `gc --ignore-unreadable-records`),
 * and a dry run names it.
 *
 * @module
 */
import { join } from "node:path";
import { lockStore } from "../pipeline/store_lock.ts";
import { checkStorePath } from "../artifacts/faults.ts";
import { UserError } from "../errors/mod.ts";
import { readRunRecords, resolveRun, type StoredRun } from "./runs.ts";

const KEY_RE = /^[0-9a-f]{64}$/;

/** What {@link collectGarbage} does or would do. */
export interface GcReport {
  /** Run ids kept. */
  kept_runs: string[];
  /** Artifact keys kept (needed by a kept run). */
  kept_artifacts: number;
  removed_artifacts: string[];
  removed_work: string[];
  removed_tmp: string[];
  /** Run locks (`locks/run-<id>.lock`) left by runs that were killed: none is held under gc's lock. */
  removed_run_locks: number;
  removed_cache: number;
  /** Bytes freed (or that would be, for a dry run). */
  freed_bytes: number;
  /** Bytes in quarantine/ (not touched). */
  quarantine_bytes: number;
  /** Files in runs/ that are not readable records (the artifacts of their runs are not known). */
  unreadable_records: string[];
  dry_run: boolean;
}

/** Options of {@link collectGarbage}. */
export interface GcOptions {
  /** Keep the newest N runs (any status). */
  keepLast: number;
  /** Runs to keep besides (any name `resolveRun` takes). */
  keep?: string[];
  dryRun?: boolean;
  /** Called when the store lock is not free within a second (pipelines are running). */
  onWait?: () => void;
  /**
   * Clean even though some run records cannot be read: the artifacts only
   * those runs needed are removed. Without it a real gc refuses such a store
   * (a dry run warns and goes on).
   */
  ignoreUnreadableRecords?: boolean;
  /** Where warnings go (an unreadable record); default stderr. */
  warn?: (text: string) => void;
}

async function sizeOf(path: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory) return info.size;
  let total = 0;
  for await (const e of Deno.readDir(path)) total += await sizeOf(join(path, e.name));
  return total;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Keys needed by `runs`: each step's key, then every input key of their manifests, transitively. */
export async function neededKeys(storeDir: string, runs: StoredRun[]): Promise<Set<string>> {
  const needed = new Set<string>();
  const queue: string[] = [];
  for (const r of runs) {
    for (const s of Object.values(r.record.steps)) {
      if (s.key && !needed.has(s.key)) {
        needed.add(s.key);
        queue.push(s.key);
      }
    }
  }
  while (queue.length) {
    const key = queue.pop()!;
    let inputs: Record<string, string> = {};
    try {
      inputs = JSON.parse(
        await Deno.readTextFile(join(storeDir, "objects", key, "manifest.json")),
      ).inputs ?? {};
    } catch { /* not published (a failed or unfinished step) */ }
    for (const k of Object.values(inputs)) {
      if (!needed.has(k)) {
        needed.add(k);
        queue.push(k);
      }
    }
  }
  return needed;
}

/** Moves `path` into `tmp/` under a name a dead process's staging has, then deletes it. */
async function removeViaTmp(storeDir: string, path: string, key: string): Promise<void> {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const aside = join(storeDir, "tmp", `${key}.${Deno.pid}.gc${rand}`);
  await Deno.mkdir(join(storeDir, "tmp"), { recursive: true });
  await Deno.rename(path, aside);
  await Deno.remove(aside, { recursive: true });
}

/** Cleans the store at `storeDir` (see the module doc). */
export async function collectGarbage(storeDir: string, options: GcOptions): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  // Before the lock: taking it creates locks/, and so a mistyped store would be made.
  checkStorePath(storeDir, { mustExist: true });
  const release = dryRun ? undefined : await lockStore(storeDir, true, options.onWait);
  if (!dryRun && !release) {
    throw new UserError(`cannot lock the store ${storeDir} to clean it`, {
      file: join(storeDir, "locks", "store.lock"),
      expected: "a store this user can write (gc removes files from it)",
      found: "the lock file cannot be created or opened",
      hint: `make ${storeDir} writable for this user, or run gc as its owner; ` +
        "--dry-run needs no lock",
    });
  }
  try {
    const { runs, unreadable } = await readRunRecords(storeDir);
    if (unreadable.length && !dryRun && !options.ignoreUnreadableRecords) {
      const one = unreadable.length === 1;
      throw new UserError(
        `${unreadable.length} run record${one ? "" : "s"} in ${storeDir}/runs cannot be read; ` +
          `gc could remove artifacts ${one ? "that run needs" : "those runs need"}, ` +
          "so it removes nothing",
        {
          file: unreadable[0].file,
          expected: "every file in runs/ a readable run record",
          found: unreadable.slice(0, 3).map((r) => `${r.file}: ${r.problem}`).join("; ") +
            (unreadable.length > 3 ? `; and ${unreadable.length - 3} more` : ""),
          hint: `move the broken record${one ? "" : "s"} out of runs/ ` +
            `(${one ? "its run is" : "their runs are"} then forgotten: ` +
            `no artifact is kept for ${one ? "it" : "them"}) and run gc again, ` +
            "or run gc with --ignore-unreadable-records " +
            `(the artifacts only ${one ? "that run" : "those runs"} needed are removed); ` +
            "--dry-run shows what gc would remove",
        },
      );
    }
    const warn = options.warn ??
      ((t: string) => Deno.stderr.writeSync(new TextEncoder().encode(t)));
    for (const r of unreadable) {
      warn(
        `warning: the run record ${r.file} cannot be read (${r.problem}); gc does not know ` +
          `which artifacts its run needs${
            dryRun ? "" : " and removes those no other kept run needs"
          }\n`,
      );
    }
    const kept = new Map<string, StoredRun>();
    for (const r of runs.slice(0, Math.max(0, options.keepLast))) kept.set(r.record.id, r);
    for (const name of options.keep ?? []) {
      const r = await resolveRun(name, storeDir, "--keep");
      kept.set(r.record.id, r);
    }
    const needed = await neededKeys(storeDir, [...kept.values()]);
    const report: GcReport = {
      kept_runs: [...kept.keys()],
      kept_artifacts: 0,
      removed_artifacts: [],
      removed_work: [],
      removed_tmp: [],
      removed_run_locks: 0,
      removed_cache: 0,
      freed_bytes: 0,
      quarantine_bytes: await sizeOf(join(storeDir, "quarantine")),
      unreadable_records: unreadable.map((r) => r.file),
      dry_run: dryRun,
    };
    for (const key of await names(join(storeDir, "objects"))) {
      if (!KEY_RE.test(key)) continue;
      if (needed.has(key)) {
        report.kept_artifacts++;
        continue;
      }
      const dir = join(storeDir, "objects", key);
      report.freed_bytes += await sizeOf(dir);
      report.removed_artifacts.push(key);
      if (!dryRun) await removeViaTmp(storeDir, dir, key);
    }
    // Scratch of a kept run's unfinished step (a resumable checkpoint) stays.
    for (const key of await names(join(storeDir, "work"))) {
      if (!KEY_RE.test(key) || needed.has(key)) continue;
      const dir = join(storeDir, "work", key);
      report.freed_bytes += await sizeOf(dir);
      report.removed_work.push(key);
      if (!dryRun) await removeViaTmp(storeDir, dir, key);
    }
    // With the lock held exclusively no run is staging: everything in tmp/ is left over.
    for (const name of await names(join(storeDir, "tmp"))) {
      const path = join(storeDir, "tmp", name);
      report.freed_bytes += await sizeOf(path);
      report.removed_tmp.push(name);
      if (!dryRun) await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    // A run holds the store lock (shared) as long as its run lock, so under gc's exclusive lock every
    // run lock left in locks/ belongs to a run that died; its record then reads as died either way.
    for (const name of await names(join(storeDir, "locks"))) {
      if (!/^run-.+\.lock$/.test(name)) continue;
      report.removed_run_locks++;
      if (!dryRun) await Deno.remove(join(storeDir, "locks", name)).catch(() => {});
    }
    // Plan and YAML caches are speed only (the next run of a pipeline plans again, in
    // milliseconds); the source-hash cache is kept: rebuilding it re-reads every audio file.
    for (const sub of ["plans", "yaml"]) {
      for (const name of await names(join(storeDir, "cache", sub))) {
        const path = join(storeDir, "cache", sub, name);
        report.freed_bytes += await sizeOf(path);
        report.removed_cache++;
        if (!dryRun) await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    }
    return report;
  } finally {
    release?.();
  }
}
