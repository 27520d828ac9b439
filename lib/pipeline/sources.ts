/**
 * Content hashes of paths outside the store that a job reads (`job.sources`):
 * a file hashes to the SHA-256 of its bytes; a folder to the SHA-256 over one
 * line per entry, walked in sorted order.
 *
 * A folder is walked the way scan walks it: symbolic links are followed, a
 * folder reached again (a link loop, or two links to one folder) is not
 * entered twice, and an entry that cannot be read (a dangling link, a file
 * link loop, a file or folder without read permission, a name that is not
 * valid UTF-8) is not an error here: its line says what was found, so the key
 * changes when it is fixed, and scan reports it with its reason.
 *
 * Per-file hashes are cached in the store by (path, size, mtime, ctime,
 * inode), so re-runs over large folders stay fast. A file edited in place with
 * its size and mtime restored still gets a new ctime (which no ordinary tool
 * can set back), so the edit is seen. Deno reports ctime in whole seconds, so
 * a file changed less than two seconds before it is hashed is not cached (it
 * could change again within the same second). `full` (the pipeline's
 * `--verify`) re-hashes every file and trusts no cache entry.
 *
 * @module
 */
import { join, resolve } from "./path.ts";
import { sha256File, sha256Hex } from "../artifacts/hash.ts";
import { fsErrorCode } from "../artifacts/faults.ts";
import { UserError } from "../errors/mod.ts";

interface CacheEntry {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  sha256: string;
}

/** Options of {@link SourceHasher}. */
export interface SourceHasherOptions {
  /** Re-hash every file, ignoring cached hashes (`--verify`). */
  full?: boolean;
}

let fullByDefault = false;

/** Files whose mtime or ctime is this recent when hashed are not cached (see `#fileHash`). */
const RACY_MS = 2000;

/**
 * Makes every {@link SourceHasher} created afterwards in this process re-hash
 * all files (the runner sets it for `--verify`; the planner creates the hasher).
 */
export function setFullSourceHashing(full: boolean): void {
  fullByDefault = full;
}

/** What an entry that cannot be hashed is recorded as, from the error reading it. */
function unreadableMark(e: unknown, name: string): string {
  const code = fsErrorCode(e);
  if (code === "ENOENT") {
    // Deno reads names lossily: a name that is not UTF-8 comes back with U+FFFD and cannot be opened.
    return name.includes("\uFFFD") ? "!name-not-utf8" : "!dangling-link";
  }
  if (code === "ELOOP") return "!link-loop";
  if (code === "EACCES" || code === "EPERM") return "!permission-denied";
  return `!unreadable-${code ?? "error"}`;
}

function byCodepoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A file-hash cache persisted as JSON at `path`. */
export class SourceHasher {
  #path: string;
  #entries: Record<string, CacheEntry> | undefined;
  #dirty = false;
  #full: boolean;

  /** @param cacheFile where the cache lives (e.g. `<store>/cache/source-hashes.json`) */
  constructor(cacheFile: string, options: SourceHasherOptions = {}) {
    this.#path = cacheFile;
    this.#full = options.full ?? fullByDefault;
  }

  async #load(): Promise<Record<string, CacheEntry>> {
    if (!this.#entries) {
      try {
        const parsed = JSON.parse(await Deno.readTextFile(this.#path));
        this.#entries = parsed && typeof parsed === "object" ? parsed : {};
      } catch {
        this.#entries = {};
      }
    }
    return this.#entries!;
  }

  async #fileHash(abs: string, stat: Deno.FileInfo): Promise<string> {
    const entries = await this.#load();
    const mtime = stat.mtime?.getTime() ?? 0;
    const ctime = stat.ctime?.getTime() ?? 0;
    const ino = stat.ino ?? 0;
    const hit = entries[abs];
    if (
      !this.#full && hit && hit.size === stat.size && hit.mtime === mtime &&
      hit.ctime === ctime && hit.ino === ino && typeof hit.sha256 === "string"
    ) {
      return hit.sha256;
    }
    const { sha256 } = await sha256File(abs);
    // A file changed within the timestamps' resolution of this hash could change again
    // without its ctime moving (Deno reports ctime in whole seconds): not cached, so it
    // is hashed again next time (git's "racily clean" rule).
    if (Date.now() - Math.max(mtime, ctime) >= RACY_MS) {
      entries[abs] = { size: stat.size, mtime, ctime, ino, sha256 };
      this.#dirty = true;
    } else if (hit) {
      delete entries[abs];
      this.#dirty = true;
    }
    return sha256;
  }

  /**
   * Hash of a file or folder; throws `Deno.errors.NotFound` when `path` does
   * not exist, and a `UserError` when it cannot be read at all.
   */
  async hash(path: string): Promise<string> {
    const abs = resolve(path);
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(abs);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw e;
      throw this.#rootError(abs, e);
    }
    if (stat.isFile) {
      try {
        return await this.#fileHash(abs, stat);
      } catch (e) {
        throw this.#rootError(abs, e);
      }
    }
    const lines: string[] = [];
    const visited = new Set<string>([await Deno.realPath(abs)]);
    const walk = async (rel: string): Promise<void> => {
      const dir = rel ? join(abs, rel) : abs;
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(dir)) names.push(e.name);
      } catch (e) {
        lines.push(`${rel}/\0${unreadableMark(e, rel)}\n`);
        return;
      }
      for (const name of names.sort(byCodepoint)) {
        const r = rel ? `${rel}/${name}` : name;
        const f = join(abs, r);
        let info: Deno.FileInfo;
        try {
          info = await Deno.stat(f); // follows links
        } catch (e) {
          lines.push(`${r}\0${unreadableMark(e, name)}\n`);
          continue;
        }
        if (info.isDirectory) {
          let real: string;
          try {
            real = await Deno.realPath(f);
          } catch (e) {
            lines.push(`${r}/\0${unreadableMark(e, name)}\n`);
            continue;
          }
          if (visited.has(real)) {
            lines.push(`${r}/\0!visited\n`); // a loop, or a second link to one folder
            continue;
          }
          visited.add(real);
          await walk(r);
        } else if (info.isFile) {
          try {
            lines.push(`${r}\0${await this.#fileHash(f, info)}\n`);
          } catch (e) {
            lines.push(`${r}\0${unreadableMark(e, name)}\n`);
          }
        } else {
          lines.push(`${r}\0!not-a-file\n`); // a socket, a FIFO, a device
        }
      }
    };
    await walk("");
    return await sha256Hex(lines.join(""));
  }

  #rootError(abs: string, e: unknown): UserError {
    const mark = unreadableMark(e, abs).slice(1).replaceAll("-", " ");
    return new UserError(`cannot read the source path ${abs}: ${mark}`, {
      file: abs,
      expected: "a file or folder this user can read",
      found: e instanceof Error ? e.message : String(e),
      hint: mark === "link loop"
        ? "the path is a symbolic link that leads back to itself; point it at a real folder"
        : "check the path and its permissions (ls -l)",
    });
  }

  /**
   * Writes the cache back if it changed (atomically: temp file then rename).
   * The cache only saves time: when it cannot be written (a full or read-only
   * disk), the temporary file is removed and the run goes on.
   */
  async save(): Promise<void> {
    if (!this.#dirty || !this.#entries) return;
    const dir = this.#path.replace(/\/[^/]*$/, "");
    const tmp = `${this.#path}.${Deno.pid}.tmp`;
    try {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(tmp, JSON.stringify(this.#entries));
      await Deno.rename(tmp, this.#path);
      this.#dirty = false;
    } catch {
      await Deno.remove(tmp).catch(() => {});
    }
  }
}
