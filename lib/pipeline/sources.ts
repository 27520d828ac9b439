/**
 * Content hashes of paths outside the store that a job reads (`job.sources`):
 * a file hashes to the SHA-256 of its bytes; a folder to the SHA-256 over its
 * files' relative paths and hashes, sorted. Per-file hashes are cached in the
 * store by (path, size, mtime) so re-runs over large folders stay fast.
 *
 * @module
 */
import { join, resolve } from "./path.ts";
import { sha256File, sha256Hex } from "../artifacts/hash.ts";
import { listFiles } from "../artifacts/store.ts";

interface CacheEntry {
  size: number;
  mtime: number;
  sha256: string;
}

/** A file-hash cache persisted as JSON at `path`. */
export class SourceHasher {
  #path: string;
  #entries: Record<string, CacheEntry> | undefined;
  #dirty = false;

  /** @param cacheFile where the cache lives (e.g. `<store>/cache/source-hashes.json`) */
  constructor(cacheFile: string) {
    this.#path = cacheFile;
  }

  async #load(): Promise<Record<string, CacheEntry>> {
    if (!this.#entries) {
      try {
        this.#entries = JSON.parse(await Deno.readTextFile(this.#path));
      } catch {
        this.#entries = {};
      }
    }
    return this.#entries!;
  }

  async #fileHash(abs: string, stat: Deno.FileInfo): Promise<string> {
    const entries = await this.#load();
    const mtime = stat.mtime?.getTime() ?? 0;
    const hit = entries[abs];
    if (hit && hit.size === stat.size && hit.mtime === mtime) return hit.sha256;
    const { sha256 } = await sha256File(abs);
    entries[abs] = { size: stat.size, mtime, sha256 };
    this.#dirty = true;
    return sha256;
  }

  /** Hash of a file or folder; throws `Deno.errors.NotFound` when `path` does not exist. */
  async hash(path: string): Promise<string> {
    const abs = resolve(path);
    const stat = await Deno.stat(abs);
    if (stat.isFile) return await this.#fileHash(abs, stat);
    const lines: string[] = [];
    for (const rel of await listFiles(abs)) {
      const f = join(abs, rel);
      lines.push(`${rel}\0${await this.#fileHash(f, await Deno.stat(f))}\n`);
    }
    return await sha256Hex(lines.join(""));
  }

  /** Writes the cache back if it changed (atomically: temp file then rename). */
  async save(): Promise<void> {
    if (!this.#dirty || !this.#entries) return;
    const dir = this.#path.replace(/\/[^/]*$/, "");
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${this.#path}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(this.#entries));
    await Deno.rename(tmp, this.#path);
    this.#dirty = false;
  }
}
