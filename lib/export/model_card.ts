/**
 * The bundle's `README.md`: what the model is, what it was trained on, how
 * well it does beside the baselines (the evaluate step's flat metric names),
 * what the export checked, and how to load it in PyTorch, ONNX Runtime
 * (Python and web) and this project's CLI.
 *
 * @module
 */
import type { Vocabulary } from "../data/types.ts";
import type { SamOutConfig } from "../model/config.ts";
import type { ExportCheckReport } from "./check.ts";
import { runningMaxSteps } from "./samout_onnx.ts";

/** Everything the card states. */
export interface ModelCardInfo {
  config: SamOutConfig;
  parameters: number;
  vocab: Vocabulary;
  /** `tokenizer.json` as read. */
  tokenizer: Record<string, unknown>;
  /** Sequences per split in the tokenize artifact. */
  splits: Record<string, number>;
  /** The train artifact's `metrics.json`, when present. */
  training?: Record<string, unknown>;
  /** The evaluate artifact's `metrics.json`, when there is one. */
  evaluation?: Record<string, unknown>;
  check: ExportCheckReport;
  /** Bundle files and their sizes (the card itself excluded). */
  files: { path: string; bytes: number }[];
  /** Artifact keys the bundle was made from, by input slot. */
  sources: Record<string, string>;
}

const num = (x: unknown, digits = 3) =>
  typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a";
const pct = (x: unknown) =>
  typeof x === "number" && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a";

function sizeText(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${bytes} B`;
}

function evaluationSection(m: Record<string, unknown> | undefined): string[] {
  if (!m) {
    return [
      "No evaluate step fed this export, so there are no test figures here.",
      "",
    ];
  }
  const split = m.reported_split === "val" ? "val" : "test";
  const rows: [string, string, string][] = [
    [
      "loss (nats/token)",
      num(m[`${split}_loss`]),
      `bigram ${num(m[`bigram_${split}_loss`])}, unigram ${num(m[`unigram_${split}_loss`])}, ` +
      `uniform ${num(m[`uniform_${split}_loss`])}`,
    ],
    [
      "audio-token loss",
      num(m[`${split}_audio_loss`]),
      `bigram ${num(m[`bigram_${split}_audio_loss`])}`,
    ],
    [
      "token accuracy",
      pct(m[`${split}_token_accuracy`]),
      `repeat-previous ${pct(m[`repeat_previous_${split}_token_accuracy`])}, bigram ${
        pct(m[`bigram_${split}_token_accuracy`])
      }`,
    ],
    [
      "category accuracy",
      pct(m.category_accuracy),
      `chance ${pct(m.chance_category_accuracy)}, majority ${pct(m.majority_category_accuracy)}` +
      (m.bigram_category_accuracy !== undefined
        ? `, bigram ${pct(m.bigram_category_accuracy)}`
        : ""),
    ],
    [
      "category top-3 accuracy / macro-F1",
      `${pct(m.category_top3_accuracy)} / ${num(m.macro_f1)}`,
      "",
    ],
  ];
  return [
    `On the ${split} split (files the model never trained on), from the evaluate step's ` +
    "`metrics.json`; baselines are fitted on the train split:",
    "",
    "| figure | model | baselines |",
    "| --- | --- | --- |",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    typeof m.category_method === "string" ? `Category prediction: ${m.category_method}.` : "",
    "",
  ];
}

function tokenizerLines(t: Record<string, unknown>, vocab: Vocabulary): string[] {
  if (t.kind === "onnx-codec") {
    const o = (t.onnx ?? {}) as Record<string, unknown>;
    return [
      `- tokenizer: a neural audio codec in ONNX (\`encoder.onnx\`${
        o.decoder ? ", `decoder.onnx`" : ""
      }), ${o.sample_rate} Hz, ${o.hop_length} samples per code, ${vocab.codebook_size} codes`,
    ];
  }
  return [
    `- tokenizer: log-mel frames (${t.n_mels} mel bands, ${t.sample_rate} Hz, hop ${t.hop_length} ` +
    `samples = ${num(t.frame_rate_hz, 0)} tokens/s) each replaced by the nearest of ` +
    `${vocab.codebook_size} k-means centroids (\`codebook.f32\`, \`[${vocab.codebook_size}, ${t.n_mels}]\` f32 LE); ` +
    "audio comes back through the codebook, NNLS to a spectrum and Griffin-Lim",
    ...(t.conventions
      ? [
        "- `tokenizer.json`'s `conventions` say every step from audio to codes (window, padding, " +
        "mel scale, log, distance) in words and as the equivalent torchaudio call, so the codes can " +
        "be computed without this project",
      ]
      : []),
  ];
}

/** How training ended, from the train metrics' `stopped` (`lib/train`'s loop writes it). */
function describeStop(stopped: unknown): string {
  if (stopped === "early") {
    return "stopped early (no validation improvement for `patience` evaluations)";
  }
  if (stopped === "epochs") return "ran every epoch (no early stop)";
  if (stopped === "max_steps") return "stopped at `max_steps`";
  return "stop reason not recorded";
}

/** The card's Markdown. */
export function renderModelCard(info: ModelCardInfo): string {
  const { config: c, vocab, check } = info;
  const V = c.vocabSize, d = c.hidden, L = c.layers, P = c.maxPositions;
  const layout = vocab.layout === "label-first"
    ? "`<|im_start|> <category> <|wav|> audio tokens <|im_end|>` (category first: generation can be conditioned on it)"
    : "`<|im_start|> audio tokens <category> <|im_end|>` (the category token follows the audio: the model names sounds)";
  const t = info.training ?? {};
  const wgpu = check.webgpu;
  const firstAudio = vocab.code_offset;
  const example = [vocab.im_start_id, firstAudio, firstAudio + 1, firstAudio + 2];
  const lines = [
    "# SamOut audio model",
    "",
    "A SamOut decoder (a token mixer that is a running maximum along time instead of attention; " +
    "the exact model is docs/SAMOUT.md of the samout-audio project) trained by next-token " +
    "prediction on audio tokens. Generation carries one state vector per layer, so each new " +
    "token costs the same whatever the prefix length.",
    "",
    "## Model",
    "",
    `- sizes: vocabulary V = ${V}, hidden d = ${d}, heads H = ${c.heads} (head size ${
      d / c.heads
    }), layers L = ${L}, maximum positions P = ${P}`,
    `- parameters: ${info.parameters.toLocaleString("en-US")}`,
    `- sequence layout: ${layout}`,
    `- vocabulary (\`vocab.json\`): id 0 \`<|pad|>\`, 1 \`<|im_start|>\`, 2 \`<|im_end|>\`, 3 \`<|wav|>\`, ` +
    `categories from id ${vocab.category_offset} (${
      vocab.categories.join(", ")
    }), audio code k = id ${vocab.code_offset} + k`,
    ...tokenizerLines(info.tokenizer, vocab),
    "",
    "## Data and training",
    "",
    `- sequences: ${
      Object.entries(info.splits).map(([s, n]) => `${n} ${s}`).join(", ")
    } (split by file)`,
    `- training: ${t.steps ?? "?"} steps, ${t.epochs_completed ?? "?"} epochs, ${
      describeStop(t.stopped)
    }; best validation loss ${num(t.best_val_loss)} nats/token at step ${t.best_step ?? "?"} ` +
    `(uniform guessing: ${num(t.uniform_loss)}); these are the weights exported`,
    "",
    "## How well it does",
    "",
    ...evaluationSection(info.evaluation),
    "## Files",
    "",
    "| file | size | what |",
    "| --- | --- | --- |",
    ...info.files.map((f) => `| \`${f.path}\` | ${sizeText(f.bytes)} | ${fileRole(f.path)} |`),
    "",
    "## What the export checked",
    "",
    `onnxruntime-web ran both ONNX models on ${
      check.batches.map((b) => `${b.rows} x ${b.length}`).join(" and ")
    } token batches from the ${
      info.splits.test ? "test" : "held-out"
    } data and matched the project's WGSL forward pass (${check.adapter}) to at most ${check.tolerance} relative ` +
    `error (max |difference| / max |logit|); the step model fed token by token matched the full model. ` +
    `Largest error measured: ${check.max_relative_error.toExponential(2)}.`,
    "",
    "| backend | model | batch | against | relative error |",
    "| --- | --- | --- | --- | --- |",
    ...check.comparisons.map((x) =>
      `| ${x.backend} | \`${x.model}\` | ${x.batch} | ${x.against} | ${
        x.relative_error.toExponential(2)
      } |`
    ),
    "",
    wgpu.ran
      ? `WebGPU backend: every node of both models ran on the GPU (${
        wgpu.sessions.map((s) => `\`${s.model}\`: ${s.nodes_on_webgpu} nodes`).join(", ")
      }; no CPU fallback in ONNX Runtime's placement log).`
      : `WebGPU backend: not run (${wgpu.reason}).`,
    "",
    "## The ONNX models",
    "",
    "- `model.onnx`: input `ids` int64 `[batch, length]` (0 = padding, length <= " + P +
    ") → output `logits` f32 `[batch, length, " + V + "]`; both dimensions are dynamic; " +
    "position t's logits predict token t + 1.",
    "- `model.step.onnx`: inputs `token` int64 `[batch]`, `state` f32 `[" + L +
    ", batch, " + d + "]` (each layer's running maximum; all `-inf` before the first token), " +
    "`position` int64 `[batch]` (the position of `token`, < " + P +
    ") → outputs `logits` f32 `[batch, " +
    V + "]` and `new_state` f32 `[" + L + ", batch, " + d + "]`. Feed `new_state` back as `state`.",
    "",
    "ONNX has no cumulative maximum: the running maximum is built from Pad, Slice and Max by " +
    `log-step doubling (${runningMaxSteps(P)} steps, enough for ${P} positions), padding with ` +
    "the lowest finite float32 (it acts as -inf without putting an infinity in the graph). " +
    "Opset 17, every operator one that onnxruntime-web's WebGPU backend runs.",
    "",
    "## Loading it",
    "",
    "### PyTorch",
    "",
    "```python",
    "import torch, samout   # samout.py from this folder",
    'model = samout.SamOut.from_bundle(".")   # config.json + model.safetensors (load_state_dict)',
    `ids = torch.tensor([[${example.join(", ")}]])`,
    "logits = model(ids)                       # [1, 4, " + V + "]",
    "",
    "state = model.initial_state(batch=1)      # generation: one token at a time",
    "for t in range(ids.shape[1]):",
    "    logits, state = model.step(ids[:, t], state, t)",
    "```",
    "",
    "`samout.py` uses the `safetensors` package when it is installed and reads the file itself " +
    "otherwise; `python3 samout.py .` checks the step form against the full forward.",
    "",
    "### ONNX Runtime (Python)",
    "",
    "```python",
    "import numpy as np, onnxruntime as ort",
    'full = ort.InferenceSession("model.onnx")',
    `logits = full.run(["logits"], {"ids": np.array([[${
      example.join(", ")
    }]], dtype=np.int64)})[0]`,
    "",
    'step = ort.InferenceSession("model.step.onnx")',
    `state = np.full((${L}, 1, ${d}), -np.inf, dtype=np.float32)`,
    `for t, token in enumerate([${example.join(", ")}]):`,
    "    logits, state = step.run(None, {",
    '        "token": np.array([token], dtype=np.int64), "state": state,',
    '        "position": np.array([t], dtype=np.int64)})',
    "```",
    "",
    "### ONNX Runtime Web (Node, Deno, a browser)",
    "",
    "```js",
    `// Node: npm install onnxruntime-web@${check.onnxruntime_web} (wasm; its WebGPU build needs a browser or Deno).`,
    `// Deno: import from "npm:onnxruntime-web@${check.onnxruntime_web}/webgpu" for WebGPU.`,
    'import * as ort from "onnxruntime-web";',
    'import { readFile } from "node:fs/promises"; // a browser passes the URL "model.onnx" instead',
    'const session = await ort.InferenceSession.create(await readFile("model.onnx"), {',
    '  executionProviders: ["webgpu", "wasm"], // the first one this runtime has',
    "});",
    `const ids = new ort.Tensor("int64", BigInt64Array.from([${
      example.map((x) => `${x}n`).join(", ")
    }]), [1, ${example.length}]);`,
    "const { logits } = await session.run({ ids }); // logits.dims = [1, " + example.length + ", " +
    V + "]",
    "```",
    "",
    "### This project's CLI",
    "",
    "```sh",
    "deno task generate --model . --category " + vocab.categories[0] +
    " --count 4 --out generated/   # sounds, token by token with the state",
    "deno task classify --model . clip.wav more/                 # category probabilities",
    "deno task model info model.safetensors                       # sizes, tensors, vocabulary",
    'deno task tokens to-audio --tokenizer . --tokens "…" --out x.wav   # token ids → audio',
    "deno task tokens encode --tokenizer . --audio clip.wav      # audio → token ids",
    "```",
    "",
    "`--model` takes this folder as it is (weights, vocabulary and tokenizer side by side), and " +
    "so does `--tokenizer` (`vocab.json`, `tokenizer.json` and the codebook or codec); nothing " +
    "here needs the artifact store. `deno task` runs in the project's folder wherever it is " +
    "typed; relative paths on its command line are taken from the folder it was typed in, so " +
    "these lines work as written from this folder.",
    "",
    "## Provenance",
    "",
    ...Object.entries(info.sources).map(([slot, key]) => `- ${slot}: artifact \`${key}\``),
    "",
  ];
  return lines.join("\n");
}

function fileRole(path: string): string {
  switch (path) {
    case "model.onnx":
      return "full sequence → logits (ONNX, opset 17)";
    case "model.step.onnx":
      return "one token + state → logits + new state (ONNX, opset 17)";
    case "model.safetensors":
      return "weights, SAMOUT.md names, F32, sizes in `__metadata__`";
    case "config.json":
      return "sizes";
    case "vocab.json":
      return "token strings by id, categories, layout";
    case "tokenizer.json":
      return "tokenizer kind and settings";
    case "codebook.f32":
      return "mel codebook";
    case "encoder.onnx":
      return "audio → codes";
    case "decoder.onnx":
      return "codes → audio";
    case "samout.py":
      return "PyTorch module";
    case "check.json":
      return "the export's self-check, with example inputs and logits";
    default:
      return "";
  }
}
