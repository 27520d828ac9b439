/**
 * The train job's kernel choice: the first run of a model shape on this
 * adapter times the candidates and caches the winner in the store's cache
 * folder, the second reads it, and the choice changes nothing in what is
 * trained (the same weights and curves, byte for byte, as with the defaults).
 */
import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import { TrainParams } from "../jobs/train.ts";
import { trainSamOut } from "../lib/train/mod.ts";
import { SOFTWARE_TILE } from "../lib/gpu/ops/matmul.ts";
import type { MatmulCandidate, MatmulKind } from "../lib/gpu/tuning.ts";
import { writeTinyBucket } from "./fixtures/train/tiny_data.ts";

/** Two cheap tiles whose sums are the same as the defaults': a test of the choosing, not of speed. */
const CANDIDATES: Record<MatmulKind, MatmulCandidate[]> = (() => {
  const list = [
    { name: "storage 8x4", tile: { ...SOFTWARE_TILE, rows: 8, cols: 4, texture: false } },
    { name: "texture 8x4", tile: { ...SOFTWARE_TILE, rows: 8, cols: 4, texture: true } },
  ];
  return { NT: list, NN: list, TN: list };
})();

Deno.test("train: kernels are timed once per shape and adapter, read from the cache after, and change no result", async () => {
  const root = await Deno.makeTempDir({ prefix: "samout-train-kernels-" });
  try {
    const dataDir = join(root, "data");
    const cacheDir = join(root, "cache");
    await writeTinyBucket(dataDir, { perCategory: 5 });
    const run = async (name: string, tune: boolean) => {
      const outDir = join(root, name, "out"), workDir = join(root, name, "work");
      await Deno.mkdir(outDir, { recursive: true });
      await Deno.mkdir(workDir, { recursive: true });
      const logs: string[] = [];
      const { environment } = await trainSamOut({
        params: TrainParams.parse({
          model: { hidden: 16, heads: 2, layers: 1, max_positions: 32 },
          epochs: 2,
          eval_every_steps: 2,
        }),
        seed: 3,
        dataDir,
        outDir,
        workDir,
        cacheDir: tune ? cacheDir : undefined,
        kernelTuning: tune ? { minWork: 0, candidates: CANDIDATES } : undefined,
        progress: { start() {}, update() {}, finish() {} },
        log: (m) => logs.push(m),
        signal: new AbortController().signal,
        where: { step: "train" },
      });
      return {
        kernels: environment.matmul_kernels,
        logs,
        weights: await Deno.readFile(join(outDir, "best.safetensors")),
        last: await Deno.readFile(join(outDir, "last.safetensors")),
        curves: await Deno.readTextFile(join(outDir, "curves.jsonl")),
      };
    };
    const first = await run("first", true);
    assert(first.kernels.endsWith("(tuned)"), first.kernels);
    assert(
      first.logs.some((m) => m.includes("timing the matrix-product kernels")),
      "says it times",
    );
    const second = await run("second", true);
    assert(second.kernels.endsWith("(cache)"), second.kernels);
    assertEquals(second.kernels.replace("(cache)", ""), first.kernels.replace("(tuned)", ""));
    assert(!second.logs.some((m) => m.includes("timing")), "the second build does not time again");
    const plain = await run("defaults", false);
    assert(plain.kernels.includes("(default"), plain.kernels);
    for (const other of [second, plain]) {
      assertEquals(other.weights, first.weights, `best weights differ (${other.kernels})`);
      assertEquals(other.last, first.last, `last weights differ (${other.kernels})`);
      // Curves carry wall-clock fields; the figures must match.
      const figures = (t: string) =>
        t.trim().split("\n").map((l) => {
          const r = JSON.parse(l);
          return JSON.stringify([r.kind, r.step, r.loss, r.grad_norm, r.val_loss]);
        });
      assertEquals(figures(other.curves), figures(first.curves));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
