/**
 * `main.ts generate`: sounds from a trained model, as WAV files and a JSON
 * file with each sample's tokens, settings and seed.
 *
 * ```
 * deno task generate --model latest --category laser --count 8 --out out/
 *   [--temperature 0.7] [--top-k 0] [--top-p 0.9] [--seed 1] [--max-length N]
 *   [--backend auto|gpu|cpu] [--store DIR]
 * ```
 *
 * `--out` is checked before anything is generated. Writing into the folder
 * of an earlier run replaces that run's samples.json and the WAV files it
 * lists; other files are left (and counted). A seed-layout model that names
 * a category fewer times than `--count` asks for (always so at
 * `--temperature 0`, whose rows are one sequence) gets what was drawn
 * written, and the command exits 1 naming the categories that fell short.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { Option } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { decimalNumber } from "./commander.ts";
import { fromCaller } from "./caller.ts";
import {
  modelCommand,
  parseCommandLine,
  readModelWeights,
  resolveModel,
  tokenizerDirOf,
} from "./resolve.ts";

function number(name: string, min: number, max: number, integer = false) {
  return (value: string): number => {
    const x = decimalNumber(value);
    if (!Number.isFinite(x) || x < min || x > max || (integer && !Number.isInteger(x))) {
      throw new UserError(`invalid ${name} "${value}"`, {
        field: name,
        expected: `${integer ? "an integer" : "a number"} from ${min} to ${max}`,
        found: value,
      });
    }
    return x;
  };
}

/** Runs `generate`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const out = consoleOutput();
  const say = (t: string) => out.err(t + "\n");
  const program = modelCommand(
    "generate",
    "Generate sounds with a trained model (the recurrent state, batched).",
    (text) => out.err(text),
  )
    .option("--category <name>", "category to generate (default: every category)")
    .option("--count <n>", "samples per category", number("--count", 1, 1024, true), 4)
    .option("--out <dir>", "output folder", "generated")
    .option("--temperature <t>", "0 = greedy", number("--temperature", 0, 10), 0.7)
    .option(
      "--top-k <k>",
      "keep the k most likely tokens (0 = all)",
      number("--top-k", 0, 1e6, true),
      0,
    )
    .option(
      "--top-p <p>",
      "keep the smallest set with this much probability",
      number("--top-p", 0.01, 1),
      0.9,
    )
    .option("--seed <n>", "generator seed", number("--seed", 0, 2 ** 32 - 1, true), 1)
    .option(
      "--max-length <n>",
      "most tokens per sequence (default: the model's positions)",
      number("--max-length", 2, 1e6, true),
    )
    .addOption(
      new Option("--backend <b>", "where to run").choices(["auto", "gpu", "cpu"]).default("auto"),
    );
  const early = parseCommandLine(program, args);
  if (early !== null) return early;
  const o = program.opts();
  const dir = fromCaller(o.out);
  await checkOutFolder(dir);
  const model = await resolveModel(o.model, o.store);
  const tokensDir = tokenizerDirOf(model);
  const { openTokenizerDir } = await import("../tokenizers/mod.ts");
  const { generateSamples, MAX_ROUNDS } = await import("../generate/samples.ts");
  const { encodeWav } = await import("../audio/wav.ts");
  const { cfg, params } = await readModelWeights(model);
  const { vocab, tokenizer } = await openTokenizerDir(tokensDir);
  try {
    if (o.category !== undefined && !vocab.categories.includes(o.category)) {
      throw new UserError(`unknown category "${o.category}"`, {
        field: "--category",
        expected: `one of ${vocab.categories.join(", ")}`,
        found: o.category,
      });
    }
    const categories = o.category !== undefined ? [o.category] : vocab.categories;
    const want = categories.flatMap((c) => Array.from({ length: o.count }, () => c));
    const backend = o.backend === "auto" ? "gpu" : o.backend as "gpu" | "cpu";
    const gpu = backend === "gpu"
      ? await (await import("../gpu/device.ts")).requestGpu()
      : undefined;
    const settings = { temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed };
    const t0 = performance.now();
    const samples = await generateSamples({
      config: cfg,
      weights: params,
      vocab,
      want,
      settings,
      maxLength: o.maxLength,
      backend,
      gpu,
    });
    const seconds = (performance.now() - t0) / 1000;
    await makeOutFolder(dir);
    const previous = await removePreviousSamples(dir);
    const written: Record<string, unknown>[] = [];
    const perCategory = new Map<string, number>();
    for (const s of samples) {
      const c = s.category ?? "unnamed";
      const i = (perCategory.get(c) ?? 0) + 1;
      perCategory.set(c, i);
      const file = `${c}_${String(i).padStart(3, "0")}.wav`;
      const audio = s.codes.length > 0
        ? await tokenizer.decode(Uint32Array.from(s.codes))
        : new Float32Array(1);
      let peak = 0;
      for (const x of audio) peak = Math.max(peak, Math.abs(x));
      const gain = peak > 0 ? 0.9 / peak : 1;
      await Deno.writeFile(
        join(dir, file),
        encodeWav([audio.map((x) => x * gain)], tokenizer.sampleRate, { bits: 16 }),
      );
      written.push({ file, ...s, seconds: audio.length / tokenizer.sampleRate });
    }
    const short = categories
      .map((c) => ({
        category: c,
        asked: o.count,
        got: samples.filter((s) => s.category === c).length,
      }))
      .filter((x) => x.got < x.asked);
    const layoutNote = vocab.layout === "label-first"
      ? "label-first layout: the category is in the prompt"
      : "seed layout: the model generates audio, then names its category; samples are kept when it names the one asked for";
    const samplesFile = join(dir, "samples.json");
    await Deno.writeTextFile(
      samplesFile,
      JSON.stringify(
        {
          model: model.key,
          ...(model.trainedModel ? { trained_model: model.trainedModel } : {}),
          via: model.via,
          settings,
          backend,
          layout: vocab.layout,
          note: layoutNote,
          ...(short.length ? { short } : {}),
          samples: written,
        },
        null,
        1,
      ) + "\n",
    );
    const tokens = samples.reduce((n, s) => n + s.tokens.length, 0);
    say(
      `${count(samples.length, "sample")} (${layoutNote}) in ${
        seconds.toFixed(1)
      } s on ${backend}, ${Math.round(tokens / seconds)} tokens/s`,
    );
    if (previous.removed > 0) {
      say(`replaced the previous samples.json and its ${count(previous.removed, "WAV file")}`);
    }
    if (previous.others > 0) {
      say(
        `note: ${displayPath(dir)} also holds ${
          count(previous.others, "WAV file")
        } samples.json does not ` +
          "list (not written by this command; left as they are)",
      );
    }
    say(`wrote ${count(written.length, "WAV file")} and samples.json to ${displayPath(dir)}`);
    if (o.temperature === 0 && samples.length > 1) {
      say("note: --temperature 0 is greedy: the samples of a category are the same sequence");
    }
    if (short.length > 0) throw shortfallError(short, o.temperature, MAX_ROUNDS, samplesFile);
    return 0;
  } finally {
    await tokenizer.close();
  }
}

/**
 * `--out` must be a folder or a path where one can be made: checked before
 * any work, so a mistyped path does not cost a generation.
 */
async function checkOutFolder(dir: string): Promise<void> {
  const where = { field: "--out", expected: "a folder, or a path where one can be created" };
  for (let p = dir;; p = dirname(p)) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(p);
    } catch (e) {
      const absent = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
      if (absent && dirname(p) !== p) continue;
      throw new UserError(`cannot use the output folder ${displayPath(dir)}`, {
        ...where,
        found: (e as Error).message,
      });
    }
    if (info.isDirectory) return;
    throw new UserError(
      p === dir
        ? `the output folder ${displayPath(dir)} is a file`
        : `the output folder ${displayPath(dir)} lies under a file, ${displayPath(p)}`,
      { ...where, found: `a file at ${displayPath(p)}` },
    );
  }
}

async function makeOutFolder(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create the output folder ${displayPath(dir)}`, {
      field: "--out",
      expected: "a folder this user can write",
      found: (e as Error).message,
    });
  }
}

/**
 * Removes what an earlier `generate` wrote to `dir` (its samples.json and
 * the WAV files listed there), so the folder holds this run's samples
 * alone; other files are left, and counted when they are WAV files.
 */
async function removePreviousSamples(dir: string): Promise<{ removed: number; others: number }> {
  const listed = new Set<string>();
  let removed = 0;
  try {
    const old = JSON.parse(await Deno.readTextFile(join(dir, "samples.json")));
    for (const s of Array.isArray(old?.samples) ? old.samples : []) {
      const file = s?.file;
      // Only plain names of WAV files in this folder: never a path elsewhere.
      if (typeof file === "string" && /^[^/\\]+\.wav$/.test(file) && !file.startsWith(".")) {
        listed.add(file);
      }
    }
    for (const file of listed) {
      try {
        await Deno.remove(join(dir, file));
        removed++;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    await Deno.remove(join(dir, "samples.json"));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof SyntaxError)) {
      throw new UserError(`cannot replace the earlier samples in ${displayPath(dir)}`, {
        field: "--out",
        file: join(dir, "samples.json"),
        found: (e as Error).message,
      });
    }
  }
  let others = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.wav$/i.test(e.name) && !listed.has(e.name)) others++;
  }
  return { removed, others };
}

/** `n` and `noun`, plural unless `n` is 1 ("1 WAV file", "3 WAV files"). */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Categories that got fewer samples than asked: why, and what would help. */
function shortfallError(
  short: { category: string; asked: number; got: number }[],
  temperature: number,
  rounds: number,
  samplesFile: string,
): UserError {
  const list = short.map((x) => `${x.category} ${x.got} of ${x.asked}`).join(", ");
  return new UserError(`fewer samples than asked for: ${list}`, {
    file: samplesFile,
    expected: "as many samples of each category as --count",
    found: `the model named ${short.length === 1 ? "this category" : "these categories"} ` +
      `fewer times than asked in ${rounds} rounds of drawing (seed layout: a sample is kept when the ` +
      "model names the category asked for after its audio)",
    hint: temperature === 0
      ? "--temperature 0 is greedy: every row is the same sequence, so the model names one " +
        "category for all of them; give a temperature above 0 (e.g. 0.7)"
      : "a model that names some categories rarely: raise --temperature or --top-p, or train " +
        "longer (the evaluate report's confusion matrix shows which categories it confuses)",
  });
}
