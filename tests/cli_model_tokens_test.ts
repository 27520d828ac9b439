/**
 * `model loss --heads` against the checkpoint's metadata, and the wording of
 * `tokens --tokenizer FILE` and `model loss --grads FOLDER`.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import type { SamOutConfig } from "../lib/model/config.ts";
import { initParameters } from "../lib/model/params.ts";
import {
  configFromSafetensors,
  readSafetensors,
  samoutToSafetensors,
} from "../lib/model/safetensors.ts";
import { modelInfo, modelLoss } from "../lib/cli/model.ts";
import { encodeAudio, tokensToAudio } from "../lib/cli/tokens.ts";

const cfg: SamOutConfig = { vocabSize: 29, hidden: 12, heads: 3, layers: 1, maxPositions: 9 };

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "cli-model-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A checkpoint (with or without num_heads in its metadata) and a batch file. */
async function checkpoint(dir: string, withHeads: boolean) {
  const bytes = samoutToSafetensors(cfg, initParameters(cfg, 2));
  const { tensors, metadata } = readSafetensors(bytes, { file: "x" });
  if (!withHeads) delete metadata.num_heads;
  const { writeSafetensors } = await import("../lib/model/safetensors.ts");
  const weights = join(dir, withHeads ? "with.safetensors" : "without.safetensors");
  await Deno.writeFile(
    weights,
    writeSafetensors(
      [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
      metadata,
    ),
  );
  const batch = join(dir, "batch.json");
  await Deno.writeTextFile(batch, "[[1, 5, 9, 2]]");
  return { weights, batch };
}

Deno.test("model loss --heads that disagrees with the metadata's num_heads is an error naming --heads", async () => {
  await using dir = await tempDir();
  const { weights, batch } = await checkpoint(dir.path, true);
  const e = await assertRejects(
    () => modelLoss({ weights, batch, heads: 4 }),
    "--heads disagrees with the checkpoint's num_heads",
  );
  assert(e instanceof UserError);
  assertEquals(e.location.field, "--heads");
  assertEquals(e.found, "4");
  assertStringIncludes(e.expected!, "3 (the checkpoint's num_heads)");
  // The same count as the metadata is accepted (checked without the GPU: the config alone).
  const { tensors, metadata } = readSafetensors(await Deno.readFile(weights), { file: weights });
  assertEquals(configFromSafetensors(tensors, metadata, { heads: 3 }).heads, 3);
});

Deno.test("model loss --heads must divide the hidden size; without num_heads the hint names --heads", async () => {
  await using dir = await tempDir();
  const { weights, batch } = await checkpoint(dir.path, false);
  const e = await assertRejects(
    () => modelLoss({ weights, batch, heads: 5 }),
    "--heads does not divide the hidden size",
  );
  assert(e instanceof UserError && e.location.field === "--heads");
  assertStringIncludes(e.expected!, "a divisor of hidden = 12");
  const missing = await assertRejects(
    () => modelLoss({ weights, batch }),
    "checkpoint does not say its head count",
  );
  assertStringIncludes((missing as UserError).hint!, "pass --heads N");
  // model info needs no head count, with or without it in the metadata.
  assertStringIncludes(await modelInfo(weights), "unknown (no num_heads in the metadata)");
  assertStringIncludes(await modelInfo((await checkpoint(dir.path, true)).weights), "H = 3");
});

Deno.test("model loss --grads naming a folder says so before any work, not 'create the folder first'", async () => {
  await using dir = await tempDir();
  const { weights, batch } = await checkpoint(dir.path, true);
  const e = await assertRejects(
    () => modelLoss({ weights, batch, grads: dir.path }),
    "--grads names a folder",
  );
  assert(e instanceof UserError && e.location.field === "--grads");
  assert(!e.hint?.includes("create"), e.hint);
  assertStringIncludes(e.hint!, join(dir.path, "grads.safetensors"));
});

Deno.test("tokens --tokenizer naming a file says it is a file, not that it does not exist", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "README.md");
  await Deno.writeTextFile(file, "x");
  const out = join(dir.path, "x.wav");
  for (
    const run of [
      () => tokensToAudio({ tokenizer: file, tokens: "6", out }),
      () => encodeAudio({ tokenizer: file, audio: out }),
    ]
  ) {
    const e = await assertRejects(run, "the tokenizer is a file, not a directory");
    assert(e instanceof UserError && e.location.file === file);
    assertEquals(e.found, "a file");
  }
  await assertRejects(
    () => tokensToAudio({ tokenizer: join(dir.path, "none"), tokens: "6", out }),
    "the tokenizer directory does not exist",
  );
});
