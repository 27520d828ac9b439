/**
 * The code hash of a job: SHA-256 over its file and every local module it
 * imports, transitively (static `import … from "./x.ts"`, `export … from`,
 * side-effect imports, `import("./x.ts")` with a string literal, and files
 * named by `new URL("./x.ts", import.meta.url)`, which is how worker entry
 * points and data files beside a module are loaded). Type-only imports are
 * left out: they are erased before the code runs. Bare and remote specifiers
 * (npm packages) are not read; what they resolve to is pinned by `deno.lock`
 * and the `imports` of `deno.json`, and both are part of every code hash, so a
 * dependency upgrade re-runs every step.
 *
 * Files are named by repo-relative path (or, outside the repo, relative to a
 * given base) and hashed as raw bytes, so the hash is the same on every machine.
 *
 * @module
 */
import { dirname, relative, resolve } from "./path.ts";
import { canonicalJson, sha256Hex } from "../artifacts/hash.ts";
import { insideOf, REPO_ROOT } from "./paths.ts";

const cache = new Map<string, Promise<string>>();
/** Per-process cache of each module file's bytes and local imports (shared by all jobs). */
const files = new Map<string, { bytes: Uint8Array; imports: string[] } | undefined>();

// `from "./x.ts"`, `import "./x.ts"`, `import("./x.ts")`: a relative string literal after from/import.
const SPECIFIER_RE = /(\bfrom|\bimport)\s*(\(\s*)?["'](\.{1,2}\/[^"'\n]+)["']/g;
// `new URL("./x.ts", import.meta.url)`: a file loaded at run time (a worker's entry point, data).
const URL_RE = /\bnew\s+URL\(\s*["'](\.{1,2}\/[^"'\n]*[^/"'\n])["']\s*,\s*import\.meta\.url\s*\)/g;

let pins: { name: string; bytes: Uint8Array }[] | undefined;

/** The dependency pins hashed with every job: `deno.lock` and the `imports` of `deno.json`. */
function dependencyPins(): { name: string; bytes: Uint8Array }[] {
  if (pins) return pins;
  const out: { name: string; bytes: Uint8Array }[] = [];
  try {
    out.push({ name: "deno.lock", bytes: Deno.readFileSync(`${REPO_ROOT}/deno.lock`) });
  } catch { /* no lock file: nothing pinned beyond deno.json */ }
  try {
    const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/deno.json`));
    out.push({
      name: "deno.json#imports",
      bytes: new TextEncoder().encode(canonicalJson(config.imports ?? {})),
    });
  } catch { /* no deno.json */ }
  return pins = out;
}

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
  for (const m of text.matchAll(URL_RE)) out.add(m[1]);
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

/** The files a job's code hash covers, named as in the hash, sorted by name. */
function namedFiles(entry: string, outsideBase: string): { name: string; bytes: Uint8Array }[] {
  const named = [...collect(entry)].map(([abs, bytes]) => ({
    name: insideOf(REPO_ROOT, abs) ?? relative(outsideBase, abs).split("\\").join("/"),
    bytes,
  }));
  named.push(...dependencyPins());
  return named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Hex SHA-256 over `name\nlength\n` + bytes of each file, sorted by name:
 * the job's modules and the dependency pins (`deno.lock`, `deno.json#imports`).
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
      const enc = new TextEncoder();
      const parts = namedFiles(entry, outsideBase).flatMap((f) => [
        enc.encode(`${f.name}\n${f.bytes.length}\n`),
        f.bytes,
      ]);
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

/**
 * The files behind {@link codeHash}, each with its own hex SHA-256 (name ->
 * hash), for run records: a later `--rerun` can then say which files changed.
 */
export async function codeFiles(
  entry: string,
  outsideBase = dirname(resolve(entry)),
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of namedFiles(entry, outsideBase)) out[f.name] = await sha256Hex(f.bytes);
  return out;
}
