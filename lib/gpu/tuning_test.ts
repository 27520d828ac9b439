import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../../tests/assert.ts";
import { join } from "node:path";
import { requestGpu } from "./device.ts";
import { HARDWARE_TILE, SOFTWARE_TILE } from "./ops/matmul.ts";
import { Random } from "../random/mod.ts";
import { UserError } from "../errors/mod.ts";
import {
  chooseMatmulTiles,
  describeChoice,
  type MatmulCandidate,
  matmulCandidates,
  type MatmulKind,
  productMismatch,
  type ProductShapes,
  samoutProductShapes,
  timeInterleaved,
} from "./tuning.ts";

/** Two small tiles: cheap to compile, so the test is about the choosing and the cache. */
const CANDIDATES: Record<MatmulKind, MatmulCandidate[]> = (() => {
  const list = [
    { name: "texture 8x4", tile: { ...SOFTWARE_TILE, rows: 8, cols: 4, texture: true } },
    { name: "storage 8x4", tile: { ...SOFTWARE_TILE, rows: 8, cols: 4, texture: false } },
  ];
  return { NT: list, NN: list, TN: list };
})();

/** Small enough to time in a second or two, large enough to be timed (minWork 0). */
const SHAPES: ProductShapes = samoutProductShapes({ hidden: 16, layers: 1, vocabSize: 37 }, 40, 24);

async function cacheFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(join(dir, "kernels"))) names.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}

Deno.test("tuning: the first choice times every candidate and caches it; the second reads the cache", async () => {
  const gpu = await requestGpu();
  const dir = await Deno.makeTempDir();
  try {
    const first = await chooseMatmulTiles(gpu, SHAPES, {
      cacheDir: dir,
      minWork: 0,
      candidates: CANDIDATES,
    });
    assertEquals(first.source, "tuned");
    const candidates = CANDIDATES;
    for (const kind of ["NT", "NN", "TN"] as const) {
      assertEquals(
        Object.keys(first.timings![kind]).sort(),
        candidates[kind].map((c) => c.name).sort(),
        `${kind}: every candidate timed`,
      );
      // The record keeps 0.01 ms: the chosen one's is the least (ties possible).
      const least = Math.min(...Object.values(first.timings![kind]));
      assertEquals(
        first.timings![kind][first.names[kind]],
        least,
        `${kind}: the fastest is chosen`,
      );
    }
    assertEquals((await cacheFiles(dir)).length, 1, "one cache file");

    const logs: string[] = [];
    const second = await chooseMatmulTiles(gpu, SHAPES, {
      cacheDir: dir,
      minWork: 0,
      candidates: CANDIDATES,
      log: (m) => logs.push(m),
    });
    assertEquals(second.source, "cache");
    assertEquals(second.names, first.names);
    assertEquals(second.tiles, first.tiles);
    assertEquals(logs, [], "no timing the second time");
    assert(describeChoice(second).endsWith("(cache)"), describeChoice(second));

    // Another model shape is another entry.
    const other = { ...SHAPES, M: SHAPES.M + 8 };
    assertEquals(
      (await chooseMatmulTiles(gpu, other, { cacheDir: dir, minWork: 0, candidates: CANDIDATES }))
        .source,
      "tuned",
    );
    assertEquals((await cacheFiles(dir)).length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tuning: a damaged cache file or one naming an unknown kernel is not trusted", async () => {
  const gpu = await requestGpu();
  const dir = await Deno.makeTempDir();
  try {
    await chooseMatmulTiles(gpu, SHAPES, { cacheDir: dir, minWork: 0, candidates: CANDIDATES });
    const [name] = await cacheFiles(dir);
    const file = join(dir, "kernels", name);
    const good = JSON.parse(await Deno.readTextFile(file));
    for (
      const [what, text] of [
        ["truncated", JSON.stringify(good).slice(0, 40)],
        [
          "unknown kernel",
          JSON.stringify({ ...good, choice: { ...good.choice, NT: "magic 99x99" } }),
        ],
        ["wrong version", JSON.stringify({ ...good, version: 0 })],
      ]
    ) {
      await Deno.writeTextFile(file, text);
      const logs: string[] = [];
      const choice = await chooseMatmulTiles(gpu, SHAPES, {
        cacheDir: dir,
        minWork: 0,
        candidates: CANDIDATES,
        log: (m) => logs.push(m),
      });
      assertEquals(choice.source, "tuned", `${what}: timed again`);
      assert(logs.some((m) => m.includes(file)), `${what}: the log names the file: ${logs}`);
      const rewritten = JSON.parse(await Deno.readTextFile(file));
      assertEquals(rewritten.choice, choice.names, `${what}: the file is rewritten`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tuning: small products keep the defaults untimed and write nothing", async () => {
  const gpu = await requestGpu();
  const dir = await Deno.makeTempDir();
  try {
    const choice = await chooseMatmulTiles(gpu, SHAPES, { cacheDir: dir });
    assertEquals(choice.source, "default");
    const c = matmulCandidates(gpu);
    assertEquals(choice.names, { NT: c.NT[0].name, NN: c.NN[0].name, TN: c.TN[0].name });
    assert(choice.reason?.includes("small"), choice.reason);
    assertEquals(await cacheFiles(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tuning: a cache folder that cannot be written costs the timing, never the run", async () => {
  const gpu = await requestGpu();
  const dir = await Deno.makeTempDir();
  try {
    // A file where the kernels folder should be: every write into it fails.
    await Deno.writeTextFile(join(dir, "kernels"), "not a folder");
    const logs: string[] = [];
    const opts = {
      cacheDir: dir,
      minWork: 0,
      candidates: CANDIDATES,
      log: (m: string) => logs.push(m),
    };
    const first = await chooseMatmulTiles(gpu, SHAPES, opts);
    assertEquals(first.source, "tuned");
    assert(logs.some((m) => m.includes("could not keep the kernel choice")), logs.join("\n"));
    const second = await chooseMatmulTiles(gpu, SHAPES, opts);
    assertEquals(second.source, "tuned", "nothing was kept, so it times again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tuning: software candidates broadcast X through subgroups only where the device has 8-wide ones", async () => {
  const gpu = await requestGpu();
  const software = { ...gpu, isFallback: true, adapterDescription: "llvmpipe (test)" };
  const withSubgroups = matmulCandidates({ ...software, subgroupSize: 8 });
  const without = matmulCandidates({ ...software, subgroupSize: undefined });
  const wide = matmulCandidates({ ...software, subgroupSize: 32 });
  for (const kind of ["NT", "NN", "TN"] as const) {
    assertEquals(without[kind].filter((c) => c.tile.subgroupX).length, 0);
    assertEquals(wide[kind], without[kind]);
    // The same tilings, each texture one with subgroupX and " sg" in its name.
    assertEquals(withSubgroups[kind].length, without[kind].length);
    for (const [i, c] of withSubgroups[kind].entries()) {
      const plain = without[kind][i];
      if (!plain.tile.texture) {
        assertEquals(c, plain);
        continue;
      }
      assertEquals(c.name, `${plain.name} sg`);
      assertEquals(c.tile, { ...plain.tile, subgroupX: true });
    }
  }
});

Deno.test("tuning: candidates timed on a machine that slows down steadily are still ranked right", async () => {
  // Candidate 1 is 5% faster, but every pass runs 10% slower than the one before.
  const truth = [1.05, 1.0, 1.6];
  let calls = 0;
  const passes = truth.map((t) => () => Promise.resolve(t * (1 + 0.1 * calls++)));
  const ms = await timeInterleaved(passes);
  assert(ms[1] < ms[0], `the faster candidate must win: ${ms}`);
  // Forward, then backward: candidate 0 at calls 0 and 4, candidate 1 at 1 and 3 (both
  // centred on call 2). Timed one after another, each the lesser of two passes,
  // candidate 0 would have won: 1.05 against 1.0 x 1.2.
  assertAlmostEquals(ms[0], (1.05 + 1.05 * 1.4) / 2);
  assertAlmostEquals(ms[1], (1.0 * 1.1 + 1.0 * 1.3) / 2);
  // 1.6 x 1.2 is more than 1.5x the best first time (1.05): timed once.
  assertAlmostEquals(ms[2], 1.6 * 1.2);
  assertEquals(calls, 5);
});

Deno.test("tuning: the results check passes float32 rounding and catches a wrong, missing or NaN output", () => {
  const rng = new Random(3, "tuning_test");
  const dims = { M: 5, N: 7, K: 9 };
  for (const kind of ["NT", "NN", "TN"] as const) {
    // NT: a [M,K], b [N,K] -> [M,N]; NN: a [M,N], b [N,K] -> [M,K]; TN: a [M,N], b [M,K] -> [N,K].
    const [aShape, bShape, rows, cols, depth] = kind === "NT"
      ? [[5, 9], [7, 9], 5, 7, 9]
      : kind === "NN"
      ? [[5, 7], [7, 9], 5, 9, 7]
      : [[5, 7], [5, 9], 7, 9, 5];
    const a = Float32Array.from({ length: aShape[0] * aShape[1] }, () => rng.range(-1, 1));
    const b = Float32Array.from({ length: bShape[0] * bShape[1] }, () => rng.range(-1, 1));
    const ref = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        let sum = 0;
        for (let t = 0; t < depth; t++) {
          const x = kind === "NT" ? a[r * 9 + t] : kind === "NN" ? a[r * 7 + t] : a[t * 7 + r];
          const y = kind === "NT" ? b[c * 9 + t] : b[t * 9 + c];
          sum = Math.fround(sum + Math.fround(x * y)); // float32, in another order than float64
        }
        ref[r * cols + c] = sum;
      }
    }
    assertEquals(productMismatch(kind, dims, a, b, ref), undefined, `${kind}: float32 sums pass`);
    const wrong = ref.slice();
    wrong[rows * cols - 2] += 0.01;
    const why = productMismatch(kind, dims, a, b, wrong);
    assert(
      why?.includes(`${kind} product 5x7x9 differs from the host's at output ${rows * cols - 2}`),
      why,
    );
    const missing = ref.slice(0, rows * cols - cols); // the last row never written: zeros
    const padded = new Float32Array(rows * cols);
    padded.set(missing);
    assert(productMismatch(kind, dims, a, b, padded) !== undefined, `${kind}: a missing row`);
    const nan = ref.slice();
    nan[0] = NaN;
    assert(productMismatch(kind, dims, a, b, nan)?.includes("at output 0"), `${kind}: NaN`);
  }
});

Deno.test("tuning: a candidate that fails to build is left out with its reason; all failing is an error", async () => {
  const gpu = await requestGpu();
  // 64 x 64 invocations a workgroup: over every adapter's maxComputeInvocationsPerWorkgroup.
  const broken = {
    name: "storage 4x4 wg64x64",
    tile: { ...HARDWARE_TILE, wgX: 64, wgY: 64, texture: false },
  };
  const logs: string[] = [];
  const withBroken = { NT: [broken, ...CANDIDATES.NT], NN: CANDIDATES.NN, TN: CANDIDATES.TN };
  const choice = await chooseMatmulTiles(gpu, SHAPES, {
    minWork: 0,
    candidates: withBroken,
    log: (m) => logs.push(m),
  });
  assert(choice.names.NT !== broken.name, "the broken candidate was chosen");
  const why = choice.rejected?.NT?.[broken.name];
  assert(why?.startsWith("WebGPU validation error"), JSON.stringify(choice.rejected));
  assert(!(broken.name in choice.timings!.NT), "the broken candidate was timed");
  assertEquals(Object.keys(choice.rejected ?? {}), ["NT"], "only the broken one is left out");
  assert(
    logs.some((m) => m.includes(`NT kernel "${broken.name}" left out: ${why}`)),
    logs.join("\n"),
  );
  // The manifest's line names it too.
  assert(
    describeChoice(choice).endsWith(`; left out as broken here: NT ${broken.name})`),
    describeChoice(choice),
  );

  const onlyBroken = { NT: [broken], NN: CANDIDATES.NN, TN: CANDIDATES.TN };
  const error = await assertRejects(() =>
    chooseMatmulTiles(gpu, SHAPES, { minWork: 0, candidates: onlyBroken })
  );
  assert(
    error.message.includes("no NT matrix-product kernel builds and computes right"),
    error.message,
  );
  assert(error instanceof UserError, String(error));
  assert(error.found?.includes(`${broken.name}: WebGPU validation error`), error.found);
  assert(error.hint?.includes("driver"), error.hint);
});
