/**
 * The CPU references' BLAS (PyTorch in bench/train.ts, numpy in
 * bench/matmul.ts), at its fastest on this machine.
 *
 * Debian's torch and numpy call the system `libblas.so.3`: OpenBLAS where
 * `libopenblas0-pthread` is installed, else the slow reference BLAS. OpenBLAS
 * picks its kernels for the CPU it finds, and a release older than the CPU
 * does not know it: Debian 12's OpenBLAS 0.3.21 takes a recent Xeon (family 6
 * model 207) for a "Prescott" and runs SSE3 kernels there, 45 GFLOP/s at
 * 2048³ where its SkylakeX kernels reach 226. `OPENBLAS_CORETYPE` overrides
 * the choice (and some machines set it, to a slower one), so the reference
 * is first probed (numpy's 1024³ product, a second or so per core type) with
 * OpenBLAS's own choice and with each core type this CPU's instruction set
 * can run, and then runs with the fastest: the peer a user who tuned it would
 * have. `OPENBLAS_L2_SIZE`, which slows it, is never passed on. Alone,
 * `deno run -A bench/blas.ts` prints every probe and the choice.
 *
 * @module
 */

/** One BLAS library a reference can run with, and how to make it do so. */
export interface BlasVariant {
  /** For the printout: "OpenBLAS (SkylakeX kernels, ...)", "reference BLAS". */
  name: string;
  /** LD_LIBRARY_PATH forcing this library instead of the system's. */
  libraryPath?: string;
  /** OPENBLAS_CORETYPE, when OpenBLAS's own choice is not its fastest here. */
  coreType?: string;
}

/** One probe of OpenBLAS's kernels: numpy's 1024³ product. */
export interface OpenBlasProbe {
  /** The OPENBLAS_CORETYPE asked for; undefined: OpenBLAS's own choice. */
  coreType?: string;
  /** The kernels OpenBLAS reports it runs (openblas_get_corename). */
  core: string;
  gflops: number;
  /** The BLAS libraries numpy mapped, comma separated (see {@link NumpyMatmul}). */
  blas?: string;
}

/** OpenBLAS's kernels for this machine: the fastest probe and all of them. */
export interface OpenBlasChoice {
  /** OPENBLAS_CORETYPE to set; undefined when OpenBLAS's own choice is the fastest. */
  coreType?: string;
  /** The chosen kernels' name and rate (numpy's 1024³ product), and numpy's libraries. */
  core: string;
  gflops: number;
  blas?: string;
  /** OpenBLAS's own choice, as probed. */
  own: OpenBlasProbe;
  tried: OpenBlasProbe[];
}

/** numpy's float32 product at n³ (bench/numpy_matmul.py). */
export interface NumpyMatmul {
  gflops: number;
  /** The BLAS libraries mapped into the process, comma separated. */
  blas: string;
  /** The kernels OpenBLAS chose, when the BLAS is OpenBLAS. */
  openblasCore?: string;
}

const LIB = "/usr/lib/x86_64-linux-gnu";

/** The CPU's feature flags (Linux /proc/cpuinfo); empty elsewhere. */
export function cpuFlags(): Set<string> {
  try {
    const text = Deno.readTextFileSync("/proc/cpuinfo");
    return new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? "").split(/\s+/));
  } catch {
    return new Set();
  }
}

/**
 * The OPENBLAS_CORETYPE values worth probing on a CPU with these flags: the
 * x86-64 kernel families of OpenBLAS 0.3.x that this instruction set runs
 * (one that it cannot run would die of an illegal instruction), newest last.
 */
export function openBlasCoreTypes(flags: Set<string>): string[] {
  const has = (...names: string[]) => names.every((n) => flags.has(n));
  const types: string[] = [];
  if (has("avx2", "fma")) types.push("Haswell");
  if (has("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd")) {
    types.push("SkylakeX");
    if (flags.has("avx512_bf16")) types.push("Cooperlake");
  }
  return types;
}

/**
 * The fastest of the probes. Probes that report the same kernels are the
 * same library code, so when OpenBLAS's own choice reports the winner's
 * kernels no override is needed.
 */
export function pickFastest(own: OpenBlasProbe, others: OpenBlasProbe[]): OpenBlasChoice {
  const tried = [own, ...others];
  const best = tried.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  const coreType = best.core === own.core ? undefined : best.coreType;
  return {
    ...(coreType && { coreType }),
    core: best.core,
    gflops: best.gflops,
    ...(best.blas && { blas: best.blas }),
    own,
    tried,
  };
}

/**
 * A reference child's environment: this one without `OPENBLAS_CORETYPE` and
 * `OPENBLAS_L2_SIZE`, then the variant's core type and library path if any.
 */
export function referenceEnv(variant: Omit<BlasVariant, "name"> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (variant.coreType) env.OPENBLAS_CORETYPE = variant.coreType;
  if (variant.libraryPath) env.LD_LIBRARY_PATH = variant.libraryPath;
  return env;
}

/** numpy's product at n³ in a child with this environment; undefined without python3 and numpy. */
export async function numpyMatmul(
  n: number,
  env: Record<string, string> = referenceEnv(),
): Promise<NumpyMatmul | undefined> {
  const script = new URL("./numpy_matmul.py", import.meta.url).pathname;
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [script, String(n)],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const parsed = JSON.parse(new TextDecoder().decode(out.stdout));
    return {
      gflops: parsed.gflops,
      blas: (parsed.blas ?? []).join(", ") || "unknown",
      ...(typeof parsed.openblas_core === "string" && { openblasCore: parsed.openblas_core }),
    };
  } catch {
    return undefined;
  }
}

let chosen: Promise<OpenBlasChoice | undefined> | undefined;

/**
 * Probes OpenBLAS's own kernels and every core type this CPU runs, once per
 * process; undefined when numpy does not run on OpenBLAS here.
 */
export function fastestOpenBlas(): Promise<OpenBlasChoice | undefined> {
  chosen ??= (async () => {
    const probe = async (coreType?: string): Promise<OpenBlasProbe | undefined> => {
      const r = await numpyMatmul(1024, referenceEnv({ coreType }));
      return r?.openblasCore
        ? { ...(coreType && { coreType }), core: r.openblasCore, gflops: r.gflops, blas: r.blas }
        : undefined;
    };
    const own = await probe();
    if (!own) return undefined;
    const others: OpenBlasProbe[] = [];
    for (const coreType of openBlasCoreTypes(cpuFlags())) {
      const p = await probe(coreType);
      if (p) others.push(p);
    }
    return pickFastest(own, others);
  })();
  return chosen;
}

/** How the chosen kernels came about, for a printout. */
export function describeOpenBlas(choice: OpenBlasChoice): string {
  const rate = (p: { gflops: number }) => `${p.gflops.toFixed(0)} GFLOP/s`;
  return choice.coreType
    ? `${choice.core} kernels, OPENBLAS_CORETYPE=${choice.coreType}: ${rate(choice)} at 1024³ ` +
      `against ${rate(choice.own)} with its own choice here, ${choice.own.core}`
    : `${choice.core} kernels, its own choice: ${rate(choice)} at 1024³`;
}

/**
 * The BLAS libraries Debian's torch and numpy can run with: the system's
 * `libblas.so.3` (OpenBLAS with its fastest kernels here, or whatever the
 * alternatives system points at), and the reference BLAS forced through
 * LD_LIBRARY_PATH when the system one is OpenBLAS.
 */
export async function blasVariants(): Promise<BlasVariant[]> {
  let openblas: boolean;
  try {
    openblas = Deno.realPathSync(`${LIB}/libblas.so.3`).includes("openblas");
  } catch {
    return [{ name: "system BLAS" }];
  }
  if (!openblas) return [{ name: "reference BLAS" }];
  const choice = await fastestOpenBlas();
  const variants: BlasVariant[] = [{
    name: choice ? `OpenBLAS (${describeOpenBlas(choice)})` : "OpenBLAS",
    ...(choice?.coreType && { coreType: choice.coreType }),
  }];
  try {
    Deno.statSync(`${LIB}/blas/libblas.so.3`);
    variants.push({ name: "reference BLAS", libraryPath: `${LIB}/blas:${LIB}/lapack` });
  } catch {
    // Only OpenBLAS is installed.
  }
  return variants;
}

if (import.meta.main) {
  // Alone: `deno run -A bench/blas.ts` prints every probe and the choice.
  const choice = await fastestOpenBlas();
  if (!choice) {
    console.log(
      "numpy does not run on OpenBLAS here (/usr/bin/python3, python3-numpy, libopenblas0-pthread)",
    );
  } else {
    for (const p of choice.tried) {
      const asked = p.coreType ? `OPENBLAS_CORETYPE=${p.coreType}` : "its own choice";
      console.log(
        `${asked.padEnd(29)} ${p.core.padEnd(12)} ${p.gflops.toFixed(1)} GFLOP/s at 1024³`,
      );
    }
    console.log(`chosen: ${describeOpenBlas(choice)}`);
  }
}
