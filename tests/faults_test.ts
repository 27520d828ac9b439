/**
 * The fault and bad-input suite: each case is one line of data (a command
 * line for main.ts, an optional setup of its temporary folder, the exit code,
 * the words the message must hold) run as a subprocess. Every case also
 * checks that no stack trace reached the user.
 *
 * Classes follow issue 10: `validation` (section 3: inputs by slot and kind,
 * unreadable pipeline paths, alias bombs, the other commands' checks) and
 * `bad-input` (mistakes the CLI already reported well; kept so they stay so).
 * A case with `pending` names what it waits for and is reported as ignored.
 *
 * Nothing here trains: pipelines run with `--dry-run` or fail while planning,
 * so the whole file takes well under a minute.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import { E2E_PIPELINE, sandbox } from "./fixtures/e2e/helpers.ts";
import { encodeWav } from "../lib/audio/wav.ts";
import { buildVocabulary } from "../lib/data/vocab.ts";
import type { SamOutConfig } from "../lib/model/config.ts";
import { initParameters } from "../lib/model/params.ts";
import { samoutToSafetensors } from "../lib/model/safetensors.ts";

/** One case. In `args`, `$DIR` stands for the case's temporary folder. */
interface FaultCase {
  name: string;
  class: "validation" | "bad-input";
  /** The command line after `deno run -A main.ts`. */
  args: string[];
  /** Prepares files in the case's folder before the command runs. */
  setup?(dir: string): Promise<void>;
  expectExit: number;
  /** Words stderr must contain. */
  mustContain: string[];
  /** No `    at …` line and no `error: Uncaught` on stderr. */
  noStackTrace: true;
  /** Why the case cannot pass yet (it is then ignored, and listed as such). */
  pending?: string;
}

const E2E_TEXT = await Deno.readTextFile(E2E_PIPELINE);

/** Writes the e2e pipeline as `$DIR/p.yaml` with `from` replaced by `to`. */
function pipelineWith(from: string, to: string): (dir: string) => Promise<void> {
  return async (dir) => {
    assert(E2E_TEXT.includes(from), `the e2e pipeline holds ${from}`);
    await Deno.writeTextFile(join(dir, "p.yaml"), E2E_TEXT.replace(from, to));
  };
}

/** Writes `text` as `$DIR/p.yaml`. */
function pipelineText(text: string): (dir: string) => Promise<void> {
  return (dir) => Deno.writeTextFile(join(dir, "p.yaml"), text);
}

/** The e2e pipeline, unchanged, as `$DIR/p.yaml`. */
const E2E_AS_IS = pipelineWith("", "");

/** A dry run of `$DIR/p.yaml` in a store of its own. */
const DRY_RUN = ["pipeline", "$DIR/p.yaml", "--store", "$DIR/store", "--dry-run"];

/** Nine levels of nine aliases each: 9^9 strings once expanded (billion laughs). */
const ALIAS_BOMB = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"].concat(
  Array.from({ length: 8 }, (_, i) => {
    const [prev, cur] = [String.fromCharCode(97 + i), String.fromCharCode(98 + i)];
    return `${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(", ")}]`;
  }),
).join("\n") + "\n";

const TINY: SamOutConfig = { vocabSize: 12, hidden: 8, heads: 2, layers: 1, maxPositions: 8 };

/** `$DIR/w.safetensors` (a tiny model) and `$DIR/b.json` holding `batch`. */
function modelAndBatch(batch: unknown): (dir: string) => Promise<void> {
  return async (dir) => {
    await Deno.writeFile(
      join(dir, "w.safetensors"),
      samoutToSafetensors(TINY, initParameters(TINY, 1)),
    );
    await Deno.writeTextFile(join(dir, "b.json"), JSON.stringify(batch));
  };
}

/** `$DIR/tok` (a mel-vq tokenize artifact, K = 4) and `$DIR/in.wav` (float) with one bad sample. */
function tokenizerAndWav(bad: number): (dir: string) => Promise<void> {
  return async (dir) => {
    const mel = {
      sample_rate: 8000,
      n_fft: 256,
      win_length: 200,
      hop_length: 80,
      n_mels: 8,
      f_min: 0,
      f_max: 4000,
    };
    const tok = join(dir, "tok");
    await Deno.mkdir(tok);
    await Deno.writeTextFile(
      join(tok, "vocab.json"),
      JSON.stringify(buildVocabulary(["dog"], 4, "seed")),
    );
    await Deno.writeTextFile(
      join(tok, "tokenizer.json"),
      JSON.stringify({ kind: "mel-vq", ...mel, codebook_size: 4, layout: "seed" }),
    );
    await Deno.writeFile(join(tok, "codebook.f32"), new Uint8Array(4 * mel.n_mels * 4));
    const samples = Float32Array.from({ length: 4000 }, (_, i) => 0.3 * Math.sin(i / 7));
    samples[1234] = bad;
    await Deno.writeFile(
      join(dir, "in.wav"),
      encodeWav([samples], mel.sample_rate, { bits: 32, float: true }),
    );
  };
}

// One line per case (deno fmt would spread each over ten).
// deno-fmt-ignore
const CASES: FaultCase[] = [
  // ---- validation (issue 10, section 3) ----
  { name: "a step wires an input slot its job does not have", class: "validation", args: DRY_RUN, setup: pipelineWith("inputs: { data: bucket }", "inputs: { dta: bucket }"), expectExit: 1, mustContain: ["p.yaml", 'step "train"', 'has no input slot "dta"', "data (from a bucket step)"], noStackTrace: true },
  { name: "a job that takes no inputs is given one", class: "validation", args: DRY_RUN, setup: pipelineText("name: t\nseed: 1\nsteps:\n  a: { job: synth }\n  b: { job: synth, inputs: { audio: a } }\n"), expectExit: 1, mustContain: ["p.yaml", 'step "b"', 'no input slot "audio"', 'the job "synth" takes none'], noStackTrace: true },
  { name: "train's data is wired to synth (wrong kind)", class: "validation", args: DRY_RUN, setup: pipelineWith("inputs: { data: bucket }", "inputs: { data: synth }"), expectExit: 1, mustContain: ["p.yaml", 'step "train"', 'input "data"', 'the job "bucket"', 'step "synth", which runs the job "synth"'], noStackTrace: true },
  { name: "tokenize's scan slot is wired to bucket (wrong kind)", class: "validation", args: DRY_RUN, setup: pipelineWith("inputs: { scan: scan }", "inputs: { scan: synth }"), expectExit: 1, mustContain: ['step "tokenize"', 'input "scan"', 'the job "scan"', 'step "synth", which runs the job "synth"'], noStackTrace: true },
  { name: "the pipeline path is a folder", class: "validation", args: ["pipeline", "$DIR", "--store", "$DIR/store", "--dry-run"], expectExit: 1, mustContain: ["is a folder, expected a YAML file"], noStackTrace: true },
  { name: "a YAML alias bomb (billion laughs)", class: "validation", args: DRY_RUN, setup: pipelineText(ALIAS_BOMB), expectExit: 1, mustContain: ["p.yaml", "expands its aliases too far"], noStackTrace: true },
  { name: "model loss on a batch with no scorable target", class: "validation", args: ["model", "loss", "--weights", "$DIR/w.safetensors", "--batch", "$DIR/b.json"], setup: modelAndBatch([[1, 0, 0], [5]]), expectExit: 1, mustContain: ["b.json", "nothing to score", "only padding"], noStackTrace: true },
  { name: "tokens encode on audio with a NaN sample", class: "validation", args: ["tokens", "encode", "--tokenizer", "$DIR/tok", "--audio", "$DIR/in.wav"], setup: tokenizerAndWav(NaN), expectExit: 1, mustContain: ["in.wav", "cannot-decode", "non-finite sample at frame 1234"], noStackTrace: true },
  { name: "tokens encode on audio with an infinite sample", class: "validation", args: ["tokens", "encode", "--tokenizer", "$DIR/tok", "--audio", "$DIR/in.wav"], setup: tokenizerAndWav(-Infinity), expectExit: 1, mustContain: ["in.wav", "cannot-decode", "non-finite sample at frame 1234"], noStackTrace: true },
  { name: "artifacts verify on a store that does not exist", class: "validation", args: ["artifacts", "verify", "--store", "$DIR/no-store"], expectExit: 1, mustContain: ["no-store", "does not exist"], noStackTrace: true },
  { name: "artifacts verify on a store path that is a file", class: "validation", args: ["artifacts", "verify", "--store", "$DIR/p.yaml"], setup: pipelineText("x"), expectExit: 1, mustContain: ["p.yaml", "not a folder"], noStackTrace: true },
  // ---- bad input the CLI already reports well ----
  { name: "an unknown job", class: "bad-input", args: DRY_RUN, setup: pipelineWith("job: bucket", "job: buckit"), expectExit: 1, mustContain: ['step "bucket"', 'unknown job "buckit"'], noStackTrace: true },
  { name: "a parameter of the wrong type", class: "bad-input", args: DRY_RUN, setup: pipelineWith("batch_size: 8", "batch_size: eight"), expectExit: 1, mustContain: ["steps.bucket.params.batch_size", "a number"], noStackTrace: true },
  { name: "a needed input slot left unwired", class: "bad-input", args: DRY_RUN, setup: pipelineWith("inputs: { data: bucket }", "inputs: {}"), expectExit: 1, mustContain: ['step "train"', 'missing input "data"'], noStackTrace: true },
  { name: "an input wired to an unknown step", class: "bad-input", args: DRY_RUN, setup: pipelineWith("inputs: { data: bucket }", "inputs: { data: bucky }"), expectExit: 1, mustContain: ["steps.train.inputs.data", "unknown step", "bucky"], noStackTrace: true },
  { name: "a YAML syntax error", class: "bad-input", args: DRY_RUN, setup: pipelineText("name: x\nseed: 1\nsteps:\n  a: { job: synth\n  b: 1\n"), expectExit: 1, mustContain: ["p.yaml", "YAML syntax error at line"], noStackTrace: true },
  { name: "--set of an unknown step", class: "bad-input", args: [...DRY_RUN, "--set", "nostep.x=1"], setup: E2E_AS_IS, expectExit: 1, mustContain: ['the pipeline has no step "nostep"'], noStackTrace: true },
  { name: "--set without a value", class: "bad-input", args: [...DRY_RUN, "--set", "bucket.batch_size"], setup: E2E_AS_IS, expectExit: 1, mustContain: ['bad override "--set bucket.batch_size"'], noStackTrace: true },
  { name: "a pipeline file that does not exist", class: "bad-input", args: ["pipeline", "$DIR/none.yaml", "--store", "$DIR/store"], expectExit: 1, mustContain: ["pipeline file not found", "none.yaml"], noStackTrace: true },
  { name: "model loss with a token id outside the vocabulary", class: "bad-input", args: ["model", "loss", "--weights", "$DIR/w.safetensors", "--batch", "$DIR/b.json"], setup: modelAndBatch([[1, 12]]), expectExit: 1, mustContain: ["b.json", "bad token id at row 0, column 1"], noStackTrace: true },
  { name: "model info on a file that does not exist", class: "bad-input", args: ["model", "info", "$DIR/none.safetensors"], expectExit: 1, mustContain: ["none.safetensors"], noStackTrace: true },
  { name: "model loss --grads into a folder that does not exist", class: "bad-input", args: ["model", "loss", "--weights", "$DIR/w.safetensors", "--batch", "$DIR/b.json", "--grads", "$DIR/none/g.safetensors"], setup: modelAndBatch([[1, 5, 2]]), expectExit: 1, mustContain: ["--grads", "does not exist"], noStackTrace: true },
];

for (const c of CASES) {
  Deno.test({
    name: `fault [${c.class}] ${c.name}${c.pending ? ` (pending: ${c.pending})` : ""}`,
    ignore: c.pending !== undefined,
    async fn() {
      await using box = await sandbox("samout-faults-");
      await c.setup?.(box.path);
      const r = await box.cli(c.args.map((a) => a.replaceAll("$DIR", box.path)));
      const what = `${c.name}: exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
      assertEquals(r.code, c.expectExit, what);
      for (const word of c.mustContain) {
        assert(r.stderr.includes(word), `${what}\n(stderr lacks ${JSON.stringify(word)})`);
      }
      if (c.noStackTrace) {
        assert(!/^\s+at /m.test(r.stderr), `${what}\n(a stack trace reached the user)`);
        assert(!r.stderr.includes("error: Uncaught"), `${what}\n(an uncaught error)`);
      }
    },
  });
}
