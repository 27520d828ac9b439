/**
 * The adapter's ceiling for a matrix product: how many FLOP/s its compiled
 * WGSL reaches on multiply-adds alone, with every operand in registers (no
 * loads, no stores but one per invocation at the end). A kernel that does
 * the same multiply-adds and also moves its operands is not expected to beat
 * it, whatever its tiling or memory path (it is the best of the forms tried,
 * not a proof); so `ceiling / (a step's product FLOPs)` bounds the tokens/s
 * of a WGSL training step on this adapter, and against a reference's
 * tokens/s it bounds the ratio (bench/train.ts prints both).
 *
 * Each form runs `chains` independent `fma` chains per invocation (enough to
 * hide the latency), its loop body unrolled `unroll` times; the fastest form
 * of five timings each is the ceiling. The chains' sums are written out, so
 * the compiler cannot drop them ({@link fmaCeilingWgsl}; tests check the
 * values).
 *
 * Run alone: `deno run -A bench/ceiling.ts [--json]`.
 *
 * @module
 */
import { createStorageBufferFrom, type Gpu, readFloat32, requestGpu } from "../lib/gpu/device.ts";

/** One shape of the register-only kernel. */
export interface FmaForm {
  /** Independent accumulators per invocation. */
  chains: number;
  /** Accumulators are `vec4<f32>` (4 multiply-adds each) instead of `f32`. */
  vec4: boolean;
  /** Loop body repetitions. */
  unroll: number;
  /**
   * The multiplicands are `unroll` values computed once before the loop (step
   * `s` uses value `s % unroll`) instead of one computed per step: the loop is
   * then multiply-adds alone, as in a product's inner loop.
   */
  hoisted?: boolean;
  /**
   * With `hoisted`: the multiplicands are variables scaled by
   * {@link VARYING_FACTOR} at the end of every loop iteration, so the
   * multiplies stay inside the loop (with loop-invariant multiplicands the
   * compiler may move them out of it, and the form times the adds alone).
   */
  varying?: boolean;
  /**
   * Multiply-adds chained into one expression per accumulator store (default
   * 1): `a = fma(y1, c, fma(y0, c, a))` for 2, the same sums in the same
   * order. The products chain 4 (lib/gpu/ops/matmul_texture.ts), and
   * llvmpipe blends every store inside a loop with the loop's lane mask.
   */
  perStore?: number;
}

/** What a {@link FmaForm.varying} form's multiplicands are multiplied by after each iteration. */
export const VARYING_FACTOR = 0.999;

/**
 * The forms timed. On llvmpipe (2 Zen 3 cores) 2-6 vec4 chains unrolled 8-16
 * times ran at 50-60 GFLOP/s, 16-24 f32 chains at ~40, one f32 chain at 5;
 * with hoisted multiplicands 2-4 vec4 chains ran at 66-86. On 2 Zen 4
 * cores the hoisted forms ran at 105-130, and the varying forms with 4
 * multiply-adds a store (the products' shape) at 119-150.
 */
export const FMA_FORMS: FmaForm[] = [
  { chains: 16, vec4: false, unroll: 8 },
  { chains: 2, vec4: true, unroll: 16 },
  { chains: 4, vec4: true, unroll: 16 },
  { chains: 8, vec4: true, unroll: 8 },
  { chains: 2, vec4: true, unroll: 16, hoisted: true },
  { chains: 4, vec4: true, unroll: 16, hoisted: true },
  { chains: 16, vec4: true, unroll: 8, hoisted: true, varying: true, perStore: 4 },
  { chains: 32, vec4: true, unroll: 4, hoisted: true, varying: true, perStore: 4 },
];

const WORKGROUP = 64;
/** Timings per form; the best counts (other processes only ever slow a run down). */
const TIMINGS = 5;

/** Multiply-adds of one invocation: chains x lanes x steps. */
export function fmaCount(form: FmaForm, steps: number): number {
  return form.chains * (form.vec4 ? 4 : 1) * steps;
}

/**
 * WGSL of one form: invocation `i` sets `x = i * 1e-6`, then for step
 * `s = 0 … steps-1` (steps a multiple of `unroll`) does
 * `a_j = fma(x + s * 1e-7, 0.5 + j / 100, a_j)` (`hoisted`: `x + (s % unroll)
 * * 1e-7`; `varying`: that times {@link VARYING_FACTOR} to the power
 * `floor(s / unroll)`) with `a_j` starting at `j`, `perStore` steps chained
 * per store, and writes `Σ_j a_j` (per lane for vec4) to `out[i]`.
 */
export function fmaCeilingWgsl(form: FmaForm, steps: number): string {
  if (steps % form.unroll !== 0) {
    throw new Error(`fma ceiling: ${steps} steps is not a multiple of unroll ${form.unroll}`);
  }
  const t = form.vec4 ? "vec4<f32>" : "f32";
  const lines = [
    `@group(0) @binding(0) var<storage, read_write> out: array<${t}>;`,
    `@compute @workgroup_size(${WORKGROUP})`,
    `fn main(@builtin(global_invocation_id) gid: vec3<u32>) {`,
    `  let x = ${t}(f32(gid.x) * 1e-6);`,
  ];
  const perStore = form.perStore ?? 1;
  if (form.unroll % perStore !== 0 || (perStore > 1 && !form.hoisted)) {
    throw new Error(`fma ceiling: ${perStore} per store needs hoisted steps dividing unroll`);
  }
  if (form.varying && !form.hoisted) throw new Error("fma ceiling: varying needs hoisted");
  for (let j = 0; j < form.chains; j++) lines.push(`  var a${j} = ${t}(${j}.0);`);
  if (form.hoisted) {
    const decl = form.varying ? "var" : "let";
    for (let u = 0; u < form.unroll; u++) {
      lines.push(`  ${decl} y${u} = x + ${t}(${u}.0 * 1e-7);`);
    }
  }
  lines.push(`  for (var s = 0; s < ${steps / form.unroll}; s++) {`);
  for (let u = 0; u < form.unroll; u += perStore) {
    if (!form.hoisted) {
      lines.push(`    let y${u} = x + ${t}(f32(s * ${form.unroll} + ${u}) * 1e-7);`);
    }
    for (let j = 0; j < form.chains; j++) {
      let sum = `a${j}`;
      for (let k = 0; k < perStore; k++) {
        sum = `fma(y${u + k}, ${t}(${(0.5 + j / 100).toFixed(2)}), ${sum})`;
      }
      lines.push(`    a${j} = ${sum};`);
    }
  }
  if (form.varying) {
    for (let u = 0; u < form.unroll; u++) {
      lines.push(`    y${u} = y${u} * ${t}(${VARYING_FACTOR});`);
    }
  }
  lines.push(`  }`);
  const sum = Array.from({ length: form.chains }, (_, j) => `a${j}`).join(" + ");
  lines.push(`  out[gid.x] = ${sum};`, `}`);
  return lines.join("\n");
}

/** Runs `form` over `invocations` invocations `reps` times; returns the outputs (lane 0 of vec4s). */
export async function runFmaForm(
  gpu: Gpu,
  form: FmaForm,
  opts: { steps: number; invocations: number; reps: number },
): Promise<{ ms: number; out: Float32Array }> {
  const { device } = gpu;
  const width = form.vec4 ? 4 : 1;
  const out = createStorageBufferFrom(
    gpu,
    new Float32Array(opts.invocations * width),
    "bench:fma-ceiling",
  );
  try {
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: {
        module: device.createShaderModule({ code: fmaCeilingWgsl(form, opts.steps) }),
        entryPoint: "main",
      },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: out } }],
    });
    const groups = Math.ceil(opts.invocations / WORKGROUP);
    const encode = (reps: number) => {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(groups);
      pass.end();
      device.queue.submit([encoder.finish()]);
    };
    encode(1); // compile and warm up
    await readFloat32(gpu, out, 1);
    const start = performance.now();
    encode(opts.reps);
    const values = await readFloat32(gpu, out, opts.invocations * width);
    const ms = (performance.now() - start) / opts.reps;
    return {
      ms,
      out: values.filter((_, i) => i % width === 0),
    };
  } finally {
    out.destroy();
  }
}

/** What {@link measureFmaCeiling} found. */
export interface FmaCeiling {
  adapter: string;
  /** The fastest form's FLOP/s (2 per multiply-add), in GFLOP/s of wall time. */
  gflops: number;
  /** e.g. "16 f32 chains x8". */
  form: string;
  /** Every form's best GFLOP/s. */
  forms: Record<string, number>;
}

function formName(f: FmaForm): string {
  return `${f.chains} ${f.vec4 ? "vec4" : "f32"} chains x${f.unroll}${
    f.varying ? " varying" : f.hoisted ? " hoisted" : ""
  }${f.perStore && f.perStore > 1 ? ` ${f.perStore}/store` : ""}`;
}

const ceilings = new Map<Gpu, Promise<FmaCeiling>>();

/**
 * The adapter's register-only multiply-add rate: the best of five timings of
 * each {@link FMA_FORMS} form (about 2 s in all on llvmpipe with 2 cores). Measured once per device and process.
 */
export function measureFmaCeiling(gpu: Gpu): Promise<FmaCeiling> {
  let ceiling = ceilings.get(gpu);
  if (!ceiling) {
    ceiling = measure(gpu);
    ceilings.set(gpu, ceiling);
  }
  return ceiling;
}

async function measure(gpu: Gpu): Promise<FmaCeiling> {
  const steps = 512;
  // Enough work per dispatch that the launch cost does not count: 2^15
  // invocations (2^28 FLOPs per f32 dispatch) on a software adapter, 2^22 on
  // a GPU (whose peak needs ~10^5 resident threads).
  const invocations = gpu.isFallback ? 1 << 15 : 1 << 22;
  const forms: Record<string, number> = {};
  let best = { gflops: 0, form: "" };
  for (const form of FMA_FORMS) {
    const flops = 2 * fmaCount(form, steps) * invocations;
    const reps = Math.max(3, Math.round((gpu.isFallback ? 3e9 : 3e12) / flops));
    let gflops = 0;
    for (let t = 0; t < TIMINGS; t++) {
      const { ms } = await runFmaForm(gpu, form, { steps, invocations, reps });
      gflops = Math.max(gflops, flops / ms / 1e6);
    }
    forms[formName(form)] = gflops;
    if (gflops > best.gflops) best = { gflops, form: formName(form) };
  }
  return { adapter: gpu.adapterDescription, ...best, forms };
}

if (import.meta.main) {
  const ceiling = await measureFmaCeiling(await requestGpu());
  if (Deno.args.includes("--json")) {
    console.log(JSON.stringify(ceiling, null, 2));
  } else {
    console.log(`adapter  ${ceiling.adapter}`);
    for (const [form, gflops] of Object.entries(ceiling.forms)) {
      console.log(`  ${form.padEnd(26)} ${gflops.toFixed(1)} GFLOP/s`);
    }
    console.log(`ceiling  ${ceiling.gflops.toFixed(1)} GFLOP/s (${ceiling.form})`);
  }
}
