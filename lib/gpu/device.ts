/**
 * WebGPU device acquisition and the few helpers every kernel module uses.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** An acquired WebGPU device with a human-readable adapter description. */
export interface Gpu {
  device: GPUDevice;
  /** e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H100 …"; goes into manifests. */
  adapterDescription: string;
  limits: GPUSupportedLimits;
  /** True for a software adapter (llvmpipe, SwiftShader). */
  isFallback: boolean;
  /**
   * What kernel timings depend on: the adapter's vendor, architecture, device
   * and description, and the WebGPU implementation (Deno's version). Keys the
   * kernel-choice cache (lib/gpu/tuning.ts).
   */
  adapterKey: string;
  /**
   * The device has the "timestamp-query" feature (requested when the adapter
   * offers it): compute passes can write the adapter's clock, for profiles.
   */
  timestamps?: boolean;
  /**
   * The device has the "subgroups" feature and the adapter's subgroups are
   * always this many invocations (llvmpipe: 8, its SIMD width); undefined
   * otherwise. Kernels that assume the size check it.
   */
  subgroupSize?: number;
}

/**
 * The adapter's subgroup size when it has only one (`subgroupMinSize ==
 * subgroupMaxSize`, which Deno reports in `adapter.info`), else undefined.
 */
export function fixedSubgroupSize(
  info: { subgroupMinSize?: number; subgroupMaxSize?: number },
): number | undefined {
  const { subgroupMinSize: min, subgroupMaxSize: max } = info;
  return min !== undefined && min > 0 && min === max ? min : undefined;
}

let shared: Promise<Gpu> | undefined;

/**
 * Returns the process-wide GPU device (high-performance preference), creating
 * it on first use with the adapter's maximum buffer and binding limits.
 * Throws a `UserError` that says how to get an adapter when there is none.
 */
export function requestGpu(): Promise<Gpu> {
  shared ??= acquire().catch((e) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/**
 * Mesa's software adapter complains on stderr when XDG_RUNTIME_DIR is unset
 * (CI runners, containers). It only needs a private writable folder.
 */
function ensureRuntimeDir(): void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return;
  try {
    const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/samout-xdg-${Deno.uid() ?? "user"}`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Only cosmetic: the adapter works without it.
  }
}

/**
 * The WebGPU backend to ask Deno for (`DENO_WEBGPU_BACKEND`), or `undefined`
 * to leave wgpu's default. On Linux wgpu starts every backend it was built
 * with: Vulkan and, beside it, OpenGL through EGL. With both up, about 3% of
 * processes on Mesa's software drivers aborted at exit with heap corruption
 * (a double free while a thread's data was torn down, an EGL thread alive:
 * 3 of 104 runs of kmeans_test.ts, none of 350 with Vulkan alone). So where a
 * Vulkan driver is installed, WebGPU runs on Vulkan alone; without one, wgpu
 * keeps its OpenGL fallback; a backend the user chose is left as it is.
 */
export function webgpuBackend(
  os: string,
  env: (name: string) => string | undefined,
  hasVulkanDriver: () => boolean,
): string | undefined {
  if (os !== "linux" || env("DENO_WEBGPU_BACKEND")) return undefined;
  return hasVulkanDriver() ? "vulkan" : undefined;
}

/** Worker threads per core that {@link llvmpipeThreads} asks Mesa's software adapter for. */
export const LLVMPIPE_THREADS_PER_CORE = 3;
/** llvmpipe's own cap on its worker threads (Mesa's `LP_MAX_THREADS`). */
const LLVMPIPE_MAX_THREADS = 32;

/**
 * The worker threads to ask Mesa's llvmpipe for (`LP_NUM_THREADS`, read when
 * the Vulkan driver starts, at Deno's first `requestAdapter`), or `undefined`
 * to leave the user's setting. llvmpipe's default is one thread per core, and
 * it splits every compute dispatch into one run of consecutive workgroups per
 * thread, handed out once (no stealing). A thread that loses its core for a
 * moment (to the JavaScript thread, to the Vulkan queue thread copying a
 * texture, to another process) then finishes last while the other cores wait
 * at the dispatch's end: the bench step kept 2 cores 82% busy. With
 * {@link LLVMPIPE_THREADS_PER_CORE} threads a core the runs are a third as
 * long and the OS interleaves them (87% busy): on 2 cores (`bench/train.ts`,
 * 10 alternating pairs of runs) 6 threads ran the step faster than 2 in 9
 * pairs, by 4% in the median (-0.4% to 18%), at the same CPU time a step.
 * Results do not change: a workgroup computes the same values on whichever
 * thread runs it. The variable means nothing to other drivers.
 */
export function llvmpipeThreads(
  env: (name: string) => string | undefined,
  cores: number,
): string | undefined {
  if (env("LP_NUM_THREADS")) return undefined;
  return String(Math.min(LLVMPIPE_THREADS_PER_CORE * Math.max(1, cores), LLVMPIPE_MAX_THREADS));
}

/**
 * For processes that train (the pipeline command, `bench train`): asks
 * llvmpipe for {@link llvmpipeThreads} when the process's device is created.
 * Only for them: generation's dispatches are small (a few rows a token), and
 * waking more threads for each costs more than it balances (`bench generate`
 * with 6 threads: 717-785 tokens/s, with 2: 858-913), so the other commands
 * keep Mesa's default. Call before the process's first {@link requestGpu};
 * after it, it changes nothing.
 */
export function preferTrainingThreads(): void {
  if (shared) return;
  try {
    const threads = llvmpipeThreads((name) => Deno.env.get(name), navigator.hardwareConcurrency);
    if (threads) Deno.env.set("LP_NUM_THREADS", threads);
  } catch {
    // Without env permission llvmpipe keeps its default.
  }
}

/**
 * Whether the Vulkan loader would find a driver: a manifest named by
 * `VK_DRIVER_FILES`, `VK_ICD_FILENAMES` or `VK_ADD_DRIVER_FILES`, or a
 * `*.json` in one of the folders it searches (XDG config and data folders,
 * `/etc`), as the Vulkan loader does on Linux.
 */
export function vulkanDriverInstalled(env: (name: string) => string | undefined): boolean {
  if (env("VK_DRIVER_FILES") || env("VK_ICD_FILENAMES") || env("VK_ADD_DRIVER_FILES")) return true;
  const home = env("HOME");
  const list = (name: string, fallback: string) => (env(name) || fallback).split(":");
  const roots = [
    env("XDG_CONFIG_HOME") || (home ? `${home}/.config` : ""),
    ...list("XDG_CONFIG_DIRS", "/etc/xdg"),
    "/etc",
    env("XDG_DATA_HOME") || (home ? `${home}/.local/share` : ""),
    ...list("XDG_DATA_DIRS", "/usr/local/share:/usr/share"),
  ].filter(Boolean);
  for (const root of roots) {
    try {
      for (const entry of Deno.readDirSync(`${root}/vulkan/icd.d`)) {
        if (entry.name.endsWith(".json")) return true;
      }
    } catch {
      // No such folder (or unreadable): the loader would skip it too.
    }
  }
  return false;
}

async function acquire(): Promise<Gpu> {
  ensureRuntimeDir();
  let backend: string | undefined;
  try {
    backend = webgpuBackend(
      Deno.build.os,
      (name) => Deno.env.get(name),
      () => vulkanDriverInstalled((name) => Deno.env.get(name)),
    );
    // Read by Deno when it creates its WebGPU instance, at the first requestAdapter.
    if (backend) Deno.env.set("DENO_WEBGPU_BACKEND", backend);
  } catch {
    // Without env or read permission wgpu keeps its default backends.
    backend = undefined;
  }
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new UserError("WebGPU is not available in this Deno build", {
      hint: "use Deno 2.x (deno.json pins 2.9.6), which ships WebGPU",
    });
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new UserError("no WebGPU adapter was found", {
      expected: "a GPU with Vulkan, Metal or DX12 drivers, or a software adapter",
      hint: backend
        ? "WebGPU looked for a Vulkan adapter only, since a Vulkan driver is installed: check it, or set DENO_WEBGPU_BACKEND=gl to try OpenGL"
        : "install your GPU's drivers, or on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` for Mesa's llvmpipe software adapter",
    });
  }
  const l = adapter.limits;
  // Timestamps only serve profiles (lib/model/graph.ts profileStepTimestamps).
  const timestamps = adapter.features.has("timestamp-query");
  const features: GPUFeatureName[] = timestamps ? ["timestamp-query"] : [];
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    // Kernels read their inputs as read-only storage textures on software adapters.
    maxStorageTexturesPerShaderStage: l.maxStorageTexturesPerShaderStage,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    // Texture-form matrix products pack operands of up to this many rows.
    maxTextureDimension2D: l.maxTextureDimension2D,
  };
  // Subgroups serve the software adapter's matrix products (matmul.ts
  // MatmulTile.subgroupX), whose kernels assume a fixed subgroup size. Deno
  // 2.9 does not list the feature in `adapter.features` even where the
  // device gets it (llvmpipe), so it is asked for and dropped if refused.
  const size = fixedSubgroupSize(adapter.info);
  const request = (subgroups: boolean) =>
    adapter.requestDevice({
      requiredFeatures: subgroups ? [...features, "subgroups" as GPUFeatureName] : features,
      requiredLimits,
    });
  let device: GPUDevice;
  let subgroupSize: number | undefined;
  try {
    device = await request(size !== undefined);
    subgroupSize = size !== undefined && device.features.has("subgroups") ? size : undefined;
  } catch (e) {
    if (size === undefined) throw e;
    device = await request(false);
  }
  // Tear the device down before the isolate goes away: letting a worker's
  // isolate drop a live device while other threads still drive the same
  // software adapter has crashed the process at exit (heap corruption).
  globalThis.addEventListener("unload", () => device.destroy());
  const info = adapter.info;
  const adapterDescription = info.description || [info.vendor, info.architecture, info.device]
    .filter(Boolean).join(" ") ||
    "unknown adapter";
  return {
    device,
    adapterDescription,
    limits: device.limits,
    isFallback: info.isFallbackAdapter ?? false,
    timestamps,
    subgroupSize,
    adapterKey: JSON.stringify({
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      deno: Deno.version.deno,
      // A software adapter's speed is the host CPU's (llvmpipe's timings differ by CPU model).
      // llvmpipe's worker threads change its timings too.
      ...(isFallbackOrSoftware(info, adapterDescription)
        ? { host: hostCpu(), threads: envValue("LP_NUM_THREADS") ?? "default" }
        : {}),
    }),
  };
}

/** An environment variable, or undefined when unset or not readable (no env permission). */
function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function isFallbackOrSoftware(info: GPUAdapterInfo, description: string): boolean {
  return (info.isFallbackAdapter ?? false) || /llvmpipe|swiftshader/i.test(description);
}

/**
 * The host CPU as "model name (family F model M), N threads" (Linux
 * /proc/cpuinfo; elsewhere the architecture and thread count): what a
 * software adapter's speed depends on (bench/train.ts prints it beside the
 * adapter, and it keys the kernel-choice cache of a software adapter).
 */
export function hostCpu(): string {
  const cores = navigator.hardwareConcurrency;
  try {
    const text = Deno.readTextFileSync("/proc/cpuinfo");
    const model = /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? "";
    const family = /^cpu family\s*:\s*(.*)$/m.exec(text)?.[1] ?? "";
    const modelNo = /^model\s*:\s*(.*)$/m.exec(text)?.[1] ?? "";
    return `${model} (family ${family} model ${modelNo}), ${cores} threads`;
  } catch {
    return `${Deno.build.arch}, ${cores} threads`;
  }
}

/**
 * True for CPU-emulated adapters (llvmpipe, SwiftShader), where a workgroup is
 * run as 8-lane SIMD groups and barriers and loads cost far more than on a GPU.
 */
export function isSoftwareAdapter(gpu: Gpu): boolean {
  return gpu.isFallback || /llvmpipe|swiftshader/i.test(gpu.adapterDescription);
}

/** Usage for buffers that kernels read and write and the host may copy into or out of. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Creates a storage buffer of `byteLength` bytes (rounded up to 4), zero-filled. */
export function createStorageBuffer(gpu: Gpu, byteLength: number, label: string): GPUBuffer {
  return gpu.device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(byteLength / 4) * 4),
    usage: STORAGE_USAGE,
  });
}

/** Creates a storage buffer holding `data`. */
export function createStorageBufferFrom(
  gpu: Gpu,
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Int32Array<ArrayBuffer>,
  label: string,
): GPUBuffer {
  const buffer = createStorageBuffer(gpu, data.byteLength, label);
  gpu.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  return buffer;
}

/** Creates a uniform buffer of `byteLength` bytes (rounded up to 16). */
export function createUniformBuffer(gpu: Gpu, byteLength: number, label: string): GPUBuffer {
  return gpu.device.createBuffer({
    label,
    size: Math.max(16, Math.ceil(byteLength / 16) * 16),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
}

/** Compiles one compute entry point (layout "auto"). */
export function createComputePipeline(
  gpu: Gpu,
  code: string,
  entryPoint: string,
  label: string,
): GPUComputePipeline {
  const module = gpu.device.createShaderModule({ label, code });
  return gpu.device.createComputePipeline({
    label,
    layout: "auto",
    compute: { module, entryPoint },
  });
}

/**
 * A range of a buffer to bind. Parameters live in one flat buffer, so kernels
 * bind slices of it: `offset` (bytes) must be a multiple of the device's
 * `minStorageBufferOffsetAlignment` (256 on every adapter we know).
 */
export interface BufferSlice {
  buffer: GPUBuffer;
  /** Byte offset, a multiple of 256. Default 0. */
  offset?: number;
  /** Byte size. Default: the rest of the buffer. */
  size?: number;
}

/** The bind-group resource of a whole buffer or a slice of one. */
export function bufferBinding(b: GPUBuffer | BufferSlice): GPUBufferBinding {
  return "buffer" in b ? { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } : { buffer: b };
}

/** Binds `buffers` (whole buffers or slices) to bindings 0..n-1 of group 0 of `pipeline`. */
export function bindBuffers(
  gpu: Gpu,
  pipeline: GPUComputePipeline,
  buffers: (GPUBuffer | BufferSlice)[],
  label: string,
): GPUBindGroup {
  return gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((b, binding) => ({ binding, resource: bufferBinding(b) })),
  });
}

/**
 * Copies `byteLength` bytes of `buffer` back to the host. Costs at least ~10 ms
 * in Deno (a `mapAsync` round trip): never call inside a training step.
 */
export async function readBuffer(
  gpu: Gpu,
  buffer: GPUBuffer,
  byteLength = buffer.size,
): Promise<ArrayBuffer> {
  const staging = gpu.device.createBuffer({
    size: Math.ceil(byteLength / 4) * 4,
    usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
  });
  try {
    const enc = gpu.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, 0, staging, 0, staging.size);
    gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    return copy;
  } finally {
    staging.destroy();
  }
}

/** Reads a buffer back as float32. */
export async function readFloat32(
  gpu: Gpu,
  buffer: GPUBuffer,
  count: number,
): Promise<Float32Array> {
  return new Float32Array(await readBuffer(gpu, buffer, count * 4));
}

/**
 * One prepared use of a kernel inside a larger graph: its pipeline, bind group
 * and uniform buffer are created once; `encode` writes the step's dimensions
 * to the uniform buffer (queue.writeBuffer, applied before the next submit) and
 * records the dispatch(es). One instance per use site: encoding the same
 * instance twice in one submission would share one uniform buffer.
 */
export interface GpuStep<Dims = Record<string, number>> {
  encode(pass: GPUComputePassEncoder, dims: Dims): void;
  /**
   * Optional: the same work recorded as commands outside a compute pass (a
   * buffer-to-texture copy), for recorders that hold the command encoder
   * (lib/model/resources.ts's recordStages). {@link encode} stays the form
   * for a recorder that has only a pass.
   */
  encodeCommands?(enc: GPUCommandEncoder, dims: Dims): void;
  /** Destroys the buffers this step owns (not the buffers it was given). */
  destroy(): void;
}

/**
 * Records `step` outside a compute pass: through its `encodeCommands` when it
 * has them, otherwise its dispatches in a pass of their own.
 */
export function encodeOutsidePass<Dims>(
  step: GpuStep<Dims>,
  enc: GPUCommandEncoder,
  dims: Dims,
  label?: string,
): void {
  if (step.encodeCommands) {
    step.encodeCommands(enc, dims);
    return;
  }
  const pass = enc.beginComputePass(label === undefined ? undefined : { label });
  step.encode(pass, dims);
  pass.end();
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Compiles a pipeline once per device and cache key, then returns the cached one. */
export function cachedPipeline(
  gpu: Gpu,
  cacheKey: string,
  code: string,
  entryPoint: string,
): GPUComputePipeline {
  let cache = pipelineCache.get(gpu.device);
  if (!cache) pipelineCache.set(gpu.device, cache = new Map());
  let pipeline = cache.get(cacheKey);
  if (!pipeline) {
    pipeline = createComputePipeline(gpu, code, entryPoint, cacheKey);
    cache.set(cacheKey, pipeline);
  }
  return pipeline;
}
