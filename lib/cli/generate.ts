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
 * @module
 */
import { join, resolve } from "node:path";
import { Option } from "@commander-js/extra-typings";
import { UserError } from "../errors/mod.ts";
import { consoleOutput } from "../pipeline/progress.ts";
import { displayPath } from "../pipeline/paths.ts";
import { decimalNumber } from "./commander.ts";
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
  const model = await resolveModel(o.model, o.store);
  const tokensDir = tokenizerDirOf(model);
  const { openTokenizerDir } = await import("../tokenizers/mod.ts");
  const { generateSamples } = await import("../generate/samples.ts");
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
    const dir = resolve(o.out);
    await Deno.mkdir(dir, { recursive: true });
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
    const layoutNote = vocab.layout === "label-first"
      ? "label-first layout: the category is in the prompt"
      : "seed layout: the model generates audio, then names its category; samples are kept when it names the one asked for";
    await Deno.writeTextFile(
      join(dir, "samples.json"),
      JSON.stringify(
        {
          model: model.key,
          ...(model.trainedModel ? { trained_model: model.trainedModel } : {}),
          via: model.via,
          settings,
          backend,
          layout: vocab.layout,
          note: layoutNote,
          samples: written,
        },
        null,
        1,
      ) + "\n",
    );
    const tokens = samples.reduce((n, s) => n + s.tokens.length, 0);
    say(
      `${samples.length} samples (${layoutNote}) in ${seconds.toFixed(1)} s on ${backend}, ${
        Math.round(tokens / seconds)
      } tokens/s`,
    );
    for (const c of categories) {
      const got = samples.filter((s) => s.category === c).length;
      if (got < o.count) {
        say(`  ${c}: ${got} of ${o.count} (the model named ${c} only ${got} times in time)`);
      }
    }
    say(`wrote ${written.length} WAV files and samples.json to ${displayPath(dir)}`);
    return 0;
  } finally {
    await tokenizer.close();
  }
}
