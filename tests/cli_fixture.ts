/**
 * For the command tests (`tests/cli_*_test.ts`): `main.ts` as a subprocess,
 * and a hand-made store holding the tiny model of `export_fixture.ts` as a
 * train artifact (with its bucket and tokenize artifacts), an export
 * artifact (a bundle) and a run record naming them, written in
 * milliseconds, no pipeline run.
 *
 * @module
 */
import { join } from "node:path";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { writeTinyArtifacts } from "./export_fixture.ts";

/** What a command printed and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `deno run -A main.ts ARGS…` in `cwd` (default: the repository root, as
 * `deno task` runs it) with `env` added to this process's environment.
 * `INIT_CWD` (the folder `deno task` was started in) is `cwd` unless `env`
 * sets it, so one inherited from the shell running the tests changes nothing.
 */
export async function runCli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    cwd: opts.cwd ?? REPO_ROOT,
    env: {
      NO_COLOR: "1",
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      INIT_CWD: opts.cwd ?? REPO_ROOT,
      ...opts.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The one-line summary of a run for assertion messages. */
export function shown(r: CliRun): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** True when the output holds a stack trace (`    at …` lines). */
export function hasStackTrace(r: CliRun): boolean {
  return /^\s+at /m.test(r.stderr) || /^\s+at /m.test(r.stdout);
}

/** Where {@link tinyStore} put things. */
export interface TinyStore {
  /** The store folder (objects/, runs/). */
  store: string;
  /** Keys of the artifacts (64 hex each; they differ in their first character). */
  keys: { train: string; bucket: string; tokenize: string; export: string };
  /** The train artifact's folder. */
  trainDir: string;
  /** The export artifact's folder (a bundle: model.safetensors, vocab.json, tokenizer.json). */
  exportDir: string;
  /** The run record's id. */
  runId: string;
  /** The model's categories. */
  categories: string[];
}

const key = (c: string) => c.repeat(64);

async function publish(
  store: string,
  k: string,
  job: string,
  inputs: Record<string, string>,
): Promise<string> {
  const dir = join(store, "objects", k);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "manifest.json"),
    JSON.stringify({
      key: k,
      job,
      job_version: "1",
      code_hash: "0",
      step: job,
      params: {},
      inputs,
      sources: {},
      files: [],
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: "2026-01-01T00:00:01.000Z",
      environment: {},
    }),
  );
  return dir;
}

/** A run record of a succeeded pipeline whose train and export steps ran. */
export function runRecord(id: string, keys: Record<string, string>): Record<string, unknown> {
  return {
    format: 1,
    id,
    pipeline: { name: "train", file: "pipelines/train.yaml", sha256: "0", text: "" },
    overrides: [],
    seed: 1,
    jobs_dir: "jobs",
    options: {},
    started_at: "2026-01-01T00:00:00.000Z",
    finished_at: "2026-01-01T00:01:00.000Z",
    status: "succeeded",
    steps: Object.fromEntries(
      Object.entries(keys).map(([job, k]) => [job, { job, status: "ran", reason: "new", key: k }]),
    ),
  };
}

/** Writes the tiny store under `root` (see the module doc). */
export async function tinyStore(root: string): Promise<TinyStore> {
  const store = join(root, "store");
  const scratch = join(root, "scratch");
  const tiny = await writeTinyArtifacts(scratch);
  const keys = { train: key("a"), bucket: key("b"), tokenize: key("c"), export: key("e") };
  const tokDir = await publish(store, keys.tokenize, "tokenize", {});
  for await (const e of Deno.readDir(tiny.tokensDir)) {
    await Deno.copyFile(join(tiny.tokensDir, e.name), join(tokDir, e.name));
  }
  await publish(store, keys.bucket, "bucket", { tokens: keys.tokenize });
  const trainDir = await publish(store, keys.train, "train", { data: keys.bucket });
  for await (const e of Deno.readDir(tiny.modelDir)) {
    await Deno.copyFile(join(tiny.modelDir, e.name), join(trainDir, e.name));
  }
  const exportDir = await publish(store, keys.export, "export", { model: keys.train });
  await Deno.copyFile(
    join(tiny.modelDir, "best.safetensors"),
    join(exportDir, "model.safetensors"),
  );
  for (const f of ["vocab.json", "tokenizer.json", "codebook.f32"]) {
    await Deno.copyFile(join(tiny.tokensDir, f), join(exportDir, f));
  }
  await Deno.remove(scratch, { recursive: true });
  const runId = "2026-01-01T00-00-00-000Z-train-abc123";
  await Deno.mkdir(join(store, "runs"), { recursive: true });
  await Deno.writeTextFile(
    join(store, "runs", `${runId}.json`),
    JSON.stringify(runRecord(runId, { train: keys.train, export: keys.export })),
  );
  return {
    store,
    keys,
    trainDir,
    exportDir,
    runId,
    categories: ["coin", "jump", "laser"],
  };
}
