import { assertEquals } from "../../tests/assert.ts";
import { canonicalJson, sha256Hex, sha256Sync, toHex } from "./hash.ts";

Deno.test("sha256Sync matches WebCrypto on awkward lengths around block boundaries", async () => {
  let seed = 12345;
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 4097]) {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    const want = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    assertEquals(toHex(sha256Sync(bytes)), want, `length ${n}`);
  }
});

Deno.test("sha256Hex of a known string", async () => {
  assertEquals(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("canonicalJson sorts keys at every level and drops undefined", () => {
  assertEquals(
    canonicalJson({ b: 1, a: { d: [2, { z: 1, y: undefined }], c: null } }),
    '{"a":{"c":null,"d":[2,{"z":1}]},"b":1}',
  );
});
