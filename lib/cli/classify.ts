/**
 * `main.ts classify`: names the category of audio files with a trained
 * model, tokenized with the model's own tokenizer.
 *
 * ```
 * deno task classify --model latest clip.wav [more.wav | folder …] [--json] [--store DIR]
 * ```
 *
 * A file is scored as the model reads its layout: seed layout (category after
 * the audio): the softmax over the category tokens at the position after the
 * last audio token; label-first: the category whose prompt gives the audio the
 * lowest loss (softmax of minus the summed loss). A file found in a folder
 * named after one of the model's categories (the nearest such folder above
 * it, inside the folder given) has that category as its truth: accuracy and
 * the confusion matrix are printed (and are in `--json`). A file that cannot
 * be used gets the reason scan would give (scan's default limits), and the
 * others go on.
 *
 * @module
 */
import { basename, join } from "node:path";
import { UserError } from "../errors/mod.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { fromCaller } from "./caller.ts";
import {
  modelCommand,
  parseCommandLine,
  readModelWeights,
  resolveModel,
  tokenizerDirOf,
} from "./resolve.ts";

const EXTENSIONS = ["wav", "flac", "ogg", "mp3"];
/** Files scored per GPU batch. */
const BATCH = 16;

interface Input {
  /** As shown: the argument, joined with the names below it. */
  path: string;
  /** Absolute, for reading (see {@link fromCaller}). */
  file: string;
  /**
   * The folders from the file's up to the folder given (its name included),
   * nearest first; empty for a file given by itself. The truth is the first
   * that is a category of the model.
   */
  folders: string[];
}

/** The audio files the arguments name; a `UserError` for a missing path or a folder with none. */
async function collect(args: string[]): Promise<Input[]> {
  const inputs: Input[] = [];
  for (const arg of args) {
    const abs = fromCaller(arg);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(abs);
    } catch {
      throw new UserError(`no such file or folder: ${arg}`, {
        file: abs,
        expected: "an audio file or a folder",
      });
    }
    if (info.isFile) {
      inputs.push({ path: arg, file: abs, folders: [] });
      continue;
    }
    const before = inputs.length;
    const walk = async (dir: string, shown: string, folders: string[]) => {
      const entries = [];
      for await (const e of Deno.readDir(dir)) entries.push(e);
      entries.sort((a, b) => a.name < b.name ? -1 : 1);
      for (const e of entries) {
        if (e.name.startsWith(".")) continue;
        const p = join(dir, e.name);
        if (e.isDirectory) await walk(p, join(shown, e.name), [e.name, ...folders]);
        else if (EXTENSIONS.includes(e.name.split(".").pop()!.toLowerCase())) {
          inputs.push({ path: join(shown, e.name), file: p, folders });
        }
      }
    };
    await walk(abs, arg, [basename(abs)]);
    if (inputs.length === before) {
      throw new UserError(`no audio files in the folder ${arg}`, {
        file: abs,
        expected: `files ending in ${
          EXTENSIONS.map((e) => `.${e}`).join(", ")
        } in the folder or its subfolders`,
        found: "none",
      });
    }
  }
  return inputs;
}

/** Accuracy over the files whose truth is known, and the confusion matrix. */
interface Accuracy {
  correct: number;
  judged: number;
  accuracy: number;
  /** Rows: true category, columns: predicted (both in the model's category order). */
  confusion: { categories: string[]; counts: number[][] };
  /** Scored files in no folder named after a category: left out. */
  outside_categories: number;
}

/** Probabilities from scores (higher: likelier), in float64. */
function softmax(x: ArrayLike<number>): number[] {
  const v = Array.from(x);
  const m = Math.max(...v);
  const e = v.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((s) => s / z);
}

/** Runs `classify`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const say = (t: string) => out.out(t + "\n");
  const program = modelCommand(
    "classify",
    "Name the category of audio files with a trained model.",
    (text) => out.err(text),
  )
    .argument(
      "<files...>",
      "audio files or folders (files under a folder named after a category give accuracy)",
    )
    .option("--json", "every file's category probabilities as JSON");
  const early = parseCommandLine(program, args);
  if (early !== null) return early;
  const o = program.opts();
  const files = await collect(program.args);
  const model = await resolveModel(o.model, o.store);
  const tokensDir = tokenizerDirOf(model);
  const { openTokenizerDir } = await import("../tokenizers/mod.ts");
  const { decodeAudioFile } = await import("../audio/decode.ts");
  const { audioRejectReason, DEFAULT_AUDIO_LIMITS } = await import("../audio/checks.ts");
  const { resample, toMono } = await import("../audio/resample.ts");
  const { SamOutInference } = await import("../model/inference.ts");
  const { requestGpu } = await import("../gpu/device.ts");
  const { cfg, params } = await readModelWeights(model);
  const { vocab, tokenizer } = await openTokenizerDir(tokensDir);
  const framing = vocab.layout === "seed" ? 3 : 4; // <|im_start|> … <category> <|im_end|> / + <|wav|>
  const maxCodes = cfg.maxPositions - framing;
  const gpu = await requestGpu();
  const net = await SamOutInference.create(gpu, {
    config: cfg,
    maxBatch: BATCH,
    maxLength: cfg.maxPositions,
    maxPicks: BATCH,
  });
  net.uploadWeights(params);
  const truthOf = (input: Input) => input.folders.find((f) => vocab.categories.includes(f));
  type Result = Input & {
    truth?: string;
    probabilities?: number[];
    reason?: string;
    truncated?: boolean;
  };
  const results: Result[] = [];
  try {
    // Tokenize every file; one scan would reject gets scan's reason and text (its default limits).
    const coded: { input: Result; codes: Uint32Array; truncated: boolean }[] = [];
    for (const file of files) {
      const input: Result = { ...file, truth: truthOf(file) };
      const reject = (reason: string) => results.push({ ...input, reason });
      try {
        const audio = await decodeAudioFile(input.file);
        const unusable = audioRejectReason(audio, DEFAULT_AUDIO_LIMITS);
        if (unusable) reject(`${unusable.reason}: ${unusable.detail}`);
        else {
          const mono = toMono(audio.channels);
          const samples = await resample(mono, audio.sampleRate, tokenizer.sampleRate);
          const codes = await tokenizer.encode(samples);
          if (codes.length === 0) reject("too-short: no whole frame of the tokenizer");
          else {
            coded.push({
              input,
              codes: codes.slice(0, maxCodes),
              truncated: codes.length > maxCodes,
            });
          }
        }
      } catch (e) {
        const failure = (e as { failure?: string }).failure ?? "unreadable";
        reject(`${failure}: ${(e as Error).message}`);
      }
    }
    const { categoryScores } = await import("../evaluate/categories.ts");
    const scores = await categoryScores(net, vocab, coded.map((c) => c.codes));
    coded.forEach((c, i) =>
      results.push({ ...c.input, probabilities: softmax(scores[i]), truncated: c.truncated })
    );
  } finally {
    net.destroy();
    await tokenizer.close();
  }
  const order = new Map(files.map((f, i) => [f.path, i]));
  results.sort((a, b) => order.get(a.path)! - order.get(b.path)!);
  const pred = (r: Result) =>
    vocab.categories[r.probabilities!.indexOf(Math.max(...r.probabilities!))];
  const scored = results.filter((r) => r.probabilities);
  const judged = scored.filter((r) => r.truth);
  let accuracy: Accuracy | undefined;
  if (judged.length > 0) {
    const correct = judged.filter((r) => pred(r) === r.truth).length;
    accuracy = {
      correct,
      judged: judged.length,
      accuracy: correct / judged.length,
      confusion: {
        categories: vocab.categories,
        counts: vocab.categories.map((t) =>
          vocab.categories.map((c) => judged.filter((r) => r.truth === t && pred(r) === c).length)
        ),
      },
      outside_categories: scored.length - judged.length,
    };
  }
  if (o.json) {
    say(JSON.stringify(
      {
        model: model.key,
        categories: vocab.categories,
        files: results.map((r) => ({
          path: r.path,
          ...(r.truth ? { truth: r.truth } : {}),
          ...(r.probabilities
            ? {
              category: pred(r),
              probabilities: Object.fromEntries(
                vocab.categories.map((c, i) => [c, r.probabilities![i]]),
              ),
              truncated: r.truncated,
            }
            : { rejected: r.reason }),
        })),
        ...(accuracy ? { accuracy } : {}),
      },
      null,
      1,
    ));
  } else {
    for (const r of results) {
      if (!r.probabilities) {
        say(`${r.path}: rejected (${r.reason})`);
        continue;
      }
      const top = r.probabilities.map((p, i) => ({ p, c: vocab.categories[i] }))
        .sort((a, b) => b.p - a.p).slice(0, 3)
        .map((x) => `${x.c} ${(100 * x.p).toFixed(1)}%`).join(", ");
      say(`${r.path}: ${top}${r.truncated ? " (first " + maxCodes + " frames)" : ""}`);
    }
    if (!accuracy && scored.some((r) => r.folders.length > 0)) {
      say(
        `\nno accuracy: no file is in a folder named after a category of this model ` +
          `(${vocab.categories.join(", ")})`,
      );
    }
    if (accuracy) {
      say(
        `\naccuracy ${
          (100 * accuracy.accuracy).toFixed(1)
        }% (${accuracy.correct}/${accuracy.judged}) ` +
          "over files in folders named after categories; rows: true, columns: predicted",
      );
      const w = Math.max(...vocab.categories.map((l) => l.length), 5);
      say(" ".repeat(w) + "  " + vocab.categories.map((c) => c.slice(0, 6).padStart(6)).join(" "));
      vocab.categories.forEach((t, i) => {
        const row = accuracy!.confusion.counts[i];
        if (row.some((n) => n > 0)) {
          say(t.padEnd(w) + "  " + row.map((n) => String(n).padStart(6)).join(" "));
        }
      });
      if (accuracy.outside_categories > 0) {
        say(
          `${accuracy.outside_categories} files are in no folder named after a category of ` +
            "this model: left out of accuracy",
        );
      }
    }
  }
  return results.some((r) => !r.probabilities) ? 1 : 0;
}
