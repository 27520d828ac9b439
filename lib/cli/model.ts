/**
 * `deno task model …`: look inside a SamOut checkpoint (`info`) and score a
 * batch on the GPU (`loss`, optionally writing every parameter's gradient).
 *
 * @module
 */
import { decimalNumber, newProgram, runProgram } from "./commander.ts";
import { fromCaller } from "./caller.ts";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../errors/mod.ts";
import type { TokenBatch } from "../data/types.ts";
import type { SamOutConfig } from "../model/config.ts";
import { parameterCount, parameterTable } from "../model/params.ts";
import { configFromSafetensors, readSafetensors, writeSafetensors } from "../model/safetensors.ts";

/**
 * Parses a batch file: a JSON list of token-id lists of any lengths, padded
 * with 0 to the longest. Throws a `UserError` naming the file (and the row and
 * column of a bad id) for anything else, for ids outside `[0, V)`, and for
 * sequences longer than `P + 1` (the input is `seq[:, :-1]`).
 */
export function parseBatch(text: string, cfg: SamOutConfig, file: string): TokenBatch {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError("the batch file is not valid JSON", {
      file,
      expected: "a JSON list of token-id lists, e.g. [[1, 5, 9, 2], [1, 7, 2]]",
      found: (e as Error).message,
    });
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new UserError("the batch file must hold a non-empty list of sequences", {
      file,
      expected: "a JSON list of token-id lists, e.g. [[1, 5, 9, 2], [1, 7, 2]]",
      found: Array.isArray(value) ? "an empty list" : typeof value,
    });
  }
  const rows = value.length;
  let length = 0;
  for (let r = 0; r < rows; r++) {
    const row = value[r];
    if (!Array.isArray(row)) {
      throw new UserError(`row ${r} of the batch is not a list of token ids`, {
        file,
        field: `[${r}]`,
        expected: "a list of integer token ids",
        found: JSON.stringify(row)?.slice(0, 40) ?? String(row),
      });
    }
    length = Math.max(length, row.length);
  }
  // The loss averages over targets: the tokens after a row's first that are not padding (0).
  if (!(value as unknown[][]).some((row) => row.slice(1).some((id) => id !== 0))) {
    throw new UserError(
      "the batch has no sequence of two or more tokens with a non-padding target, so nothing to score",
      {
        file,
        expected: "at least one sequence with an input token and a target token other than 0",
        found: length < 2
          ? "no sequence of two or more tokens"
          : "only padding (0) after the first token of every sequence",
      },
    );
  }
  if (length > cfg.maxPositions + 1) {
    throw new UserError("a sequence of the batch is longer than the model's positions allow", {
      file,
      expected: `at most ${cfg.maxPositions + 1} tokens (max_positions ${cfg.maxPositions} + 1)`,
      found: `${length} tokens`,
    });
  }
  const tokens = new Int32Array(rows * length);
  for (let r = 0; r < rows; r++) {
    const row = value[r] as unknown[];
    for (let c = 0; c < row.length; c++) {
      const id = row[c];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new UserError(`bad token id at row ${r}, column ${c}`, {
          file,
          field: `[${r}][${c}]`,
          expected: `an integer from 0 to ${cfg.vocabSize - 1} (vocabulary size ${cfg.vocabSize})`,
          found: JSON.stringify(id) ?? String(id),
        });
      }
      tokens[r * length + c] = id;
    }
  }
  return { rows, length, tokens };
}

/**
 * Reads a checkpoint. `heads` is `--heads` (must agree with the metadata's
 * num_heads when it has one); `"any"` (model info) takes 1 when the metadata
 * says nothing, since the head count changes no tensor shape.
 */
async function readCheckpoint(path: string, heads?: number | "any") {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new UserError(`cannot read the checkpoint: ${(e as Error).message}`, {
      file: path,
      expected: "a .safetensors checkpoint",
    });
  }
  const { tensors, metadata } = readSafetensors(bytes, { file: path });
  const cfg = heads === "any"
    ? configFromSafetensors(tensors, metadata, {
      heads: metadata.num_heads === undefined ? 1 : undefined,
      file: path,
    })
    : configFromSafetensors(tensors, metadata, { heads, file: path, headsOption: "--heads" });
  return { tensors, metadata, cfg };
}

/** `model info`: sizes, parameter count, per-tensor table, metadata, vocabulary summary. */
export async function modelInfo(path: string): Promise<string> {
  const { tensors, metadata, cfg } = await readCheckpoint(path, "any");
  const headsKnown = metadata.num_heads !== undefined;
  const lines = [
    `file         ${path}`,
    `vocabulary   V = ${cfg.vocabSize}`,
    `hidden       d = ${cfg.hidden}`,
    `heads        H = ${headsKnown ? cfg.heads : "unknown (no num_heads in the metadata)"}`,
    `layers       L = ${cfg.layers}`,
    `positions    P = ${cfg.maxPositions}`,
    `parameters   ${parameterCount(cfg).toLocaleString("en-US")}`,
    "",
    "tensors:",
  ];
  const width = Math.max(...parameterTable(cfg).map((p) => p.name.length));
  for (const spec of parameterTable(cfg)) {
    const t = tensors.get(spec.name);
    const shape = t ? `[${t.shape.join(", ")}]` : "MISSING";
    lines.push(`  ${spec.name.padEnd(width)}  ${shape.padEnd(14)} ${t?.dtype ?? ""}`);
  }
  const known = new Set(parameterTable(cfg).map((p) => p.name));
  for (const [name, t] of tensors) {
    if (!known.has(name)) {
      lines.push(`  ${name.padEnd(width)}  [${t.shape.join(", ")}] (not a SamOut parameter)`);
    }
  }
  lines.push("", "metadata:");
  for (const key of Object.keys(metadata).sort()) lines.push(`  ${key} = ${metadata[key]}`);
  const vocabPath = join(dirname(path), "vocab.json");
  try {
    const vocab = JSON.parse(await Deno.readTextFile(vocabPath));
    const tokens: string[] = Array.isArray(vocab.tokens) ? vocab.tokens : [];
    lines.push("", `vocabulary (${vocabPath}):`);
    lines.push(`  ${tokens.length} tokens, layout ${vocab.layout ?? "?"}`);
    if (Array.isArray(vocab.categories)) {
      lines.push(`  ${vocab.categories.length} categories: ${vocab.categories.join(", ")}`);
    }
    if (vocab.codebook_size !== undefined) {
      lines.push(`  ${vocab.codebook_size} audio codes from id ${vocab.code_offset}`);
    }
    if (tokens.length !== cfg.vocabSize) {
      lines.push(`  WARNING: ${tokens.length} tokens but the model's V is ${cfg.vocabSize}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      lines.push("", `vocabulary: ${vocabPath} is unreadable (${(e as Error).message})`);
    }
  }
  return lines.join("\n");
}

/** Result of {@link modelLoss}. */
export interface ModelLossResult {
  loss: number;
  token_accuracy: number;
}

/**
 * `model loss`: loss and token accuracy of a batch on the GPU; with
 * `gradsPath`, writes every parameter's gradient (safetensors, parameter names).
 */
export async function modelLoss(
  opts: { weights: string; batch: string; heads?: number; grads?: string },
): Promise<ModelLossResult> {
  const { tensors, metadata, cfg } = await readCheckpoint(opts.weights, opts.heads);
  let text: string;
  try {
    text = await Deno.readTextFile(opts.batch);
  } catch (e) {
    throw new UserError(`cannot read the batch file: ${(e as Error).message}`, {
      file: opts.batch,
    });
  }
  const batch = parseBatch(text, cfg, opts.batch);
  if (opts.grads !== undefined) {
    let folder: Deno.FileInfo | undefined;
    try {
      folder = await Deno.stat(dirname(resolve(opts.grads)));
    } catch {
      folder = undefined;
    }
    if (!folder?.isDirectory) {
      throw new UserError("the folder for the gradients does not exist", {
        file: opts.grads,
        field: "--grads",
        expected: "a file path in an existing folder",
        hint: `create ${dirname(resolve(opts.grads))} first, or pick another path`,
      });
    }
    let target: Deno.FileInfo | undefined;
    try {
      target = await Deno.stat(opts.grads);
    } catch {
      target = undefined;
    }
    if (target?.isDirectory) {
      throw new UserError("--grads names a folder; it takes the file to write", {
        file: opts.grads,
        field: "--grads",
        expected: "a file path, e.g. grads.safetensors",
        found: "a folder",
        hint: `give a file in it, e.g. ${join(opts.grads, "grads.safetensors")}`,
      });
    }
  }
  const { requestGpu } = await import("../gpu/device.ts");
  const gpu = await requestGpu();
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of tensors) weights.set(name, t.data);
  if (!opts.grads) {
    // Scoring only: the inference model (no gradient or optimizer buffers).
    const { SamOutInference } = await import("../model/inference.ts");
    const model = await SamOutInference.create(gpu, {
      config: cfg,
      maxBatch: batch.rows,
      maxLength: batch.length,
    });
    try {
      model.uploadWeights(weights);
      const s = await model.score(batch);
      return { loss: s.lossSum / s.tokens, token_accuracy: s.correct / s.tokens };
    } finally {
      model.destroy();
    }
  }
  // Gradients: the training graph without an optimizer (no Adam moments).
  const { SamOutTrainingGraph } = await import("../model/graph.ts");
  const graph = await SamOutTrainingGraph.create(gpu, {
    config: cfg,
    maxBatch: batch.rows,
    maxLength: batch.length,
    optimizer: null,
  });
  try {
    graph.uploadWeights(weights);
    const { loss, tokenAccuracy, grads } = await graph.lossAndGrads(batch);
    const out = parameterTable(cfg).map((p) => ({
      name: p.name,
      shape: p.shape,
      data: grads.get(p.name)!,
    }));
    try {
      await Deno.writeFile(opts.grads, writeSafetensors(out, { ...metadata }));
    } catch (e) {
      throw new UserError(`cannot write the gradients: ${(e as Error).message}`, {
        file: opts.grads,
        field: "--grads",
        expected: "a file path in an existing folder this user can write",
        hint: "pick a path this user can write",
      });
    }
    return { loss, token_accuracy: tokenAccuracy };
  } finally {
    graph.destroy();
  }
}

function positiveInt(value: string): number {
  const n = decimalNumber(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UserError("--heads must be a positive integer", {
      field: "--heads",
      expected: "a positive integer dividing the hidden size",
      found: value,
    });
  }
  return n;
}

/** Runs `model <sub-command> …`; returns the exit code (0 ok or help, 1 bad input or usage). */
export async function main(args: string[]): Promise<number> {
  const program = newProgram("model", "inspect a SamOut checkpoint or score a batch with it");
  program.command("info")
    .description("sizes, parameter count, tensors, metadata (and vocab.json beside the file)")
    .argument("<weights>", "a .safetensors checkpoint")
    .action(async (weights) => {
      console.log(await modelInfo(fromCaller(weights)));
    });
  program.command("loss")
    .description("loss and token accuracy of a batch on the GPU, as JSON")
    .requiredOption("--weights <file>", "a .safetensors checkpoint")
    .requiredOption("--batch <file>", "a JSON list of token-id lists")
    .option(
      "--heads <n>",
      "head count when the checkpoint's metadata lacks num_heads (must agree when it has one)",
      positiveInt,
    )
    .option("--grads <file>", "write every parameter's gradient here (safetensors)")
    .action(async (o) => {
      const result = await modelLoss({
        ...o,
        weights: fromCaller(o.weights),
        batch: fromCaller(o.batch),
        grads: o.grads === undefined ? undefined : fromCaller(o.grads),
      });
      console.log(JSON.stringify(result));
    });
  return await runProgram(program, args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
