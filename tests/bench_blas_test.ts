import { assert, assertEquals } from "./assert.ts";
import {
  describeOpenBlas,
  fastestOpenBlas,
  openBlasCoreTypes,
  pickFastest,
  referenceEnv,
} from "../bench/blas.ts";

// The CPU reference runs with OpenBLAS's fastest kernels: Debian 12's
// OpenBLAS takes a recent Xeon for a Prescott (SSE3 kernels, a fifth of its
// AVX-512 rate), which made PyTorch look 2-5x slower than it is.

Deno.test("bench/blas: only the core types this instruction set runs are probed", () => {
  const avx512 = "avx2 fma avx512f avx512bw avx512vl avx512dq avx512cd";
  assertEquals(openBlasCoreTypes(new Set(avx512.split(" "))), ["Haswell", "SkylakeX"]);
  assertEquals(openBlasCoreTypes(new Set(`${avx512} avx512_bf16`.split(" "))), [
    "Haswell",
    "SkylakeX",
    "Cooperlake",
  ]);
  assertEquals(openBlasCoreTypes(new Set(["avx2", "fma", "avx512f"])), ["Haswell"]);
  assertEquals(openBlasCoreTypes(new Set(["sse4_2", "avx"])), []);
  assertEquals(openBlasCoreTypes(new Set()), []);
});

Deno.test("bench/blas: the fastest probe wins; OpenBLAS's own choice needs no override", () => {
  const own = { core: "Prescott", gflops: 45 };
  const faster = pickFastest(own, [
    { coreType: "Haswell", core: "Haswell", gflops: 135 },
    { coreType: "SkylakeX", core: "SkylakeX", gflops: 226 },
    { coreType: "Cooperlake", core: "Cooperlake", gflops: 224 },
  ]);
  assertEquals(faster.coreType, "SkylakeX");
  assertEquals(faster.core, "SkylakeX");
  assertEquals(faster.tried.length, 4);
  assert(describeOpenBlas(faster).includes("OPENBLAS_CORETYPE=SkylakeX"), describeOpenBlas(faster));
  assert(describeOpenBlas(faster).includes("Prescott"), describeOpenBlas(faster));

  // The same kernels as its own choice, probed a little faster by noise: no override.
  const same = pickFastest({ core: "Cooperlake", gflops: 200 }, [
    { coreType: "Haswell", core: "Haswell", gflops: 130 },
    { coreType: "Cooperlake", core: "Cooperlake", gflops: 205 },
  ]);
  assertEquals(same.coreType, undefined);
  assertEquals(same.core, "Cooperlake");
  assert(describeOpenBlas(same).includes("its own choice"), describeOpenBlas(same));

  // Its own choice is the fastest.
  const ownBest = pickFastest({ core: "Zen", gflops: 190 }, [
    { coreType: "Haswell", core: "Haswell", gflops: 150 },
  ]);
  assertEquals(ownBest.coreType, undefined);
  assertEquals(ownBest.gflops, 190);
});

Deno.test("bench/blas: the reference's environment drops the machine's OpenBLAS settings", () => {
  const saved = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"].map((k) => [k, Deno.env.get(k)] as const);
  try {
    Deno.env.set("OPENBLAS_CORETYPE", "Prescott");
    Deno.env.set("OPENBLAS_L2_SIZE", "1");
    const plain = referenceEnv();
    assertEquals(plain.OPENBLAS_CORETYPE, undefined);
    assertEquals(plain.OPENBLAS_L2_SIZE, undefined);
    const tuned = referenceEnv({ coreType: "SkylakeX", libraryPath: "/x" });
    assertEquals(tuned.OPENBLAS_CORETYPE, "SkylakeX");
    assertEquals(tuned.OPENBLAS_L2_SIZE, undefined);
    assertEquals(tuned.LD_LIBRARY_PATH, "/x");
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});

/** Debian's numpy on OpenBLAS (CI installs neither: the probe test is then ignored). */
const numpyOnOpenBlas = (() => {
  try {
    Deno.statSync("/usr/lib/python3/dist-packages/numpy");
    return Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libblas.so.3").includes("openblas");
  } catch {
    return false;
  }
})();

Deno.test({
  name: "bench/blas: on this machine, no probed kernels beat the chosen ones",
  ignore: !numpyOnOpenBlas,
}, async () => {
  const choice = await fastestOpenBlas();
  assert(choice, "numpy runs on OpenBLAS here, but the probe found no kernels");
  for (const p of choice.tried) {
    assert(p.gflops <= choice.gflops, `${p.core} probed ${p.gflops} > ${choice.gflops}`);
    assert(p.gflops > 0, `${p.core}: ${p.gflops}`);
  }
  assert(choice.tried.some((p) => p.core === choice.core));
});

Deno.test("bench/blas.ts alone prints every probe and the choice, or why there is none", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../bench/blas.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  if (numpyOnOpenBlas) {
    assert(/^its own choice +\S+ +[\d.]+ GFLOP\/s/m.test(text), text);
    assert(/^chosen: \S+ kernels/m.test(text), text);
  } else {
    assert(text.includes("numpy does not run on OpenBLAS here"), text);
  }
});
