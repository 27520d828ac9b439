import { join } from "node:path";
import { assertEquals, assertNotEquals } from "../../tests/assert.ts";
import { codeHash, localImports } from "./code_hash.ts";

Deno.test("localImports finds static, re-export, side-effect and dynamic local imports, not type-only ones", () => {
  const src = `
import { z } from "zod";
import { a } from "./a.ts";
import type { T } from "./types.ts";
export { b } from "../b.ts";
export type { U } from "./u.ts";
import "./side.ts";
const m = await import("./lazy.ts");
import {
  c,
  d,
} from "./multi.ts";
`;
  assertEquals(localImports(src).sort(), [
    "../b.ts",
    "./a.ts",
    "./lazy.ts",
    "./multi.ts",
    "./side.ts",
  ]);
});

Deno.test("codeHash covers transitive local imports and ignores the folder the files sit in", async () => {
  const root = await Deno.makeTempDir();
  try {
    const make = async (dir: string, helper: string) => {
      await Deno.mkdir(join(root, dir, "jobs"), { recursive: true });
      await Deno.mkdir(join(root, dir, "lib"), { recursive: true });
      await Deno.writeTextFile(
        join(root, dir, "jobs", "j.ts"),
        `import { h } from "../lib/h.ts";\nexport const job = h;\n`,
      );
      await Deno.writeTextFile(
        join(root, dir, "lib", "h.ts"),
        `export const h = await import("./deep.ts");\n`,
      );
      await Deno.writeTextFile(join(root, dir, "lib", "deep.ts"), helper);
      return codeHash(join(root, dir, "jobs", "j.ts"), join(root, dir));
    };
    const a = await make("a", "export const x = 1;\n");
    const b = await make("b", "export const x = 1;\n");
    const c = await make("c", "export const x = 2;\n");
    assertEquals(a, b, "same bytes under the same relative names hash the same anywhere");
    assertNotEquals(a, c, "an edit two imports deep changes the hash");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test('localImports follows new URL("./x.ts", import.meta.url), not folders or other bases', () => {
  const src = `
const w = new Worker(new URL("./feature_worker.ts", import.meta.url), { type: "module" });
const data = new URL( '../data/table.bin' , import.meta.url );
export const ROOT = new URL("../../", import.meta.url);
const other = new URL("./not_local.ts", "https://example.com/");
`;
  assertEquals(localImports(src).sort(), ["../data/table.bin", "./feature_worker.ts"]);
});
