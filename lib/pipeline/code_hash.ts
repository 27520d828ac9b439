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
import { dirname, relative, resolve } from "node:path";
import { sha256Hex } from "../artifacts/hash.ts";
import { insideOf, REPO_ROOT } from "./paths.ts";

const cache = new Map<string, Promise<string>>();

const SPECIFIER_RES = [
  // import x from "./a.ts"; export { y } from "./b.ts"; export * from "./c.ts"
  /(?:^|[\s;])(import|export)\s+(type\s+)?[^'";]*?\sfrom\s*["'](\.{1,2}\/[^"']+)["']/g,
  // import "./side-effect.ts"
  /(?:^|[\s;])(import)()\s*["'](\.{1,2}\/[^"']+)["']/g,
  // await import("./lazy.ts")
  /(import)()\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
];

/** Relative local imports of a module's text (type-only imports excluded). */
export function localImports(text: string): string[] {
  const out = new Set<string>();
  for (const re of SPECIFIER_RES) {
    for (const m of text.matchAll(re)) {
      if (m[2]) continue;
      out.add(m[3]);
    }
  }
  return [...out];
}

async function collect(entry: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const queue = [resolve(entry)];
  while (queue.length) {
    const path = queue.pop()!;
    if (files.has(path)) continue;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch {
      continue; // a missing import fails loudly when the job is imported
    }
    files.set(path, bytes);
    if (!/\.(ts|js|mts|mjs|tsx|jsx)$/.test(path)) continue;
    for (const spec of localImports(new TextDecoder().decode(bytes))) {
      queue.push(resolve(dirname(path), spec.split(/[?#]/)[0]));
    }
  }
  return files;
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
      const files = await collect(entry);
      const named = [...files].map(([abs, bytes]) => ({
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
