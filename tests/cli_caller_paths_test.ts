/**
 * Relative paths on the command line are read from the folder the user ran
 * the command in (`INIT_CWD`, set by `deno task`, which itself runs in the
 * project root): an export bundle's card (`deno task generate --model .`,
 * `tokens encode --tokenizer . --audio clip.wav`, `model info
 * model.safetensors`) works from the bundle's folder.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { callerDir, fromCaller } from "../lib/cli/caller.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { hasStackTrace, runCli, shown, tinyStore } from "./cli_fixture.ts";

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "cli-caller-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });

Deno.test("fromCaller: absolute paths as they are, relative ones from INIT_CWD, else the current folder", () => {
  assertEquals(fromCaller("/a/b/../c", env({ INIT_CWD: "/home/u" })), "/a/c");
  assertEquals(
    fromCaller("clip.wav", env({ INIT_CWD: "/home/u/bundle" })),
    "/home/u/bundle/clip.wav",
  );
  assertEquals(fromCaller(".", env({ INIT_CWD: "/home/u/bundle/" })), "/home/u/bundle");
  assertEquals(fromCaller("../x", env({ INIT_CWD: "/home/u/bundle" })), "/home/u/x");
  assertEquals(fromCaller("x/y", env({})), join(Deno.cwd(), "x/y"));
  assertEquals(fromCaller("x", env({ INIT_CWD: "" })), join(Deno.cwd(), "x"));
  assertEquals(callerDir(env({})), Deno.cwd());
});

Deno.test("from a bundle's folder: generate --model ., tokens encode --tokenizer . --audio clip.wav, model info model.safetensors", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const bundle = join(dir.path, "bundle");
  await Deno.mkdir(bundle);
  for await (const e of Deno.readDir(t.exportDir)) {
    await Deno.copyFile(join(t.exportDir, e.name), join(bundle, e.name));
  }
  const x = Float32Array.from({ length: 2400 }, (_, i) => 0.5 * Math.sin(i / 5));
  await Deno.writeFile(join(bundle, "clip.wav"), encodeWav([x], 8000, { bits: 16 }));
  // deno task runs in the project root and sets INIT_CWD to where the user was.
  const here = { cwd: REPO_ROOT, env: { INIT_CWD: bundle } };

  const gen = await runCli(
    ["generate", "--model", ".", "--backend", "cpu", "--count", "1", "--out", "gen"],
    here,
  );
  assert(gen.code === 0 || gen.code === 1, shown(gen)); // a random tiny model may fall short
  assert(!hasStackTrace(gen), shown(gen));
  const samples = JSON.parse(await Deno.readTextFile(join(bundle, "gen", "samples.json")));
  assertEquals(samples.model, t.keys.export);

  const enc = await runCli(["tokens", "encode", "--tokenizer", ".", "--audio", "clip.wav"], here);
  assertEquals(enc.code, 0, shown(enc));
  assert(JSON.parse(enc.stdout).length > 0, shown(enc));

  const info = await runCli(["model", "info", "model.safetensors"], here);
  assertEquals(info.code, 0, shown(info));
  assertStringIncludes(info.stdout, `file         ${join(bundle, "model.safetensors")}`);

  const wav = await runCli(
    ["tokens", "to-audio", "--tokenizer", ".", "--tokens", "1 10 11 12 2", "--out", "back.wav"],
    here,
  );
  assertEquals(wav.code, 0, shown(wav));
  await Deno.stat(join(bundle, "back.wav"));
});

Deno.test("--store, a record file, an artifact folder and a pipeline file are read from INIT_CWD", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  const here = { cwd: REPO_ROOT, env: { INIT_CWD: dir.path } };
  const runs = await runCli(["runs", "--store", "store", "--json"], here);
  assertEquals(runs.code, 0, shown(runs));
  assertEquals(JSON.parse(runs.stdout).map((r: { id: string }) => r.id), [t.runId]);

  const record = join("store", "runs", `${t.runId}.json`);
  const show = await runCli(["show", record, "--store", "store", "--json"], here);
  assertEquals(show.code, 0, shown(show));
  assertEquals(JSON.parse(show.stdout).run, t.runId);

  const train = join("store", "objects", t.keys.train);
  const model = await runCli(["eval", "--model", train, "--store", "store", "--json"], here);
  // The tiny store has no bucket data to evaluate on; what matters is that the folder was found.
  assert(!model.stderr.includes("no model named"), shown(model));

  await Deno.copyFile(
    join(REPO_ROOT, "tests", "fixtures", "pipelines", "e2e_tiny.yaml"),
    join(dir.path, "tiny.yaml"),
  );
  const plan = await runCli(
    ["pipeline", "tiny.yaml", "--dry-run", "--store", "store2", "--json"],
    here,
  );
  assertEquals(plan.code, 0, shown(plan));
  assertEquals(JSON.parse(plan.stdout).status, "dry-run");
  // A name not in the caller's folder is still looked up in pipelines/.
  const named = await runCli(["pipeline", "train", "--dry-run", "--store", "store2"], here);
  assertEquals(named.code, 0, shown(named));
});

Deno.test("artifacts list, show, verify and runs read a relative --store from INIT_CWD", async () => {
  await using dir = await tempDir();
  const t = await tinyStore(dir.path);
  // From the project root, where no store/ folder is: only INIT_CWD makes "store" resolve.
  const here = { cwd: REPO_ROOT, env: { INIT_CWD: dir.path } };
  const list = await runCli(["artifacts", "list", "--store", "store", "--json"], here);
  assertEquals(list.code, 0, shown(list));
  assertEquals(
    JSON.parse(list.stdout).map((m: { key: string }) => m.key).sort(),
    Object.values(t.keys).sort(),
  );
  const show = await runCli(["artifacts", "show", t.keys.train, "--store", "store"], here);
  assertEquals(show.code, 0, shown(show));
  assertEquals(JSON.parse(show.stdout).manifest.key, t.keys.train);
  const verify = await runCli(["artifacts", "verify", "--store", "store"], here);
  assertStringIncludes(verify.stdout, "4 artifacts checked", shown(verify));
  const runs = await runCli(["artifacts", "runs", "--store", "store"], here);
  assertEquals(runs.code, 0, shown(runs));
  assertStringIncludes(runs.stdout, `${t.runId}.json  succeeded`);
});
