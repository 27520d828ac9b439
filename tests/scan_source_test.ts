/**
 * Where scan's audio is: files.json names it by scan's input slot or by the
 * `root` parameter as written (no local path, no `..` into another artifact),
 * and tokenize reads synth's audio only as a declared upstream input, checked
 * before anything runs.
 *
 * @module
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import {
  byStep,
  type CliResult,
  E2E_PIPELINE,
  type JsonSummary,
  sandbox,
  writeLabelledWavs,
} from "./fixtures/e2e/helpers.ts";

/** files.json must name no folder of this machine: no absolute path, no `..`. */
function assertNoLocalPath(text: string, where: string, folders: string[]): void {
  assert(!text.includes(".."), `${where} holds a ".." path:\n${text.slice(0, 300)}`);
  for (const f of folders) {
    assert(!text.includes(f), `${where} holds the local path ${f}:\n${text.slice(0, 300)}`);
  }
  const source = JSON.parse(text).source;
  assert(
    !String(source?.path).startsWith("/"),
    `${where}: source.path is absolute: ${source?.path}`,
  );
  assert(!("root" in JSON.parse(text)), `${where} still has a root path`);
}

Deno.test("scan from synth: files.json names the input slot; --only tokenize without synth's artifact names it up front", async () => {
  await using box = await sandbox("samout-scan-source-");
  const store = join(box.path, "store");
  const warm = await box.pipeline(E2E_PIPELINE, store, ["--until", "scan"]);
  assertEquals(warm.code, 0, warm.stderr);
  const keys = byStep(warm.summary, "key");
  const scanDir = join(store, "objects", keys.scan!);
  await Deno.remove(join(store, "objects", keys.synth!), { recursive: true });
  const r = await box.pipeline(E2E_PIPELINE, store, ["--only", "tokenize", "--force", "tokenize"]);
  assert(r.code !== 0, `tokenize ran without synth's artifact:\n${r.stderr}`);
  assertStringIncludes(r.stderr, 'input "scan.audio" (step "synth") is not in the store');
  // Stopped while deciding what to run: tokenize never started (it would fail reading a file).
  assertEquals(r.summary.steps, undefined, r.stdout);
  assertStringIncludes(r.summary.error ?? "", '"synth"');

  const text = await Deno.readTextFile(join(scanDir, "files.json"));
  assertNoLocalPath(text, "files.json", [box.path, REPO_ROOT, keys.synth!]);
  assertEquals(JSON.parse(text).source, { input: "audio", path: "audio" });

  // A whole run rebuilds synth's artifact, and tokenize waits for it before reading the audio.
  const rebuilt = await box.pipeline(E2E_PIPELINE, store, ["--until", "tokenize"]);
  assertEquals(rebuilt.code, 0, rebuilt.stderr);
  assertEquals(byStep(rebuilt.summary, "status"), {
    ...byStep(rebuilt.summary, "status"),
    synth: "ran",
    scan: "cached",
    tokenize: "ran",
  });
});

/** `pipeline E2E --until scan` in `cwd` (a project folder), as `deno task` would run it there. */
async function scanIn(cwd: string, store: string, xdg: string, extra: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(REPO_ROOT, "main.ts"),
      "pipeline",
      E2E_PIPELINE,
      "--store",
      store,
      "--json",
      "--until",
      "scan",
      "--set",
      "scan.root=data_small",
      ...extra,
    ],
    cwd,
    env: { XDG_RUNTIME_DIR: xdg, NO_COLOR: "1", INIT_CWD: cwd },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const r: CliResult = {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
  assertEquals(r.code, 0, `the scan in ${cwd} failed:\n${r.stderr}`);
  return { ...r, summary: JSON.parse(r.stdout) as JsonSummary };
}

Deno.test("scan of a relative folder: two project folders with the same data give the same key and the same bytes", async () => {
  await using box = await sandbox("samout-scan-source-");
  const xdg = join(box.path, "xdg");
  const projects = [join(box.path, "checkout_a"), join(box.path, "checkout_b")];
  for (const p of projects) {
    await writeLabelledWavs(join(p, "data_small"), { drum: 220, hum: 330, bell: 550 }, 6, 3);
  }
  const shared = join(box.path, "store");
  const a = await scanIn(projects[0], shared, xdg, []);
  const keyA = byStep(a.summary, "key").scan!;
  const text = await Deno.readTextFile(join(shared, "objects", keyA, "files.json"));

  // The other checkout: its own store gives the same bytes; forcing the scan into the
  // shared store reproduces the published artifact instead of setting it aside.
  const own = join(box.path, "store_b");
  const b = await scanIn(projects[1], own, xdg, []);
  assertEquals(byStep(b.summary, "key").scan, keyA, "the key hashes the param as written");
  assertEquals(await Deno.readTextFile(join(own, "objects", keyA, "files.json")), text);
  const forced = await scanIn(projects[1], shared, xdg, ["--force", "scan"]);
  assertStringIncludes(byStep(forced.summary, "reason").scan!, "reproduced bit-identically");
  assertEquals(await Deno.readTextFile(join(shared, "objects", keyA, "files.json")), text);
  const quarantine = await Array.fromAsync(Deno.readDir(join(shared, "quarantine"))).catch(
    () => [],
  );
  assertEquals(quarantine.length, 0, "nothing was set aside");
  assertNoLocalPath(text, "files.json", [box.path]);
  assertEquals(JSON.parse(text).source, { param: "root", path: "data_small" });
});
