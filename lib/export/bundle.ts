/**
 * Writes the export bundle: a folder that works without the artifact store.
 *
 * ```
 * model.onnx          ids [batch, length] int64 → logits [batch, length, V]
 * model.step.onnx     token [batch], state [L, batch, d], position [batch] → logits, new_state
 * model.safetensors   the weights, SAMOUT.md names, sizes in __metadata__
 * config.json         voc_size, hidden_size, num_heads, num_layers, max_positions, parameters
 * vocab.json          the vocabulary (lib/data/types.ts)
 * tokenizer.json      + codebook.f32 (mel-vq) or encoder.onnx / decoder.onnx (onnx-codec)
 * samout.py           PyTorch module with SAMOUT.md's names, forward and step form
 * check.json          the self-check's measured errors, with example ids and logits
 * README.md           the model card
 * ```
 *
 * Before anything is checked, the inputs must agree: the checkpoint's sizes
 * with the train artifact's `config.json`, the model's vocabulary with the
 * tokenizer's. The bundle's tokenizer is opened from the bundle itself, and
 * the ONNX models are checked against the WGSL forward (`check.ts`); any
 * problem is a `UserError` and no bundle is published.
 *
 * @module
 */
import { join } from "node:path";
import { readJsonFile, readTokenizedData } from "../data/tokenized.ts";
import { checkVocabulary, vocabularySize } from "../data/vocab.ts";
import { UserError } from "../errors/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import type { SamOutConfig } from "../model/config.ts";
import { parameterCount } from "../model/params.ts";
import { samoutFromSafetensors, samoutToSafetensors } from "../model/safetensors.ts";
import { openTokenizerDir } from "../tokenizers/mod.ts";
import { checkBatchesFrom } from "./check_batches.ts";
import { checkExportedModels, type ExportCheckReport, type WebGpuMode } from "./check.ts";
import { renderModelCard } from "./model_card.ts";
import { samoutOnnx, samoutStepOnnx } from "./samout_onnx.ts";
import { SAMOUT_PY } from "./samout_py.ts";

/** What {@link exportBundle} needs. */
export interface ExportBundleOptions {
  /** A train artifact: `best.safetensors`, `config.json`, `vocab.json`, `metrics.json`. */
  modelDir: string;
  /** A tokenize artifact: `vocab.json`, `tokenizer.json`, codebook or codec, `sequences.json`, `tokens.u32`. */
  tokensDir: string;
  /** An evaluate artifact (`metrics.json`) for the model card; optional. */
  evaluateDir?: string;
  /** Where the bundle is written (an empty folder). */
  outDir: string;
  /** Scratch space for the check (an empty folder). */
  workDir: string;
  gpu: Gpu;
  /** Relative tolerance of every check comparison. */
  tolerance: number;
  webgpu: WebGpuMode;
  /** Sequences in the check's first batch. */
  checkRows: number;
  /** Artifact keys by input slot, for the card's provenance. */
  sources?: Record<string, string>;
  log?: (message: string) => void;
}

/** What {@link exportBundle} returns. */
export interface ExportBundleResult {
  check: ExportCheckReport;
  /** Flat figures for the step's `metrics.json`. */
  metrics: Record<string, unknown>;
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  const value = await readJsonFile(file);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError("the file does not hold a JSON object", { file, found: typeof value });
  }
  return value as Record<string, unknown>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The bundle's `config.json` (the same keys as the train artifact's). */
function configJson(cfg: SamOutConfig): Record<string, number> {
  return {
    voc_size: cfg.vocabSize,
    hidden_size: cfg.hidden,
    num_heads: cfg.heads,
    num_layers: cfg.layers,
    max_positions: cfg.maxPositions,
    parameters: parameterCount(cfg),
  };
}

/** The train artifact's `config.json` must describe the checkpoint it sits beside. */
async function checkTrainConfig(modelDir: string, cfg: SamOutConfig): Promise<void> {
  const file = join(modelDir, "config.json");
  if (!(await exists(file))) return;
  const found = await readJsonObject(file);
  const expected = configJson(cfg);
  for (const key of ["voc_size", "hidden_size", "num_heads", "num_layers", "max_positions"]) {
    if (found[key] !== expected[key]) {
      throw new UserError(`config.json disagrees with best.safetensors on ${key}`, {
        file,
        field: key,
        expected: `${expected[key]} (from the checkpoint)`,
        found: JSON.stringify(found[key]),
      });
    }
  }
}

/** Copies the tokenizer's files; returns `tokenizer.json` and the names copied. */
async function copyTokenizer(
  tokensDir: string,
  outDir: string,
): Promise<{ settings: Record<string, unknown>; files: string[] }> {
  const settingsFile = join(tokensDir, "tokenizer.json");
  const settings = await readJsonObject(settingsFile);
  const files = ["tokenizer.json"];
  if (settings.kind === "mel-vq") {
    files.push("codebook.f32");
  } else if (settings.kind === "onnx-codec") {
    const onnx = (settings.onnx ?? {}) as Record<string, unknown>;
    for (const key of ["encoder", "decoder"]) {
      const name = onnx[key];
      if (name === undefined) continue;
      if (typeof name !== "string" || name.includes("/") || name.includes("\\")) {
        throw new UserError("the tokenizer's codec file is not inside the tokenize artifact", {
          file: settingsFile,
          field: `onnx.${key}`,
          expected: "a file name in the artifact folder (encoder.onnx, decoder.onnx)",
          found: JSON.stringify(name),
        });
      }
      files.push(name);
    }
  } else {
    throw new UserError("unknown tokenizer kind", {
      file: settingsFile,
      field: "kind",
      expected: '"mel-vq" or "onnx-codec"',
      found: JSON.stringify(settings.kind),
    });
  }
  for (const name of files) {
    try {
      await Deno.copyFile(join(tokensDir, name), join(outDir, name));
    } catch (e) {
      throw new UserError("cannot copy a tokenizer file into the bundle", {
        file: join(tokensDir, name),
        found: e instanceof Error ? e.message : String(e),
      });
    }
  }
  return { settings, files };
}

/** Example ids and the ONNX logits of a few positions per row, for ports to other runtimes. */
function examples(
  batch: { rows: number; length: number; tokens: Int32Array },
  logits: Float32Array,
  V: number,
) {
  const ids: number[][] = [];
  const picks: { row: number; position: number; logits: number[] }[] = [];
  for (let r = 0; r < batch.rows; r++) {
    const row = Array.from(batch.tokens.subarray(r * batch.length, (r + 1) * batch.length));
    ids.push(row);
    let n = row.length;
    while (n > 1 && row[n - 1] === 0) n--;
    for (const position of new Set([0, Math.floor((n - 1) / 2), n - 1])) {
      const at = (r * batch.length + position) * V;
      picks.push({ row: r, position, logits: Array.from(logits.subarray(at, at + V)) });
    }
  }
  return { model: "model.onnx", backend: "onnxruntime-web wasm", ids, picks };
}

/** Writes and checks the bundle (see the module doc). */
export async function exportBundle(opts: ExportBundleOptions): Promise<ExportBundleResult> {
  const log = opts.log ?? (() => {});
  const { outDir } = opts;
  // The trained model and its sizes
  const weightsFile = join(opts.modelDir, "best.safetensors");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(weightsFile);
  } catch (e) {
    throw new UserError("cannot read the trained weights", {
      file: weightsFile,
      expected: "the output of a train step (best.safetensors)",
      found: e instanceof Error ? e.message : String(e),
    });
  }
  const { cfg, params } = samoutFromSafetensors(bytes, { file: weightsFile });
  await checkTrainConfig(opts.modelDir, cfg);

  // The vocabulary: the model's must be the tokenizer's
  const tokensVocabFile = join(opts.tokensDir, "vocab.json");
  const vocab = checkVocabulary(await readJsonFile(tokensVocabFile), tokensVocabFile);
  const vocabText = await Deno.readTextFile(tokensVocabFile);
  const modelVocabFile = join(opts.modelDir, "vocab.json");
  if (await exists(modelVocabFile)) {
    const modelVocab = checkVocabulary(await readJsonFile(modelVocabFile), modelVocabFile);
    if (JSON.stringify(modelVocab) !== JSON.stringify(vocab)) {
      throw new UserError("the model was trained on another vocabulary than this tokenizer's", {
        file: modelVocabFile,
        expected: `the vocabulary of ${tokensVocabFile}`,
        found: `${modelVocab.tokens.length} tokens, categories ${modelVocab.categories.join(", ")}`,
        hint: "wire the export step's tokens input to the tokenize step the model was trained from",
      });
    }
  }
  if (vocabularySize(vocab) !== cfg.vocabSize) {
    throw new UserError("the model's vocabulary size is not the tokenizer's", {
      file: weightsFile,
      expected: `${vocabularySize(vocab)} tokens (${tokensVocabFile})`,
      found: `${cfg.vocabSize} rows in em.weight`,
    });
  }

  // The bundle's files
  const fullOnnx = samoutOnnx(cfg, params);
  const stepOnnx = samoutStepOnnx(cfg, params);
  await Deno.writeFile(join(outDir, "model.onnx"), fullOnnx);
  await Deno.writeFile(join(outDir, "model.step.onnx"), stepOnnx);
  await Deno.writeFile(join(outDir, "model.safetensors"), samoutToSafetensors(cfg, params));
  await Deno.writeTextFile(
    join(outDir, "config.json"),
    JSON.stringify(configJson(cfg), null, 2) + "\n",
  );
  await Deno.writeTextFile(join(outDir, "vocab.json"), vocabText);
  const tokenizer = await copyTokenizer(opts.tokensDir, outDir);
  await Deno.writeTextFile(join(outDir, "samout.py"), SAMOUT_PY);
  const opened = await openTokenizerDir(outDir);
  await opened.tokenizer.close();
  log(`wrote model.onnx (${fullOnnx.length} bytes), model.step.onnx, weights and tokenizer`);

  // The self-check
  const data = await readTokenizedData(opts.tokensDir);
  const batches = checkBatchesFrom(data, cfg, opts.checkRows);
  const { report, onnxLogits } = await checkExportedModels({
    config: cfg,
    weights: params,
    fullOnnx,
    stepOnnx,
    batches,
    gpu: opts.gpu,
    tolerance: opts.tolerance,
    webgpu: opts.webgpu,
    workDir: opts.workDir,
    log,
  });
  await Deno.writeTextFile(
    join(outDir, "check.json"),
    JSON.stringify(
      {
        ...report,
        examples: examples(batches[0], onnxLogits.get(batches[0].name)!, cfg.vocabSize),
      },
      null,
      1,
    ) + "\n",
  );

  // The model card
  const splits: Record<string, number> = {};
  for (const s of data.sequences) splits[s.split] = (splits[s.split] ?? 0) + 1;
  const names = [
    "model.onnx",
    "model.step.onnx",
    "model.safetensors",
    "config.json",
    "vocab.json",
    ...tokenizer.files,
    "samout.py",
    "check.json",
  ];
  const files = await Promise.all(
    names.map(async (path) => ({ path, bytes: (await Deno.stat(join(outDir, path))).size })),
  );
  const trainMetricsFile = join(opts.modelDir, "metrics.json");
  const evaluateFile = opts.evaluateDir && join(opts.evaluateDir, "metrics.json");
  await Deno.writeTextFile(
    join(outDir, "README.md"),
    renderModelCard({
      config: cfg,
      parameters: parameterCount(cfg),
      vocab,
      tokenizer: tokenizer.settings,
      splits,
      training: (await exists(trainMetricsFile))
        ? await readJsonObject(trainMetricsFile)
        : undefined,
      evaluation: evaluateFile ? await readJsonObject(evaluateFile) : undefined,
      check: report,
      files,
      sources: opts.sources ?? {},
    }),
  );
  const byBackend = (backend: string) => {
    const errors = report.comparisons.filter((c) => c.backend === backend).map((c) =>
      c.relative_error
    );
    return errors.length > 0 ? Math.max(...errors) : null;
  };
  return {
    check: report,
    metrics: {
      parameters: parameterCount(cfg),
      bundle_bytes: files.reduce((a, f) => a + f.bytes, 0),
      onnx_bytes: fullOnnx.length,
      onnx_step_bytes: stepOnnx.length,
      check_tolerance: opts.tolerance,
      check_max_relative_error: report.max_relative_error,
      wasm_max_relative_error: byBackend("wasm"),
      webgpu_max_relative_error: byBackend("webgpu"),
      webgpu_all_nodes_on_gpu: report.webgpu.ran ? true : null,
    },
  };
}
