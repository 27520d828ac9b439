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
 * lowest loss (softmax of minus the summed loss). A folder laid out as
 * `<category>/<file>` also prints accuracy and the confusion matrix. A file
 * that cannot be used gets the reason scan would give, and the others go on.
 *
 * @module
 */
import { join, relative } from "node:path";
import { UserError } from "../errors/mod.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import {
  modelCommand,
  parseCommandLine,
  readModelWeights,
  resolveModel,
  tokenizerDirOf,
} from "./resolve.ts";

const EXTENSIONS = new Set(["wav", "flac", "ogg", "mp3"]);
/** Files scored per GPU batch. */
const BATCH = 16;
/** Peak below this is `silent`, as scan's default. */
const SILENCE = 1e-3;

interface Input {
  path: string;
  /** The folder category, for a file found as `<folder>/<category>/<file>`. */
  truth?: string;
}

async function collect(args: string[]): Promise<Input[]> {
  const inputs: Input[] = [];
  for (const arg of args) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(arg);
    } catch {
      throw new UserError(`no such file or folder: ${arg}`, {
        file: arg,
        expected: "an audio file or a folder",
      });
    }
    if (info.isFile) {
      inputs.push({ path: arg });
      continue;
    }
    const walk = async (dir: string) => {
      const entries = [];
      for await (const e of Deno.readDir(dir)) entries.push(e);
      entries.sort((a, b) => a.name < b.name ? -1 : 1);
      for (const e of entries) {
        if (e.name.startsWith(".")) continue;
        const p = join(dir, e.name);
        if (e.isDirectory) await walk(p);
        else if (EXTENSIONS.has(e.name.split(".").pop()!.toLowerCase())) {
          const rel = relative(arg, p).split(/[\\/]/);
          inputs.push({ path: p, truth: rel.length > 1 ? rel[0] : undefined });
        }
      }
    };
    await walk(arg);
  }
  return inputs;
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
    .argument("<files...>", "audio files or folders (<folder>/<category>/<file> gives accuracy)")
    .option("--json", "every file's category probabilities as JSON");
  const early = parseCommandLine(program, args);
  if (early !== null) return early;
  const o = program.opts();
  const files = await collect(program.args);
  const model = await resolveModel(o.model, o.store);
  const tokensDir = tokenizerDirOf(model);
  const { openTokenizerDir } = await import("../tokenizers/mod.ts");
  const { decodeAudioFile } = await import("../audio/decode.ts");
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
  type Result = Input & { probabilities?: number[]; reason?: string; truncated?: boolean };
  const results: Result[] = [];
  try {
    // Tokenize every file (bad ones get scan's reasons).
    const coded: { input: Input; codes: Uint32Array; truncated: boolean }[] = [];
    for (const input of files) {
      try {
        const audio = await decodeAudioFile(input.path);
        const mono = toMono(audio.channels);
        let peak = 0;
        for (const x of mono) {
          if (!Number.isFinite(x)) throw new UserError("non-finite sample", { file: input.path });
          peak = Math.max(peak, Math.abs(x));
        }
        if (peak < SILENCE) {
          results.push({ ...input, reason: "silent: peak below -60 dBFS" });
          continue;
        }
        const samples = await resample(mono, audio.sampleRate, tokenizer.sampleRate);
        const codes = await tokenizer.encode(samples);
        if (codes.length === 0) {
          results.push({ ...input, reason: "too-short: no whole frame" });
          continue;
        }
        coded.push({ input, codes: codes.slice(0, maxCodes), truncated: codes.length > maxCodes });
      } catch (e) {
        const failure = (e as { failure?: string }).failure ?? "unreadable";
        results.push({ ...input, reason: `${failure}: ${(e as Error).message}` });
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
              category: vocab.categories[r.probabilities.indexOf(Math.max(...r.probabilities))],
              probabilities: Object.fromEntries(
                vocab.categories.map((c, i) => [c, r.probabilities![i]]),
              ),
              truncated: r.truncated,
            }
            : { rejected: r.reason }),
        })),
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
  }
  const judged = results.filter((r) => r.truth && r.probabilities);
  if (judged.length > 0 && !o.json) {
    const pred = (r: Result) =>
      vocab.categories[r.probabilities!.indexOf(Math.max(...r.probabilities!))];
    const correct = judged.filter((r) => pred(r) === r.truth).length;
    say(
      `\naccuracy ${
        (100 * correct / judged.length).toFixed(1)
      }% (${correct}/${judged.length}) over folders named after categories; rows: true, columns: predicted`,
    );
    const labels = [...new Set([...vocab.categories, ...judged.map((r) => r.truth!)])];
    const w = Math.max(...labels.map((l) => l.length), 5);
    say(" ".repeat(w) + "  " + vocab.categories.map((c) => c.slice(0, 6).padStart(6)).join(" "));
    for (const t of labels) {
      const mine = judged.filter((r) => r.truth === t);
      if (mine.length === 0) continue;
      say(
        t.padEnd(w) + "  " +
          vocab.categories.map((c) => String(mine.filter((r) => pred(r) === c).length).padStart(6))
            .join(" "),
      );
    }
    const unknown = judged.filter((r) => !vocab.categories.includes(r.truth!)).length;
    if (unknown) say(`${unknown} files are in folders that are not a category of this model`);
  }
  return results.some((r) => !r.probabilities) ? 1 : 0;
}
