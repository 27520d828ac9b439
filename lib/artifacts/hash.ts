/**
 * Hashing helpers shared by the store and the pipeline planner: hex SHA-256 of
 * bytes and of canonical JSON (object keys sorted), so keys computed on
 * different machines agree byte for byte.
 *
 * @module
 */

/** Hex SHA-256 of `data` (bytes, or a string taken as UTF-8). */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return toHex(new Uint8Array(digest));
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * JSON with object keys sorted at every level and no whitespace; `undefined`
 * members are dropped (as `JSON.stringify` does), so equal values give equal text.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** SHA-256 of a file's bytes, read in chunks (files may be larger than memory wants). */
export async function sha256File(
  path: string,
  fsync = false,
): Promise<{ sha256: string; size: number }> {
  // WebCrypto has no streaming digest; files in this project are at most a few
  // hundred MB, so one read is acceptable and far faster than a JS SHA-256.
  const file = await Deno.open(path, { read: true, write: fsync });
  try {
    const stat = await file.stat();
    const buf = new Uint8Array(stat.size);
    let off = 0;
    while (off < buf.length) {
      const n = await file.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    if (fsync) await file.sync();
    return { sha256: await sha256Hex(buf.subarray(0, off)), size: off };
  } finally {
    file.close();
  }
}
