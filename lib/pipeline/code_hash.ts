/**
 * The code hash of a job: SHA-256 over its file and every local module it
 * imports, transitively (static `import … from "./x.ts"`, `export … from`,
 * side-effect imports and `import("./x.ts")` with a string literal). Type-only
 * imports are left out: they are erased before the code runs. Bare and remote
 * specifiers (npm packages) are pinned by the lock file and not hashed.
 *
 * Files are named by repo-relative path (or, outside the repo, relative to a
 * given base) and hashed as raw bytes, so the hash is the same on every machine.
 *
 * @module
 */
import { dirname, relative, resolve } from "./path.ts";
import { sha256Hex } from "../artifacts/hash.ts";
import { insideOf, REPO_ROOT } from "./paths.ts";

const cache = new Map<string, Promise<string>>();
/** Per-process cache of each module file's bytes and local imports (shared by all jobs). */
const files = new Map<string, { bytes: Uint8Array; imports: string[] } | undefined>();

// `from "./x.ts"`, `import "./x.ts"`, `import("./x.ts")`: a relative string literal after from/import.
const SPECIFIER_RE = /(\bfrom|\bimport)\s*(\(\s*)?["'](\.{1,2}\/[^"'\n]+)["']/g;

/** Relative local imports of a module's text (type-only imports excluded). */
export function localImports(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(SPECIFIER_RE)) {
    if (m[1] === "from") {
      // The statement starts at the nearest `import`/`export` keyword before `from`.
      const at = Math.max(text.lastIndexOf("import", m.index), text.lastIndexOf("export", m.index));
      if (at >= 0 && /^(import|export)\s+type\s/.test(text.slice(at, at + 20))) continue;
    }
    out.add(m[3]);
  }
  return [...out];
}

function readModule(path: string): { bytes: Uint8Array; imports: string[] } | undefined {
  if (files.has(path)) return files.get(path);
  let mod: { bytes: Uint8Array; imports: string[] } | undefined;
  try {
    // Small files read synchronously: an async read is a thread hop, slow on a loaded machine.
    const bytes = Deno.readFileSync(path);
    const imports = /\.(ts|js|mts|mjs|tsx|jsx)$/.test(path)
      ? localImports(new TextDecoder().decode(bytes)).map((s) =>
        resolve(dirname(path), s.split(/[?#]/)[0])
      )
      : [];
    mod = { bytes, imports };
  } catch {
    mod = undefined; // a missing import fails loudly when the job is imported
  }
  files.set(path, mod);
  return mod;
}

function collect(entry: string): Map<string, Uint8Array> {
  const found = new Map<string, Uint8Array>();
  const seen = new Set<string>();
  let frontier = [resolve(entry)];
  while (frontier.length) {
    const next: string[] = [];
    const mods = frontier.map(readModule);
    frontier.forEach((path, i) => {
      const m = mods[i];
      if (!m) return;
      found.set(path, m.bytes);
      for (const dep of m.imports) {
        if (!seen.has(dep)) {
          seen.add(dep);
          next.push(dep);
        }
      }
    });
    frontier = next;
  }
  return found;
}

/**
 * Hex SHA-256 over `name\nlength\n` + bytes of each file, sorted by name.
 * Cached per process and entry file.
 *
 * @param entry the job's file
 * @param outsideBase names files outside the repo relative to this folder
 */
export function codeHash(entry: string, outsideBase = dirname(resolve(entry))): Promise<string> {
  const key = `${resolve(entry)}\0${outsideBase}`;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const found = collect(entry);
      const named = [...found].map(([abs, bytes]) => ({
        name: insideOf(REPO_ROOT, abs) ?? relative(outsideBase, abs).split("\\").join("/"),
        bytes,
      })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const enc = new TextEncoder();
      const parts = named.flatMap((f) => [enc.encode(`${f.name}\n${f.bytes.length}\n`), f.bytes]);
      const total = parts.reduce((n, p) => n + p.length, 0);
      const buf = new Uint8Array(total);
      let off = 0;
      for (const part of parts) {
        buf.set(part, off);
        off += part.length;
      }
      return await sha256Hex(buf);
    })();
    cache.set(key, p);
  }
  return p;
}
