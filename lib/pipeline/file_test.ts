import { join } from "node:path";
import { assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { checkPipelinePath } from "./file.ts";

Deno.test("checkPipelinePath: a folder is named as a folder, with the YAML files in it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "a.yaml"), "name: a\n");
    Deno.writeTextFileSync(join(dir, "notes.txt"), "");
    const e = assertThrows(() => checkPipelinePath(dir), "is a folder, expected a YAML file");
    assertEquals(e instanceof UserError && e.location.file, dir);
    assertStringIncludes((e as UserError).hint ?? "", join(dir, "a.yaml"));
    assertEquals((e as UserError).hint?.includes("notes.txt"), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("checkPipelinePath: a file, or nothing at all, passes (the caller looks elsewhere)", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "p.yaml"), "name: p\n");
    // Neither throws: a file is fine, and a missing path is left to the caller.
    assertEquals(checkPipelinePath(join(dir, "p.yaml")), undefined);
    assertEquals(checkPipelinePath(join(dir, "missing.yaml")), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("checkPipelinePath: a device is not a pipeline file", () => {
  assertThrows(() => checkPipelinePath("/dev/null"), "is not a regular file");
});
