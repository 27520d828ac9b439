/**
 * Bias gradient of a linear layer, `db[N] = Σ_m dY[m,N] (+ db)`: each column
 * summed in row order 0..M-1 by one invocation (no split, no atomics), so the
 * sums are bit-identical run to run. On software adapters it reads dy through
 * a texture copy (texture_inputs.ts) or through the pack of dy that the
 * step's products read (matmul_texture.ts); the same sums either way.
 *
 * @module
 */
import {
  bindBuffers,
  bufferBinding,
  type BufferSlice,
  cachedPipeline,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
  isSoftwareAdapter,
} from "../device.ts";
import { type MatmulDims, type PackedOperand, refuseAliasing } from "./matmul.ts";
import {
  createTextureInputs,
  type InputMode,
  inputWgsl,
  textureInputMode,
} from "./texture_inputs.ts";

/**
 * One invocation per column, or with `vec4` per 4 neighbouring columns (N % 4
 * == 0; a quarter of the loads, the same sums). Workgroups of `wg`: one 8-lane
 * SIMD group on llvmpipe, so that even N = 128 spreads over its threads.
 */
function columnSumWgsl(
  accumulate: boolean,
  vec4: boolean,
  wg: number,
  mode: InputMode = "storage",
): string {
  const t = vec4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
// dims.x = M (rows), dims.y = N (columns)
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
${
    mode !== "storage"
      ? inputWgsl(1, "dy", "vec4<f32>", mode)
      : `@group(0) @binding(1) var<storage, read> dy: array<${t}>;        // [M, N]
fn dyAt(i: u32) -> ${t} { return dy[i]; }`
  }
@group(0) @binding(2) var<storage, read_write> db: array<${t}>;  // [N]

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = dims.x;
  let N = dims.y${vec4 ? " / 4u" : ""};
  let n = gid.x;
  if (n >= N) { return; }
  var sum = ${t}(0.0);
  var m = 0u;
${mode === "storage" ? storageRowChunks(t) : ""}
  for (; m < M; m++) { sum += dyAt(m * N + n); }
  db[n] = ${accumulate ? "db[n] + sum" : "sum"};
}
`;
}

/**
 * Rows a storage-form column sum loads ahead (see {@link storageRowChunks}).
 */
const COLUMN_SUM_CHUNK = 16;

/**
 * WGSL for the storage form's rows in chunks of {@link COLUMN_SUM_CHUNK}:
 * all of a chunk's loads first, then their additions in row order, the same
 * additions as one row at a time and so the same bits. A column's sum is a
 * chain as long as the batch's rows (4096 at the seed configuration) over
 * few invocations (N / 4 of them); on a GPU a load waits hundreds of cycles,
 * and a chunk's independent loads wait together. The texture form (software
 * adapters) keeps one row at a time.
 */
function storageRowChunks(t: string): string {
  const C = COLUMN_SUM_CHUNK;
  const loads = Array.from(
    { length: C },
    (_, k) => `    let v${k}: ${t} = dyAt((m + ${k}u) * N + n);`,
  );
  const adds = Array.from({ length: C }, (_, k) => `    sum += v${k};`);
  return `  for (; m + ${C}u <= M; m += ${C}u) {\n${loads.join("\n")}\n${adds.join("\n")}\n  }`;
}

/**
 * WGSL of the column sum reading dy from a product's pack of it
 * ({@link PackedOperand}): texel (n, m), or in a linear pack `linear` texels
 * wide its texel `m * N / 4 + n`. The values of dy, summed in the same order.
 */
function packedColumnSumWgsl(accumulate: boolean, wg: number, linear: number): string {
  const texel = linear
    ? `vec2<i32>(i32((m * N + n) % ${linear}u), i32((m * N + n) / ${linear}u))`
    : "vec2<i32>(i32(n), i32(m))";
  return /* wgsl */ `
// dims.x = M (rows), dims.y = N (columns, a multiple of 4)
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var dy: texture_storage_2d<rgba32float, read>; // dy's pack
@group(0) @binding(2) var<storage, read_write> db: array<vec4<f32>>;  // [N]

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = dims.x;
  let N = dims.y / 4u;
  let n = gid.x;
  if (n >= N) { return; }
  var sum = vec4<f32>(0.0);
  for (var m = 0u; m < M; m++) { sum += textureLoad(dy, ${texel}); }
  db[n] = ${accumulate ? "db[n] + sum" : "sum"};
}
`;
}

/**
 * Bias gradient of a linear layer: `db[N] = Σ_m dy[m,N] (+ db)`, each column
 * summed in row order 0..M-1. Uses `dims.M` and `dims.N` (K is ignored).
 * On software adapters, recorded with the command encoder, the vec4 kernel
 * reads a texture copy of dy (texture_inputs.ts), or with `packed` the pack
 * of dy that the step's products read (no copy of its own); the same sums.
 */
export function createColumnSum(
  gpu: Gpu,
  buffers: {
    dy: GPUBuffer | BufferSlice;
    db: GPUBuffer | BufferSlice;
    accumulate?: boolean;
    /** Most dy elements (M * N) of any encode: with it, the texture form exists. */
    maxCount?: number;
    textureReads?: boolean;
    /**
     * dy as packed for the step's products, encoded before this step after
     * dy was written: the texture form reads it instead of copying dy.
     */
    packed?: PackedOperand;
  },
): GpuStep<Pick<MatmulDims, "M" | "N">> {
  const accumulate = buffers.accumulate ?? false;
  const wg = isSoftwareAdapter(gpu) ? 8 : 64;
  refuseAliasing(buffers.db, [buffers.dy], "columnSum");
  const uniform = createUniformBuffer(gpu, 16, "columnSum:dims");
  const bound = [uniform, buffers.dy, buffers.db];
  // The vec4 and scalar kernels, each compiled on first use.
  const variants = new Map<boolean, { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup }>();
  const variant = (vec4: boolean) => {
    let v = variants.get(vec4);
    if (!v) {
      const key = `columnSum:acc${+accumulate}:${vec4 ? "v4" : "s"}:wg${wg}`;
      const pipeline = cachedPipeline(gpu, key, columnSumWgsl(accumulate, vec4, wg), "main");
      v = { pipeline, bindGroup: bindBuffers(gpu, pipeline, bound, "columnSum") };
      variants.set(vec4, v);
    }
    return v;
  };
  const dimsData = new Uint32Array(4);
  const prepare = (dims: Pick<MatmulDims, "M" | "N">) => {
    dimsData.set([dims.M, dims.N, 0, 0]);
    gpu.device.queue.writeBuffer(uniform, 0, dimsData);
  };
  const groups = (dims: Pick<MatmulDims, "M" | "N">) =>
    Math.ceil((dims.N % 4 === 0 ? dims.N / 4 : dims.N) / wg);
  const step: GpuStep<Pick<MatmulDims, "M" | "N">> = {
    encode(pass, dims) {
      if (dims.N === 0) return;
      prepare(dims);
      const { pipeline, bindGroup } = variant(dims.N % 4 === 0);
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(groups(dims));
    },
    destroy() {
      uniform.destroy();
    },
  };
  const maxTexels = buffers.maxCount === undefined ? 0 : Math.ceil(buffers.maxCount / 4);
  if (maxTexels === 0 || !(buffers.textureReads ?? isSoftwareAdapter(gpu))) return step;
  const packed = buffers.packed;
  if (packed) {
    const linear = packed.linearWidth();
    const pipeline = cachedPipeline(
      gpu,
      `columnSum:acc${+accumulate}:wg${wg}:packed${linear}`,
      packedColumnSumWgsl(accumulate, wg, linear),
      "main",
    );
    let bound: { generation: number; bindGroup: GPUBindGroup } | undefined;
    step.encodeCommands = (enc, dims) => {
      if (dims.N === 0) return;
      const p = enc.beginComputePass({ label: "columnSum" });
      if (dims.N % 4 !== 0 || !packed.fits(dims.M, dims.N)) {
        step.encode(p, dims);
      } else {
        prepare(dims);
        if (bound?.generation !== packed.generation()) {
          bound = {
            generation: packed.generation(),
            bindGroup: gpu.device.createBindGroup({
              label: "columnSum:packed",
              layout: pipeline.getBindGroupLayout(0),
              entries: [
                { binding: 0, resource: { buffer: uniform } },
                { binding: 1, resource: packed.view() },
                { binding: 2, resource: bufferBinding(buffers.db) },
              ],
            }),
          };
        }
        p.setPipeline(pipeline);
        p.setBindGroup(0, bound.bindGroup);
        p.dispatchWorkgroups(groups(dims));
      }
      p.end();
    };
    return step;
  }
  const texturePipeline = cachedPipeline(
    gpu,
    `columnSum:acc${+accumulate}:v4:wg${wg}:texture`,
    columnSumWgsl(accumulate, true, wg, textureInputMode(gpu)),
    "main",
  );
  const textures = createTextureInputs(
    gpu,
    texturePipeline,
    "columnSum",
    [{ source: buffers.dy, binding: 1, type: "vec4<f32>", maxTexels }],
    [
      { binding: 0, resource: { buffer: uniform } },
      { binding: 2, resource: bufferBinding(buffers.db) },
    ],
  );
  if (!textures) return step;
  step.encodeCommands = (enc, dims) => {
    if (dims.N === 0) return;
    const pass = () => enc.beginComputePass({ label: "columnSum" });
    if (dims.N % 4 !== 0) {
      const p = pass();
      step.encode(p, dims);
      p.end();
      return;
    }
    prepare(dims);
    textures.copy(enc, [dims.M * dims.N / 4]);
    const p = pass();
    p.setPipeline(texturePipeline);
    p.setBindGroup(0, textures.bindGroup());
    p.dispatchWorkgroups(groups(dims));
    p.end();
  };
  return step;
}
