/**
 * POSIX path helpers built on `Deno.cwd()` and `URL` alone. The pipeline's hot
 * path avoids `node:path`/`node:url`: the first `node:` import initialises
 * Deno's Node compatibility layer, which costs about as much as a whole cached
 * pipeline re-run may take. (Paths use `/`; the project runs on Linux and macOS.)
 *
 * @module
 */

/** True for `/…` paths. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** Collapses `.`, `..`, repeated and trailing slashes. */
export function normalize(path: string): string {
  const abs = isAbsolute(path);
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
    } else out.push(part);
  }
  const s = out.join("/");
  return abs ? `/${s}` : s || ".";
}

/** Joins path parts with `/` and normalises. */
export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p !== "").join("/"));
}

/** An absolute, normalised path; relative ones are taken from `Deno.cwd()` (or the last absolute part). */
export function resolve(...parts: string[]): string {
  let path = "";
  for (const p of parts) path = isAbsolute(p) ? p : path ? `${path}/${p}` : p;
  return normalize(isAbsolute(path) ? path : `${Deno.cwd()}/${path}`);
}

/** The folder part of a path. */
export function dirname(path: string): string {
  const n = normalize(path);
  const i = n.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : n.slice(0, i);
}

/** The path from folder `from` to `to` (both resolved first), `/`-separated. */
export function relative(from: string, to: string): string {
  const a = resolve(from).split("/").filter(Boolean);
  const b = resolve(to).split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/");
}

/** `file://` URL of an absolute path (each segment percent-encoded). */
export function toFileUrl(path: string): string {
  return `file://${resolve(path).split("/").map(encodeURIComponent).join("/")}`;
}

/** The path of a `file://` URL. */
export function fromFileUrl(url: string | URL): string {
  return decodeURIComponent(new URL(url).pathname);
}
