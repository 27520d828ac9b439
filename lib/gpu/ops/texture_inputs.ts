/**
 * Read-only kernel inputs read through a texture copy of their buffer.
 *
 * Why: Mesa's llvmpipe (22.x) runs every storage-buffer load as a loop over
 * the SIMD lanes, while a texel fetch is a straight-line gather. A scan that
 * reads three `[B, S, d]` arrays and writes three (MaxState's shape) ran 2.2x
 * faster reading its inputs from textures, the copies included: a
 * buffer-to-texture copy is a memcpy there (a 1 MB copy takes ~0.1 ms). The
 * writes stay storage writes (a texture store costs what a storage store does).
 *
 * Layout: the buffer's vec4 element `i` is the texel
 * `(i % TEXTURE_INPUT_WIDTH, i / TEXTURE_INPUT_WIDTH)`, so the copy is one
 * rectangle of whole rows and one partial row; texels are exact copies,
 * so a kernel reads the same values either way and gives the same bits.
 *
 * The textures are scratch: each kernel's inputs are copied in just before its
 * dispatch, so all kernels of a device share one texture per (format, input
 * slot), grown to the largest size any kernel asked for.
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import type { Binding } from "./elementwise.ts";

/**
 * Texels per row of an input texture (16 KB rows: a copy needs 256-byte
 * multiples). With llvmpipe's 16384 rows a texture holds 16.8M texels, the
 * large bench configuration's `[4096, 4100]` logits included (with 256-texel
 * rows they did not fit, and cross-entropy read them from storage, about 3x
 * slower a value).
 */
export const TEXTURE_INPUT_WIDTH = 1024;

/**
 * How a kernel reads a read-only input: from its storage buffer, or by
 * `textureLoad` of a texture copy of it bound as a read-only storage texture
 * (an "image"). The same values either way. On llvmpipe (Mesa 22.3, Zen 3) a
 * SIMD group's image load, an inlined gather of the 8 lanes' texels, took
 * ~64 cycles, where a nearest-filter sample of a sampled texture took ~105
 * and its `textureLoad` ~159 (each of those a call into a texel function);
 * read-only storage textures of `rgba32float` and `rgba32uint` are core
 * WebGPU.
 */
export type InputMode = "storage" | "image";

/** The texture mode of this device's texture forms. */
export function textureInputMode(_gpu: Gpu): "image" {
  return "image";
}

/**
 * The element type of a texture input: four floats or four u32 per element
 * (one texel), or one float (a component of texel i / 4; the input then
 * holds a multiple of 4 floats).
 */
export type InputType = "vec4<f32>" | "vec4<u32>" | "f32";

/**
 * WGSL declaring input `name` at `binding` and `fn <name>At(i: u32) -> T`,
 * its element `i`: `name[i]` of a storage array, or read from the texture.
 */
export function inputWgsl(
  binding: number,
  name: string,
  type: InputType | "u32",
  mode: InputMode,
): string {
  if (mode === "storage" || type === "u32") {
    return `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<${type}>; // read
fn ${name}At(i: u32) -> ${type} { return ${name}[i]; }`;
  }
  const coords = (i: string) =>
    `vec2<i32>(i32(${i} % ${TEXTURE_INPUT_WIDTH}u), i32(${i} / ${TEXTURE_INPUT_WIDTH}u))`;
  const texel = (i: string) => `textureLoad(${name}, ${coords(i)})`;
  const format = type === "vec4<u32>" ? "rgba32uint" : "rgba32float";
  const declaration = `@group(0) @binding(${binding}) var ${name}: ` +
    `texture_storage_2d<${format}, read>; // read, a copy of the buffer`;
  if (type === "f32") {
    return `${declaration}
fn ${name}At(i: u32) -> f32 {
  let t = i / 4u;
  return ${texel("t")}[i % 4u];
}`;
  }
  return `${declaration}
fn ${name}At(i: u32) -> ${type} { return ${texel("i")}; }`;
}

/** One input of a kernel read through a texture. */
export interface TextureInput<Dims> {
  /** Index of the input among the kernel's storage bindings (binding - 1). */
  index: number;
  type: InputType;
  /** Texels (vec4s) the kernel reads for `dims`, from the start of the binding. */
  count: (dims: Dims) => number;
  /** The most texels any encode reads (sizes the texture). */
  maxCount: number;
}

/** A scratch texture shared by the kernels of one device (see the module doc). */
export interface SharedTexture {
  /** The current texture (replaced when a kernel needs a larger one). */
  texture(): GPUTexture;
  /** Bumped when {@link texture} changes: bind groups must be rebuilt. */
  generation(): number;
}

const pools = new WeakMap<GPUDevice, Map<string, SharedTexture & { grow(rows: number): void }>>();

/** Rows of an input texture for `elements` vec4s. */
function rowsFor(elements: number): number {
  return Math.max(1, Math.ceil(elements / TEXTURE_INPUT_WIDTH));
}

/**
 * A texture of this module's layout (`rgba32float`, or `rgba32uint`) holding
 * `elements` vec4s, owned by the caller: for an input that lives longer than
 * one dispatch (the k-means frames) or that one step owns (the sampler's
 * logits), where the shared scratch textures would be overwritten.
 */
export function createInputTexture(
  gpu: Gpu,
  elements: number,
  label: string,
  type: InputType = "vec4<f32>",
): GPUTexture {
  return gpu.device.createTexture({
    label,
    size: [TEXTURE_INPUT_WIDTH, rowsFor(elements)],
    format: type === "vec4<u32>" ? "rgba32uint" : "rgba32float",
    usage: GPUTextureUsage.COPY_DST | GPUTextureUsage.STORAGE_BINDING,
  });
}

/** Writes `data` (whole vec4s) into `texture` from element 0 on, from the host. */
export function writeInputTexture(
  gpu: Gpu,
  texture: GPUTexture,
  data: Float32Array<ArrayBuffer>,
): void {
  const elements = data.length / 4;
  const rowBytes = TEXTURE_INPUT_WIDTH * 16;
  const full = Math.floor(elements / TEXTURE_INPUT_WIDTH);
  const rest = elements % TEXTURE_INPUT_WIDTH;
  const q = gpu.device.queue;
  if (full > 0) {
    q.writeTexture({ texture }, data, { bytesPerRow: rowBytes }, [TEXTURE_INPUT_WIDTH, full]);
  }
  if (rest > 0) {
    q.writeTexture({ texture, origin: [0, full] }, data, { offset: full * rowBytes }, [rest, 1]);
  }
}

/** Whether `elements` vec4s fit in one input texture of this device. */
export function textureInputFits(gpu: Gpu, elements: number): boolean {
  return rowsFor(elements) <= gpu.limits.maxTextureDimension2D;
}

/**
 * The device's scratch texture for input `slot` of `type`, at least large
 * enough for `elements` vec4s.
 */
export function sharedInputTexture(
  gpu: Gpu,
  type: InputType,
  slot: number,
  elements: number,
): SharedTexture {
  let pool = pools.get(gpu.device);
  if (!pool) pools.set(gpu.device, pool = new Map());
  const format = type === "vec4<u32>" ? "rgba32uint" : "rgba32float";
  const key = `${format}:${slot}`;
  let shared = pool.get(key);
  if (!shared) {
    let texture: GPUTexture | undefined;
    let generation = 0;
    const entry = {
      texture: () => texture!,
      generation: () => generation,
      grow(rows: number) {
        if (texture && texture.height >= rows) return;
        // A texture still used by submitted work is freed once that work is done.
        texture?.destroy();
        texture = createInputTexture(gpu, rows * TEXTURE_INPUT_WIDTH, `textureInput:${key}`, type);
        generation++;
      },
    };
    pool.set(key, shared = entry);
  }
  shared.grow(rowsFor(elements));
  return shared;
}

/**
 * Records the copy of `elements` vec4s of `src` into `texture` (outside any
 * pass), `width` texels per texture row.
 */
export function encodeInputCopy(
  enc: GPUCommandEncoder,
  src: Binding,
  texture: GPUTexture,
  elements: number,
  width = TEXTURE_INPUT_WIDTH,
): void {
  const buffer = "buffer" in src ? src.buffer : src;
  const offset = "buffer" in src ? src.offset ?? 0 : 0;
  const rowBytes = width * 16;
  const full = Math.floor(elements / width);
  const rest = elements % width;
  if (full > 0) {
    enc.copyBufferToTexture(
      { buffer, offset, bytesPerRow: rowBytes },
      { texture },
      [width, full],
    );
  }
  if (rest > 0) {
    enc.copyBufferToTexture(
      { buffer, offset: offset + full * rowBytes },
      { texture, origin: [0, full] },
      [rest, 1],
    );
  }
}

/** One input of a {@link createTextureInputs} set. */
export interface TextureInputBinding {
  /** The buffer (or slice) the texture copies. */
  source: Binding;
  /** Its binding in the texture form's WGSL. */
  binding: number;
  type: InputType;
  /** The most texels any encode copies. */
  maxTexels: number;
}

/**
 * The texture side of a step's texture form: for each input a shared scratch
 * texture (slot = its index), the copies that fill them, and the bind group
 * of `pipeline` holding their views beside `others`, rebuilt
 * when a shared texture was replaced by a larger one.
 */
export interface TextureInputs {
  /** Records the copies of `texels[k]` texels of input k (outside any pass). */
  copy(enc: GPUCommandEncoder, texels: number[]): void;
  /** The bind group of `pipeline` for the current textures. */
  bindGroup(): GPUBindGroup;
}

/**
 * {@link TextureInputs} for `inputs`, or `undefined` when one of them does not
 * fit in a texture of this device (the step then keeps its storage form).
 */
export function createTextureInputs(
  gpu: Gpu,
  pipeline: GPUComputePipeline,
  label: string,
  inputs: TextureInputBinding[],
  others: GPUBindGroupEntry[],
): TextureInputs | undefined {
  if (!inputs.every((t) => textureInputFits(gpu, t.maxTexels))) return undefined;
  const shared = inputs.map((t, slot) => sharedInputTexture(gpu, t.type, slot, t.maxTexels));
  let bound: { generations: string; group: GPUBindGroup } | undefined;
  return {
    copy(enc, texels) {
      inputs.forEach((t, k) => encodeInputCopy(enc, t.source, shared[k].texture(), texels[k]));
    },
    bindGroup() {
      const generations = shared.map((t) => t.generation()).join(",");
      if (bound?.generations !== generations) {
        const group = gpu.device.createBindGroup({
          label,
          layout: pipeline.getBindGroupLayout(0),
          entries: [
            ...others,
            ...inputs.map((t, k) => ({
              binding: t.binding,
              resource: shared[k].texture().createView(),
            })),
          ],
        });
        bound = { generations, group };
      }
      return bound.group;
    },
  };
}
