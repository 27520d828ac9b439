import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import { type Gpu, requestGpu } from "./device.ts";
import { assignNearest, fitKMeans, ITERATIONS_PER_SUBMIT } from "./kmeans.ts";

/** `[n, d]` f32: `clusters` Gaussian blobs (std 0.3) around centres drawn in [-5, 5]^d. */
function blobs(n: number, d: number, clusters: number, seed: number): Float32Array {
  const r = new Random(seed, "kmeans-test");
  const centres = Float64Array.from({ length: clusters * d }, () => r.range(-5, 5));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = r.int(clusters);
    for (let j = 0; j < d; j++) x[i * d + j] = centres[c * d + j] + r.normal(0, 0.3);
  }
  return x;
}

function sqDist(x: Float32Array, i: number, c: Float32Array, k: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += (x[i * d + j] - c[k * d + j]) ** 2;
  return s;
}

/** CPU reference: argmin distance in f64, ties to the lowest index. */
function nearestCpu(x: Float32Array, c: Float32Array, d: number, k: number): Uint32Array {
  const n = x.length / d;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bestD = Infinity;
    for (let kk = 0; kk < k; kk++) {
      const dist = sqDist(x, i, c, kk, d);
      if (dist < bestD) [best, bestD] = [kk, dist];
    }
    out[i] = best;
  }
  return out;
}

/** Where GPU and CPU disagree, the two distances must be equal up to f32 rounding. */
function assertNearestAgree(
  x: Float32Array,
  c: Float32Array,
  d: number,
  k: number,
  got: Uint32Array,
): void {
  const want = nearestCpu(x, c, d, k);
  let mismatches = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) continue;
    mismatches++;
    const dg = sqDist(x, i, c, got[i], d), dw = sqDist(x, i, c, want[i], d);
    assert(
      Math.abs(dg - dw) <= 1e-5 * (1 + dw),
      `frame ${i}: GPU chose ${got[i]} (d=${dg}), CPU ${want[i]} (d=${dw})`,
    );
  }
  assert(mismatches <= want.length / 100, `${mismatches} near-tie mismatches is too many`);
}

Deno.test("assignNearest matches the CPU reference on awkward sizes, chunked and not", async () => {
  const gpu = await requestGpu();
  const d = 13, k = 37, n = 1001; // codebook tile = floor(4096 / 13) = 315 rows; k not a multiple of 64
  const x = blobs(n, d, 9, 1);
  const r = new Random(2, "codebook");
  const c = Float32Array.from({ length: k * d }, () => r.range(-5, 5));
  const whole = await assignNearest(gpu, x, c, d, k);
  assertNearestAgree(x, c, d, k, whole);
  const chunked = await assignNearest(gpu, x, c, d, k, { chunkRows: 130 });
  assertEquals(chunked, whole, "chunking must not change the assignment");
});

Deno.test("assignNearest tiles a codebook larger than one workgroup tile", async () => {
  const gpu = await requestGpu();
  const d = 40, k = 300; // tile = 102 centroids, so 3 tiles (the last partial)
  const x = blobs(200, d, 5, 3);
  const r = new Random(4, "codebook");
  const c = Float32Array.from({ length: k * d }, () => r.range(-5, 5));
  assertNearestAgree(x, c, d, k, await assignNearest(gpu, x, c, d, k));
});

Deno.test("assignNearest handles frames wider than the register-held 128 floats", async () => {
  const gpu = await requestGpu();
  const d = 133, k = 33; // D4 = 34: frames read from storage; tile = 30 centroids, so 2 tiles
  const x = blobs(97, d, 4, 12);
  const r = new Random(13, "codebook");
  const c = Float32Array.from({ length: k * d }, () => r.range(-5, 5));
  assertNearestAgree(x, c, d, k, await assignNearest(gpu, x, c, d, k));
});

Deno.test("assignNearest breaks exact ties toward the lowest index", async () => {
  const gpu = await requestGpu();
  const c = new Float32Array([1, 0, 5, 5, 1, 0, 0, 1]); // entries 0 and 2 identical; 3 ties with 0 at the origin
  const x = new Float32Array([1, 0, 0, 0, 0.9, 0.1]);
  assertEquals(Array.from(await assignNearest(gpu, x, c, 2, 4)), [0, 0, 0]);
});

Deno.test("fitKMeans recovers well-separated blobs and its inertia is that of its codebook", async () => {
  const gpu = await requestGpu();
  const d = 7, k = 6, n = 1203;
  const x = blobs(n, d, k, 5);
  const fit = await fitKMeans(gpu, x, d, k, { seed: 11, iterations: 30, tolerance: 0 });
  assertEquals(fit.codebook.length, k * d);
  assert(fit.iterations >= 1 && fit.iterations <= 30, `iterations ${fit.iterations}`);
  const assign = nearestCpu(x, fit.codebook, d, k);
  let inertia = 0;
  for (let i = 0; i < n; i++) inertia += sqDist(x, i, fit.codebook, assign[i], d);
  assert(Math.abs(inertia - fit.inertia) <= 1e-6 * inertia, `${fit.inertia} vs ${inertia}`);
  // Blob noise variance 0.09 per dimension: a correct fit has inertia near n * d * 0.09.
  assert(fit.inertia < n * d * 0.09 * 1.3, `inertia ${fit.inertia} suggests merged blobs`);
  const used = new Set(assign).size;
  assertEquals(used, k, "every centroid should own a blob");
});

/** Plain Lloyd on the CPU from a given codebook: full scans in f64, the same update rule. */
function lloydCpu(
  x: Float32Array,
  init: Float32Array,
  d: number,
  k: number,
  iterations: number,
): Float32Array {
  let c = init;
  let assign = nearestCpu(x, c, d, k);
  for (let it = 0; it < iterations; it++) {
    const sums = new Float64Array(k * d), counts = new Float64Array(k);
    assign.forEach((a, i) => {
      counts[a]++;
      for (let j = 0; j < d; j++) sums[a * d + j] += x[i * d + j];
    });
    assert(counts.every((n) => n > 0), "the reference does not re-seed: pick data without empties");
    c = Float32Array.from(sums, (v, t) => v / counts[Math.floor(t / d)]);
    const next = nearestCpu(x, c, d, k);
    if (next.every((a, i) => a === assign[i])) break;
    assign = next;
  }
  return c;
}

Deno.test("fitKMeans on the GPU ends where plain Lloyd on the CPU does", async () => {
  const gpu = await requestGpu();
  const d = 13, k = 21, n = 1531;
  const x = blobs(n, d, 8, 9);
  const r = new Random(10, "init");
  // Initial centroids at distinct random frames, so no cluster starts empty.
  const init = new Float32Array(k * d);
  const picks = new Set<number>();
  while (picks.size < k) picks.add(r.int(n));
  [...picks].forEach((f, c) => init.set(x.subarray(f * d, (f + 1) * d), c * d));
  const want = lloydCpu(x, init, d, k, 40);
  const fit = await fitKMeans(gpu, x, d, k, {
    seed: 0,
    iterations: 40,
    tolerance: 0,
    initialCodebook: init,
  });
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(want[i] - fit.codebook[i]));
  }
  assert(maxDiff < 1e-4, `codebooks differ by up to ${maxDiff}`);
});

Deno.test("fitKMeans is deterministic and its seed matters", async () => {
  const gpu = await requestGpu();
  const d = 5, k = 17, n = 777;
  const x = blobs(n, d, 23, 6);
  const opts = { seed: 3, iterations: 8, tolerance: 1e-6 };
  const a = await fitKMeans(gpu, x, d, k, opts);
  const b = await fitKMeans(gpu, x, d, k, opts);
  assertEquals(new Uint8Array(b.codebook.buffer), new Uint8Array(a.codebook.buffer));
  assertEquals(b.inertia, a.inertia);
  assertEquals(b.assignment, a.assignment);
  const other = await fitKMeans(gpu, x, d, k, { ...opts, seed: 4 });
  assert(
    !new Uint8Array(other.codebook.buffer).every((v, i) =>
      v === new Uint8Array(a.codebook.buffer)[i]
    ),
    "a different seed should give a different codebook",
  );
});

Deno.test("fitKMeans iterations spanning several GPU submits continue where they left off", async () => {
  const gpu = await requestGpu();
  const d = 6, k = 29, n = 2003;
  const x = blobs(n, d, 11, 14);
  const total = ITERATIONS_PER_SUBMIT + 3;
  const whole = await fitKMeans(gpu, x, d, k, { seed: 5, iterations: total, tolerance: 0 });
  assertEquals(whole.iterations, total, "the data should not converge this early");
  // Lloyd's state is the codebook alone: 5 iterations, then the rest from there.
  const first = await fitKMeans(gpu, x, d, k, { seed: 5, iterations: 5, tolerance: 0 });
  const rest = await fitKMeans(gpu, x, d, k, {
    seed: 0,
    iterations: total - 5,
    tolerance: 0,
    initialCodebook: first.codebook,
  });
  assertEquals(new Uint8Array(rest.codebook.buffer), new Uint8Array(whole.codebook.buffer));
  assertEquals(rest.assignment, whole.assignment);
  assertNearestAgree(x, whole.codebook, d, k, whole.assignment);
});

Deno.test("fitKMeans assigns extra frames to its final codebook, as assignNearest does", async () => {
  const gpu = await requestGpu();
  const d = 9, k = 23, n = 811;
  const x = blobs(n, d, 7, 21);
  const extra = blobs(333, d, 7, 22);
  const fit = await fitKMeans(gpu, x, d, k, {
    seed: 2,
    iterations: 30,
    tolerance: 1e-4,
    assignAlso: extra,
  });
  assertEquals(fit.extraAssignment.length, 333);
  assertEquals(fit.extraAssignment, await assignNearest(gpu, extra, fit.codebook, d, k));
  const plain = await fitKMeans(gpu, x, d, k, { seed: 2, iterations: 30, tolerance: 1e-4 });
  assertEquals(plain.extraAssignment.length, 0);
  assertEquals(new Uint8Array(plain.codebook.buffer), new Uint8Array(fit.codebook.buffer));
});

Deno.test("fitKMeans stops at the tolerance: a loose one runs fewer iterations", async () => {
  const gpu = await requestGpu();
  const d = 6, k = 29, n = 2003;
  const x = blobs(n, d, 11, 14);
  const tight = await fitKMeans(gpu, x, d, k, { seed: 5, iterations: 40, tolerance: 0 });
  const loose = await fitKMeans(gpu, x, d, k, { seed: 5, iterations: 40, tolerance: 0.05 });
  assert(loose.iterations < tight.iterations, `${loose.iterations} vs ${tight.iterations}`);
  assert(loose.inertia >= tight.inertia, `${loose.inertia} < ${tight.inertia}`);
});

Deno.test("fitKMeans re-seeds an empty cluster at the frame farthest from its centroid", async () => {
  const gpu = await requestGpu();
  const x = new Float32Array([0, 0, 1, 0, 0, 1, 6, 0]);
  // Centroid 1 starts far from every frame, so the first assignment leaves it empty.
  const initialCodebook = new Float32Array([0, 0, 100, 100]);
  const fit = await fitKMeans(gpu, x, 2, 2, {
    seed: 1,
    iterations: 10,
    tolerance: 0,
    initialCodebook,
  });
  // Re-seeded at (6, 0) (farthest from centroid 0 at the origin), then centroid 0 = mean of the rest.
  assertEquals(Array.from(fit.codebook), [1 / 3, 1 / 3, 6, 0].map(Math.fround));
  assert(Math.abs(fit.inertia - 12 / 9) < 1e-6, `inertia ${fit.inertia}, expected 4/3`);
});

Deno.test("fitKMeans gives duplicate frames distinct centroids when K equals the distinct count", async () => {
  const gpu = await requestGpu();
  const pts = [0, 0, 10, 0, 0, 10, 10, 10];
  const x = new Float32Array(24);
  for (let i = 0; i < 12; i++) x.set(pts.slice((i % 4) * 2, (i % 4) * 2 + 2), i * 2);
  const fit = await fitKMeans(gpu, x, 2, 4, { seed: 1, iterations: 10, tolerance: 0 });
  assertEquals(fit.inertia, 0, "each distinct point should get its own centroid");
});

Deno.test("fitKMeans with fewer frames than K is a UserError", async () => {
  const gpu = await requestGpu();
  const e = await assertRejects(
    () => fitKMeans(gpu, new Float32Array(10), 2, 8, { seed: 1, iterations: 2, tolerance: 0 }),
    "at least as many frames",
  );
  assert(e instanceof UserError);
});

/** `g` with a smaller `maxTextureDimension2D` (its other limits as they are). */
function withTextureRows(g: Gpu, rows: number): Gpu {
  const limits = new Proxy(g.limits, {
    get: (t, p) => p === "maxTextureDimension2D" ? rows : t[p as keyof GPUSupportedLimits],
  });
  return { ...g, limits };
}

Deno.test("the scan gives the same bytes reading images as reading storage buffers", async () => {
  const gpu = await requestGpu();
  // d = 9: rows padded to 3 vec4s; 811 frames are 2,433 texels (two full texture rows and a part).
  const d = 9, k = 23, n = 811;
  const x = blobs(n, d, 7, 31);
  const extra = blobs(333, d, 7, 32);
  const opts = { seed: 3, iterations: ITERATIONS_PER_SUBMIT + 4, tolerance: 0, assignAlso: extra };
  const image = await fitKMeans(gpu, x, d, k, { ...opts, reads: "image" });
  const storage = await fitKMeans(gpu, x, d, k, { ...opts, reads: "storage" });
  assertEquals(image.reads, "image");
  assertEquals(storage.reads, "storage");
  assert(image.iterations > 1, `${image.iterations} iterations`);
  assertEquals(image.iterations, storage.iterations);
  assertEquals(new Uint8Array(image.codebook.buffer), new Uint8Array(storage.codebook.buffer));
  assertEquals(image.assignment, storage.assignment);
  assertEquals(image.extraAssignment, storage.extraAssignment);
  // Exactly two full texture rows (d = 4: 2,048 texels), chunked and not.
  const y = blobs(2048, 4, 5, 33);
  const c = blobs(40, 4, 5, 34);
  for (const chunkRows of [undefined, 700]) {
    const fromImage = await assignNearest(gpu, y, c, 4, 40, { chunkRows, reads: "image" });
    const fromStorage = await assignNearest(gpu, y, c, 4, 40, { chunkRows, reads: "storage" });
    assertEquals(fromImage, fromStorage);
    assertNearestAgree(y, c, 4, 40, fromImage);
  }
  assertEquals(
    await assignNearest(gpu, x, image.codebook, d, k, { reads: "image" }),
    image.assignment,
  );
});

Deno.test("frames too many for one texture are read from storage, with the same result", async () => {
  const gpu = await requestGpu();
  const d = 9, k = 23, n = 811; // 2,433 texels: three rows of 1,024
  const x = blobs(n, d, 7, 41);
  const opts = { seed: 3, iterations: 10, tolerance: 0 };
  const cramped = await fitKMeans(withTextureRows(gpu, 2), x, d, k, opts);
  const roomy = await fitKMeans(withTextureRows(gpu, 3), x, d, k, opts);
  assertEquals(cramped.reads, "storage");
  assertEquals(roomy.reads, "image");
  assertEquals(new Uint8Array(cramped.codebook.buffer), new Uint8Array(roomy.codebook.buffer));
  assertEquals(cramped.assignment, roomy.assignment);
});
