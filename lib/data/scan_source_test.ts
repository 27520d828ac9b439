import { join, resolve } from "node:path";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import type { ArtifactRef } from "../artifacts/mod.ts";
import { UserError } from "../errors/mod.ts";
import { scanAudioRoot, scanSourceOf } from "./scan_source.ts";

const synth = { key: "k", dir: "/store/objects/k" } as ArtifactRef;

Deno.test("scanAudioRoot: an input's sub-folder comes from the upstream artifact the runner gave", () => {
  const source = scanSourceOf({ source: { input: "audio", path: "audio" }, files: [] }, "f.json");
  assertEquals(scanAudioRoot(source, { audio: synth }, {}), join(synth.dir, "audio"));
  const e = assertThrows(() => scanAudioRoot(source, undefined, { step: "tokenize" }));
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  assertStringIncludes(e.message, `the scan's input "audio"`);
  assertEquals(e.location.step, "tokenize");
});

Deno.test("scanAudioRoot: a root parameter is read from the project's folder, as scan read it", () => {
  const source = scanSourceOf({ source: { param: "root", path: "data_small" } }, "f.json");
  assertEquals(scanAudioRoot(source, undefined, {}), resolve(Deno.cwd(), "data_small"));
});

Deno.test("scanSourceOf: an old files.json (a root path) says to rebuild it; a bad source is named", () => {
  const old = assertThrows(() => scanSourceOf({ root: "../abc/audio", files: [] }, "f.json"));
  assert(old instanceof UserError, `expected a UserError, got ${old}`);
  assertStringIncludes(old.message, "older scan");
  assertEquals([old.location.file, old.location.field], ["f.json", "source"]);
  for (
    const bad of [{}, { source: { path: "a" } }, { source: { input: "a", param: "b", path: "c" } }]
  ) {
    assertThrows(() => scanSourceOf(bad, "f.json"), "no valid `source`");
  }
});
