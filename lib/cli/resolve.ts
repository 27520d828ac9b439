/**
 * Names a trained model the way every command takes one (`--model`): a train
 * artifact's folder or an export bundle (a path from the folder the command
 * was run in, see `caller.ts`), an artifact key or key prefix in the
 * store, a run's `--name` (its newest run), a run id (or a unique prefix of
 * one), or `latest` / `latest~N` (the newest run that has a train step, N runs
 * back).
 *
 * @module
 */
import { basename, join, resolve } from "node:path";
import { Command } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";
import { checkStorePath } from "../artifacts/faults.ts";
import { defaultStoreDir, displayPath } from "../pipeline/paths.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { fromCaller } from "./caller.ts";
import { type RunRecord, unreadableRecordWarning } from "../pipeline/records.ts";
import { loadRuns } from "../experiments/runs.ts";
import { sha256Hex } from "../artifacts/hash.ts";
import type { SamOutConfig } from "../model/config.ts";

/** A resolved model: a train artifact (and what it was trained from) or an export bundle. */
export interface ResolvedModel {
  /** The train artifact's or bundle's folder. */
  modelDir: string;
  /** The weights file (train: best.safetensors; bundle: model.safetensors). */
  weightsFile: string;
  /** The bucket artifact it was trained on (absent for a bundle). */
  dataDir?: string;
  /** The folder with vocab.json and the tokenizer (the tokenize artifact, or the bundle). */
  tokensDir?: string;
  /**
   * What the model is: the train artifact's key; for a bundle, the export
   * artifact's key (its manifest.json), or `sha256:<hex>` of model.safetensors
   * for a bundle without a manifest.
   */
  key: string;
  /** For a bundle with a manifest: the key of the train artifact it was exported from. */
  trainedModel?: string;
  /** How the name was read, for messages ("latest run 2026-…"). */
  via: string;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

interface Manifest {
  key: string;
  job: string;
  inputs: Record<string, string>;
}

async function readManifest(dir: string): Promise<Manifest> {
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
  } catch (e) {
    throw new UserError(`cannot read the artifact's manifest: ${(e as Error).message}`, {
      file: join(dir, "manifest.json"),
      expected: "a published artifact folder (with manifest.json)",
    });
  }
}

/**
 * The store folder `--store` names (read from the caller's folder, see
 * {@link fromCaller}; default `$SAMOUT_STORE` or `artifacts/`), absolute; a `UserError` naming `--store` when it does not exist or is not a
 * folder (reading runs from a missing store would only say it has none).
 */
export function existingStoreDir(option?: string): string {
  const dir = option === undefined ? resolve(defaultStoreDir()) : fromCaller(option);
  checkStorePath(dir, { mustExist: true });
  return dir;
}

const MODEL_NAMES =
  "a train artifact or export bundle folder, an artifact key (prefix), a run name or id, latest or latest~N";

/**
 * Resolves `name` (see the module doc) in the store at `storeDir`; warnings
 * (an unreadable run record passed over) go to `opts.warn`, by default stderr.
 */
export async function resolveModel(
  name: string,
  storeDir?: string,
  opts: { warn?: (text: string) => void } = {},
): Promise<ResolvedModel> {
  const where = { field: "--model" };
  if (name.trim() === "") {
    throw new UserError("the model name is empty", {
      ...where,
      expected: MODEL_NAMES,
      found: JSON.stringify(name),
    });
  }
  let key: string | undefined;
  let modelDir: string;
  let via = name;
  if (await isDir(fromCaller(name))) {
    modelDir = fromCaller(name);
    via = displayPath(modelDir);
    if (await isBundle(modelDir)) return await bundleModel(modelDir, via);
    key = (await readManifest(modelDir)).key;
  } else {
    const store = existingStoreDir(storeDir);
    const objects = join(store, "objects");
    const latest = /^latest(?:~(\d+))?$/.exec(name);
    const warn = opts.warn ?? ((t) => consoleOutput().err(t));
    const records = await loadRuns(store, (r) => warn(unreadableRecordWarning(r.file, r.problem)));
    const trainKey = (r: RunRecord) =>
      Object.values(r.steps ?? {}).find((s) =>
        s.job === "train" && s.key && (s.status === "ran" || s.status === "cached")
      )?.key;
    if (latest) {
      const back = Number(latest[1] ?? 0);
      const withModel = records.filter((r) =>
        r.record.status === "succeeded" && trainKey(r.record)
      );
      const pick = withModel[back];
      if (!pick) {
        throw new UserError(
          `no run "${name}": the store has ${withModel.length} successful runs with a train step`,
          {
            ...where,
            file: join(store, "runs"),
            hint: "run a pipeline first (deno task pipeline train.yaml), or pass --store",
          },
        );
      }
      key = trainKey(pick.record)!;
      via = `${name} (run ${pick.record.id})`;
    } else {
      // A run's --name (the newest run of that name), else its id or a unique prefix.
      const named = records.filter((r) => r.record.name === name && trainKey(r.record));
      const exact = records.filter((r) => r.record.id === name);
      const byRun = named.length > 0
        ? named.slice(0, 1)
        : exact.length > 0
        ? exact
        : records.filter((r) => basename(r.file).startsWith(name));
      if (byRun.length > 1) {
        throw new UserError(`the run id prefix "${name}" matches ${byRun.length} runs`, {
          ...where,
          found: byRun.slice(0, 5).map((r) => r.record.id).join(", ") +
            (byRun.length > 5 ? ", …" : ""),
          hint: "give more characters of the run id (deno task runs lists them)",
        });
      }
      if (byRun.length === 1) {
        key = trainKey(byRun[0].record);
        if (!key) {
          throw new UserError(`run ${byRun[0].record.id} has no trained model`, {
            ...where,
            expected: "a run whose train step ran or was cached",
            found: `a ${byRun[0].record.status} run without a train artifact`,
          });
        }
        via = `run ${byRun[0].record.id}`;
      } else if (/^[0-9a-f]{4,64}$/.test(name)) {
        const matches: string[] = [];
        try {
          for await (const e of Deno.readDir(objects)) {
            if (e.isDirectory && e.name.startsWith(name)) matches.push(e.name);
          }
        } catch {
          // No objects folder: nothing matches.
        }
        if (matches.length > 1) {
          throw new UserError(`the key prefix "${name}" matches ${matches.length} artifacts`, {
            ...where,
            found: matches.slice(0, 5).map((m) => m.slice(0, 16)).join(", "),
            hint: "give more characters of the key",
          });
        }
        key = matches[0];
      }
    }
    if (!key) {
      throw new UserError(`no model named "${name}"`, {
        ...where,
        expected: MODEL_NAMES,
        hint: `runs and keys are looked up in the store ${displayPath(store)} (--store DIR)`,
      });
    }
    modelDir = join(objects, key);
  }
  const manifest = await readManifest(modelDir);
  if (manifest.job === "export" && await isBundle(modelDir)) {
    return await bundleModel(modelDir, via === name ? `export artifact ${name}` : via);
  }
  if (manifest.job !== "train") {
    throw new UserError(`"${name}" is a ${manifest.job} artifact, not a trained model`, {
      ...where,
      expected: "a train or export artifact",
      found: `${manifest.job} ${manifest.key.slice(0, 12)}`,
    });
  }
  const dataKey = manifest.inputs?.data;
  const dataDir = resolve(modelDir, "..", dataKey ?? "");
  if (!dataKey || !(await isDir(dataDir))) {
    throw new UserError("the bucket artifact this model was trained on is not in the store", {
      ...where,
      file: dataDir,
      hint: "re-run the pipeline that trained it (every step but train is cheap) in this store",
    });
  }
  let tokensDir: string | undefined;
  try {
    const tokensKey = (await readManifest(dataDir)).inputs?.tokens;
    if (tokensKey && await isDir(resolve(dataDir, "..", tokensKey))) {
      tokensDir = resolve(dataDir, "..", tokensKey);
    }
  } catch {
    // Without its tokenize artifact a model still scores token data; audio needs the tokenizer.
  }
  return {
    modelDir,
    weightsFile: join(modelDir, "best.safetensors"),
    dataDir,
    tokensDir,
    key: manifest.key,
    via,
  };
}

/** An export bundle: weights, vocabulary and tokenizer side by side, no manifest needed. */
async function isBundle(dir: string): Promise<boolean> {
  for (const f of ["model.safetensors", "vocab.json", "tokenizer.json"]) {
    try {
      if (!(await Deno.stat(join(dir, f))).isFile) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * A bundle as a model: its identity is the export artifact's key when its
 * manifest.json is there (an artifact folder, or a bundle copied whole), else
 * the SHA-256 of its weights.
 */
async function bundleModel(modelDir: string, via: string): Promise<ResolvedModel> {
  const weightsFile = join(modelDir, "model.safetensors");
  let manifest: Manifest | undefined;
  try {
    manifest = JSON.parse(await Deno.readTextFile(join(modelDir, "manifest.json")));
  } catch {
    manifest = undefined;
  }
  let key: string;
  let bytes: Uint8Array | undefined;
  if (manifest && typeof manifest.key === "string" && manifest.job === "export") key = manifest.key;
  else {
    bytes = await readWeightsFile(weightsFile, "an export bundle with model.safetensors");
    key = `sha256:${await sha256Hex(bytes)}`;
  }
  const trainedModel = typeof manifest?.inputs?.model === "string"
    ? manifest.inputs.model
    : undefined;
  const model = { modelDir, weightsFile, tokensDir: modelDir, key, trainedModel, via };
  if (bytes) weightsRead.set(model, bytes);
  return model;
}

/**
 * Weights already read to hash a bundle without a manifest, so that
 * {@link readModelWeights} does not read the file again; taken once.
 */
const weightsRead = new WeakMap<ResolvedModel, Uint8Array>();

async function readWeightsFile(file: string, expected: string, hint?: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(file);
  } catch (e) {
    throw new UserError(`cannot read the trained weights: ${(e as Error).message}`, {
      file,
      field: "--model",
      expected,
      hint,
    });
  }
}

/**
 * The model's config and weights from its weights file; a `UserError` naming
 * the file when it is missing or unreadable (as `eval` gives), or not a SamOut
 * checkpoint.
 */
export async function readModelWeights(
  model: ResolvedModel,
): Promise<{ cfg: SamOutConfig; params: Map<string, Float32Array> }> {
  const read = weightsRead.get(model);
  weightsRead.delete(model);
  const bytes = read ?? (model.dataDir
    ? await readWeightsFile(
      model.weightsFile,
      "a train artifact with best.safetensors",
      "deno task artifacts verify finds damaged artifacts; re-run the pipeline with --force train",
    )
    : await readWeightsFile(model.weightsFile, "an export bundle with model.safetensors"));
  const { samoutFromSafetensors } = await import("../model/safetensors.ts");
  const { cfg, params } = samoutFromSafetensors(bytes, { file: model.weightsFile });
  return { cfg, params };
}

/**
 * A RUN argument as `resolveRun` takes it: a record file (`….json`) read from
 * the caller's folder ({@link fromCaller}), anything else (latest, an id, a
 * name) as it is.
 */
export function runArgument(name: string): string {
  return name.endsWith(".json") ? fromCaller(name) : name;
}

/** The tokenizer folder of `model`, or a UserError saying how to get one. */
export function tokenizerDirOf(model: ResolvedModel): string {
  if (!model.tokensDir) {
    throw new UserError("the model's tokenizer (its tokenize artifact) is not in the store", {
      field: "--model",
      hint: "re-run the pipeline that trained it in this store, or use an export bundle",
    });
  }
  return model.tokensDir;
}

/**
 * Parses `args` with a commander program built with `.exitOverride()`:
 * null when the command should run, else the exit code (0 after --help, 1
 * for a malformed command line, whose message commander already printed).
 */
export function parseCommandLine(
  program: { parse(args: string[], opts: { from: "user" }): unknown },
  args: string[],
): number | null {
  try {
    program.parse(args, { from: "user" });
    return null;
  } catch (e) {
    if (e instanceof UserError) throw e;
    return (e as { exitCode?: number }).exitCode === 0 ? 0 : 1;
  }
}

/**
 * A command that takes a model: `--model NAME` (required) and `--store DIR`;
 * `--help` on stdout, usage errors through `err`, and no process exit (see
 * {@link parseCommandLine}).
 */
export function modelCommand(name: string, description: string, err: (text: string) => void) {
  return new Command(name)
    .description(description)
    .requiredOption(
      "--model <name>",
      "train artifact or export bundle folder, key (prefix), run name or id, latest, latest~N",
    )
    .option("--store <dir>", "artifact store (default $SAMOUT_STORE or artifacts/)")
    .exitOverride()
    .configureOutput({ writeOut: (text) => consoleOutput().out(text), writeErr: err });
}
