/**
 * The artifact store: immutable step outputs addressed by their step key.
 *
 * Layout of a {@link LocalArtifactStore} under `root`:
 *
 * ```
 * objects/<key>/            published artifacts, each with manifest.json (+ metrics.json)
 * tmp/<key>.<pid>.<rand>/   staging while a step runs; renamed into objects/ on commit
 * work/<key>/               scratch that survives crashes (checkpoints), removed on commit
 * locks/<key>.lock          per-key flock, so two runners never build one key at once
 * locks/run-<id>.lock       held by a running pipeline run (written by the runner, see records.ts)
 * runs/                     run records (written by the pipeline runner)
 * cache/                    small caches (source file hashes)
 * quarantine/<key>.<time>/  artifacts found damaged, set aside (never deleted silently)
 * ```
 *
 * Publishing is write-to-staging, fsync, then one atomic `rename`, so a crash at
 * any moment leaves either no `objects/<key>` or a complete one. A staging
 * folder exists only while its key's lock is held, or after its run died; so
 * one is removed only by whoever holds that lock ({@link
 * LocalArtifactStore.begin}, {@link LocalArtifactStore.cleanStaleStaging}) or
 * by `gc` under the exclusive store lock, never by judging a PID, which means
 * nothing to a run in another container or on another machine. A directory in
 * `objects/` without a readable manifest naming its key is treated as missing.
 *
 * Published artifacts never change. Publishing a key that is already there
 * keeps the published bytes when they still match their manifest (re-hashed):
 * a new output with the same files is a reproduction; one that differs is
 * refused (an error naming the files), and the new output is set aside in
 * `quarantine/` for comparison. A published copy that no longer matches its
 * manifest is quarantined; the new output takes its place only when its files
 * equal those the old manifest lists (else it is refused and set aside too, as
 * above). Before an
 * artifact is trusted, {@link LocalArtifactStore.check} compares its files
 * with the manifest (sizes on every use, SHA-256 on request); a damaged one is
 * moved to `quarantine/` so the step can be built again.
 *
 * @module
 */
import type { ArtifactRef, Manifest, ManifestFile } from "./types.ts";
import { canonicalJson, sha256File } from "./hash.ts";
import { UserError } from "../errors/mod.ts";

/** A staging directory handed out by {@link ArtifactStore.begin}. */
export interface Staging {
  key: string;
  /** Absolute, empty directory to write the artifact's files into. */
  dir: string;
}

/** What the runner knows about an artifact besides its files; the store adds `key` and `files`. */
export type ManifestBits = Omit<Manifest, "key" | "files">;

/** One problem found by {@link ArtifactStore.verify}. */
export interface VerifyProblem {
  key: string;
  /** File inside the artifact, or "" for the artifact as a whole. */
  path: string;
  problem: string;
}

/** The result of {@link ArtifactStore.verify}. */
export interface VerifyReport {
  /** Number of artifacts checked. */
  checked: number;
  problems: VerifyProblem[];
}

/**
 * How far {@link ArtifactStore.check} looks: `sizes` stats every file the
 * manifest lists (cheap, done on every use); `hashes` re-hashes them too.
 */
export type CheckDepth = "sizes" | "hashes";

/** What {@link ArtifactStore.commit} did with the staged output. */
export interface CommitResult extends ArtifactRef {
  /**
   * `published`: the output was moved into place. `reproduced`: an artifact
   * with this key was already published and the new output has the same
   * files, byte for byte (metrics.json aside); the published one is kept.
   */
  outcome: "published" | "reproduced";
  /** For `reproduced`: metrics whose values differ (timings), the published ones kept. */
  metricsDiffer?: string[];
  /** Where a damaged artifact found under this key was set aside before publishing. */
  quarantined?: string;
}

/** Releases a lock taken with {@link ArtifactStore.lock}. */
export type Release = () => void;

/** Storage for artifacts; the local store below is one implementation, a remote one can sit beside it. */
export interface ArtifactStore {
  /** A local directory for run records and caches. */
  readonly localDir: string;
  /** True when `key` is published with a valid manifest. */
  has(key: string): Promise<boolean>;
  /** The published artifact, or undefined when missing or untrusted. */
  get(key: string): Promise<ArtifactRef | undefined>;
  /** A fresh staging directory for `key` (call while holding `lock(key)`). */
  begin(key: string): Promise<Staging>;
  /**
   * Publishes the staging directory: writes `metrics.json` and `manifest.json`
   * (every file with size and SHA-256), fsyncs, and renames it into place.
   * An intact artifact already published under the key (every file matching
   * its manifest's SHA-256) is never replaced: the result is `reproduced`
   * when the files are equal, and a `UserError` naming the differing files
   * when not (the new output is set aside). A damaged one is quarantined; the
   * new output is published in its place when its files equal those the
   * damaged copy's manifest lists (or that manifest is unreadable), and is
   * refused and set aside as above when they differ.
   */
  commit(
    staging: Staging,
    bits: ManifestBits,
    metrics: Record<string, unknown>,
  ): Promise<CommitResult>;
  /** Compares a published artifact's files with its manifest; empty when intact. */
  check(ref: ArtifactRef, depth: CheckDepth): Promise<VerifyProblem[]>;
  /**
   * Moves a published artifact out of `objects/` into `quarantine/`, with a
   * note of why; returns where it went (undefined when it was already gone).
   */
  quarantine(key: string, problems: VerifyProblem[]): Promise<string | undefined>;
  /** Removes a staging directory that will not be published. */
  abort(staging: Staging): Promise<void>;
  /** Persistent scratch for `key` (checkpoints); removed when `key` is published. */
  workDir(key: string): Promise<string>;
  /** Waits for the exclusive lock on `key`; released by the returned function or process death. */
  lock(key: string): Promise<Release>;
  /** All published artifacts, oldest first. */
  list(): Promise<ArtifactRef[]>;
  /** Re-hashes every published artifact against its manifest. */
  verify(): Promise<VerifyReport>;
  /**
   * Removes staging directories no run is writing: those of keys whose lock
   * is free (taken without waiting, held while removing); returns how many.
   */
  cleanStaleStaging(): Promise<number>;
}

const KEY_RE = /^[0-9a-f]{64}$/;

/** Joins path parts with `/` (the store's names are plain; `node:path` is kept off the hot path). */
function join(...parts: string[]): string {
  return parts.join("/");
}

function checkKey(key: string): void {
  if (!KEY_RE.test(key)) throw new Error(`not an artifact key: ${JSON.stringify(key)}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Lists files under `dir` recursively as `/`-separated relative paths, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(sub: string): Promise<void> {
    for await (const e of Deno.readDir(sub ? join(dir, sub) : dir)) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory) await walk(rel);
      else out.push(rel);
    }
  }
  await walk("");
  return out.sort();
}

/** `path: what differs` for each file that is not the same in `a` and `b` (metrics.json aside). */
function compareFiles(a: ManifestFile[], b: ManifestFile[]): string[] {
  const byPath = (files: ManifestFile[]) =>
    new Map(files.filter((f) => f.path !== "metrics.json").map((f) => [f.path, f]));
  const [ma, mb] = [byPath(a), byPath(b)];
  const out: string[] = [];
  for (const path of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
    const [fa, fb] = [ma.get(path), mb.get(path)];
    if (!fa) out.push(`${path}: only in the new output`);
    else if (!fb) out.push(`${path}: missing from the new output`);
    else if (fa.size !== fb.size) out.push(`${path}: ${fa.size} bytes published, ${fb.size} new`);
    else if (fa.sha256 !== fb.sha256) {
      out.push(`${path}: same size (${fa.size} bytes), other bytes`);
    }
  }
  return out;
}

/** Names of the metrics whose values differ between a published artifact and `metrics`. */
async function differingMetrics(
  dir: string,
  metrics: Record<string, unknown>,
): Promise<string[]> {
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(await Deno.readTextFile(join(dir, "metrics.json")));
  } catch {
    return ["metrics.json"];
  }
  return [...new Set([...Object.keys(old), ...Object.keys(metrics)])].sort()
    .filter((k) => canonicalJson(old[k]) !== canonicalJson(metrics[k]));
}

function isManifest(m: unknown, key: string): m is Manifest {
  if (m === null || typeof m !== "object") return false;
  const r = m as Record<string, unknown>;
  return r.key === key && typeof r.job === "string" && Array.isArray(r.files);
}

async function fsyncDir(path: string): Promise<void> {
  try {
    const f = await Deno.open(path, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename is still atomic.
  }
}

/** An {@link ArtifactStore} on the local file system. */
export class LocalArtifactStore implements ArtifactStore {
  /** Absolute root directory. */
  readonly root: string;
  readonly localDir: string;

  /** @param root the store directory (created on first write) */
  constructor(root: string) {
    this.root = root;
    this.localDir = root;
  }

  #objectDir(key: string): string {
    return join(this.root, "objects", key);
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  get(key: string): Promise<ArtifactRef | undefined> {
    return Promise.resolve(this.getSync(key));
  }

  /** {@link get} without a thread hop: the cached path reads one manifest per step. */
  getSync(key: string): ArtifactRef | undefined {
    checkKey(key);
    const dir = this.#objectDir(key);
    let text: string;
    try {
      text = Deno.readTextFileSync(join(dir, "manifest.json"));
    } catch {
      return undefined;
    }
    try {
      const manifest = JSON.parse(text);
      return isManifest(manifest, key) ? { key, dir, manifest } : undefined;
    } catch {
      return undefined;
    }
  }

  async begin(key: string): Promise<Staging> {
    checkKey(key);
    const tmp = join(this.root, "tmp");
    await Deno.mkdir(tmp, { recursive: true });
    // Called under the key's lock: any other staging dir for this key belongs to a dead run.
    for await (const e of Deno.readDir(tmp)) {
      if (e.name.startsWith(`${key}.`)) await Deno.remove(join(tmp, e.name), { recursive: true });
    }
    const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
    const dir = join(tmp, `${key}.${Deno.pid}.${rand}`);
    await Deno.mkdir(dir);
    return { key, dir };
  }

  async commit(
    staging: Staging,
    bits: ManifestBits,
    metrics: Record<string, unknown>,
  ): Promise<CommitResult> {
    const { key, dir } = staging;
    await Deno.writeTextFile(join(dir, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
    const files: ManifestFile[] = [];
    for (const path of await listFiles(dir)) {
      if (path === "manifest.json") continue;
      const { sha256, size } = await sha256File(join(dir, path), true);
      files.push({ path, size, sha256 });
    }
    const manifest: Manifest = { key, ...bits, files };
    const mf = await Deno.open(join(dir, "manifest.json"), {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      await mf.write(new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"));
      await mf.sync();
    } finally {
      mf.close();
    }
    await fsyncDir(dir);
    const target = this.#objectDir(key);
    await Deno.mkdir(join(this.root, "objects"), { recursive: true });
    let quarantined: string | undefined;
    if (await exists(target)) {
      const existing = this.getSync(key);
      // Hashes, not sizes: "reproduced" must mean the bytes on disk equal the new output, and a
      // same-size corruption of the published copy would otherwise be kept as if reproduced.
      const damage = existing
        ? await this.check(existing, "hashes")
        : [{ key, path: "manifest.json", problem: "manifest missing or unreadable" }];
      // The published manifest says what the key's bytes are, even when the copy on disk no
      // longer matches it: a new output that differs from it would change a published artifact.
      const differences = existing ? compareFiles(existing.manifest.files, files) : [];
      if (existing && damage.length === 0 && differences.length === 0) {
        const metricsDiffer = await differingMetrics(existing.dir, metrics);
        await Deno.remove(dir, { recursive: true });
        await this.#removeWork(key);
        return { ...existing, outcome: "reproduced", metricsDiffer };
      }
      if (damage.length) quarantined = await this.quarantine(key, damage);
      if (differences.length) {
        const aside = await this.#setAside(dir, key, "rerun");
        throw new UserError(
          `the new output differs from the artifact ${
            damage.length ? "that was" : "already"
          } published under key ${key.slice(0, 12)}; ${
            damage.length
              ? `that copy no longer matched its manifest and was moved to ${
                quarantined ?? "quarantine/"
              }, and the new output is not published in its place`
              : "the published artifact is kept unchanged"
          } (published artifacts never change)`,
          {
            file: target,
            expected: "the same files, byte for byte, for the same step key",
            found: differences.slice(0, 5).join("; ") +
              (differences.length > 5 ? `; and ${differences.length - 5} more` : ""),
            hint: `the job is not deterministic, or its output depends on something its key ` +
              `does not cover. The new output is in ${aside} for comparison`,
          },
        );
      }
    }
    await Deno.rename(dir, target);
    await fsyncDir(join(this.root, "objects"));
    await this.#removeWork(key);
    return { key, dir: target, manifest, outcome: "published", quarantined };
  }

  /** The cheap check: every listed file is there, is a file, and has its manifest size. */
  checkSync(ref: ArtifactRef): VerifyProblem[] {
    const problems: VerifyProblem[] = [];
    for (const f of ref.manifest.files) {
      let info: Deno.FileInfo;
      try {
        info = Deno.statSync(join(ref.dir, f.path));
      } catch {
        problems.push({ key: ref.key, path: f.path, problem: "file missing" });
        continue;
      }
      if (!info.isFile) {
        problems.push({ key: ref.key, path: f.path, problem: "not a file" });
      } else if (info.size !== f.size) {
        problems.push({
          key: ref.key,
          path: f.path,
          problem: `size ${info.size} bytes, manifest says ${f.size}`,
        });
      }
    }
    return problems;
  }

  async check(ref: ArtifactRef, depth: CheckDepth): Promise<VerifyProblem[]> {
    const problems = this.checkSync(ref);
    if (depth === "sizes") return problems;
    const flagged = new Set(problems.map((p) => p.path));
    for (const f of ref.manifest.files) {
      if (flagged.has(f.path)) continue;
      try {
        const { sha256 } = await sha256File(join(ref.dir, f.path));
        if (sha256 !== f.sha256) {
          problems.push({
            key: ref.key,
            path: f.path,
            problem: `sha256 ${sha256} does not match the manifest`,
          });
        }
      } catch (e) {
        problems.push({
          key: ref.key,
          path: f.path,
          problem: `unreadable: ${e instanceof Error ? e.message : String(e)}`,
        });
      }
    }
    const order = new Map(ref.manifest.files.map((f, i) => [f.path, i]));
    return problems.sort((a, b) => order.get(a.path)! - order.get(b.path)!);
  }

  async quarantine(key: string, problems: VerifyProblem[]): Promise<string | undefined> {
    checkKey(key);
    try {
      return await this.#setAside(this.#objectDir(key), key, "", problems);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined; // set aside by another run meanwhile
      throw e;
    }
  }

  /** Renames `dir` to `quarantine/<key>.<time>[.<tag>]`, with a note of why when given. */
  async #setAside(
    dir: string,
    key: string,
    tag: string,
    problems?: VerifyProblem[],
  ): Promise<string> {
    const parent = join(this.root, "quarantine");
    await Deno.mkdir(parent, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const target = join(parent, `${key}.${stamp}${tag ? `.${tag}` : ""}`);
    await Deno.rename(dir, target);
    if (problems) {
      const note = { key, moved_at: new Date().toISOString(), from: dir, problems };
      // Best effort: on a full disk the move still happened, which is what matters.
      await Deno.writeTextFile(
        join(target, "QUARANTINE.json"),
        JSON.stringify(note, null, 2) + "\n",
      ).catch(() => {});
    }
    return target;
  }

  async #removeWork(key: string): Promise<void> {
    await Deno.remove(join(this.root, "work", key), { recursive: true }).catch(() => {});
  }

  async abort(staging: Staging): Promise<void> {
    await Deno.remove(staging.dir, { recursive: true }).catch(() => {});
  }

  async workDir(key: string): Promise<string> {
    checkKey(key);
    const dir = join(this.root, "work", key);
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  async lock(key: string): Promise<Release> {
    checkKey(key);
    const dir = join(this.root, "locks");
    await Deno.mkdir(dir, { recursive: true });
    // The lock file is never deleted: deleting it would let two processes lock different inodes.
    const file = await Deno.open(join(dir, `${key}.lock`), {
      read: true,
      write: true,
      create: true,
    });
    await file.lock(true);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      file.close();
    };
  }

  async list(): Promise<ArtifactRef[]> {
    const out: ArtifactRef[] = [];
    const dir = join(this.root, "objects");
    if (!(await exists(dir))) return out;
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory || !KEY_RE.test(e.name)) continue;
      const ref = await this.get(e.name);
      if (ref) out.push(ref);
    }
    return out.sort((a, b) =>
      a.manifest.finished_at.localeCompare(b.manifest.finished_at) || a.key.localeCompare(b.key)
    );
  }

  async cleanStaleStaging(): Promise<number> {
    const tmp = join(this.root, "tmp");
    const byKey = new Map<string, string[]>();
    try {
      for await (const e of Deno.readDir(tmp)) {
        const key = e.name.slice(0, 64);
        if (!KEY_RE.test(key) || e.name[64] !== ".") continue;
        byKey.set(key, [...byKey.get(key) ?? [], e.name]);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return 0;
      throw e;
    }
    let removed = 0;
    for (const [key, names] of byKey) {
      // Best effort, key by key: a lock file this user cannot open (another user's, on a shared
      // store) or a leftover that will not go only keeps that leftover; it never stops a run.
      try {
        // A lock held by a run anywhere (another process, container or machine sharing the
        // store, or this process through another open file) means its staging may be live.
        const release = await this.#tryLock(key);
        if (!release) continue;
        try {
          for (const name of names) {
            try {
              await Deno.remove(join(tmp, name), { recursive: true });
              removed++;
            } catch (e) {
              if (!(e instanceof Deno.errors.NotFound)) throw e; // else published or aborted meanwhile
            }
          }
        } finally {
          release();
        }
      } catch {
        continue;
      }
    }
    return removed;
  }

  /**
   * The lock on `key` when it is free now (never waits), else undefined. The
   * lock file is opened read-only and never created (flock needs no write
   * access, and a lock file may be another user's): a missing one means no
   * one holds the lock, so a no-op release is returned.
   */
  async #tryLock(key: string): Promise<Release | undefined> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(this.root, "locks", `${key}.lock`), { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return () => {};
      throw e;
    }
    let held = false;
    try {
      held = await file.tryLock(true);
    } finally {
      if (!held) file.close();
    }
    return held ? () => file.close() : undefined;
  }

  async verify(): Promise<VerifyReport> {
    const problems: VerifyProblem[] = [];
    let checked = 0;
    const dir = join(this.root, "objects");
    if (!(await exists(dir))) return { checked, problems };
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) names.push(e.name);
    for (const key of names.sort()) {
      checked++;
      if (!KEY_RE.test(key)) {
        problems.push({ key, path: "", problem: "directory name is not an artifact key" });
        continue;
      }
      const ref = await this.get(key);
      if (!ref) {
        problems.push({ key, path: "manifest.json", problem: "manifest missing or unreadable" });
        continue;
      }
      const listed = new Set(ref.manifest.files.map((f) => f.path));
      problems.push(...await this.check(ref, "hashes"));
      for (const path of await listFiles(ref.dir)) {
        if (path !== "manifest.json" && !listed.has(path)) {
          problems.push({ key, path, problem: "file not listed in the manifest" });
        }
      }
    }
    return { checked, problems };
  }
}
