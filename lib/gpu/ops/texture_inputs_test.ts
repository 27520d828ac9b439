import { assert, assertEquals } from "../../../tests/assert.ts";
import { type Gpu, readFloat32, requestGpu } from "../device.ts";
import {
  encodeInputCopy,
  inputWgsl,
  sharedInputTexture,
  TEXTURE_INPUT_WIDTH,
  textureInputFits,
  textureInputMode,
} from "./texture_inputs.ts";
import { packTensors } from "./test_helpers.ts";

/**
 * Copies `n` floats of a slice into a scratch texture and reads them back
 * through `inputWgsl`'s texture form, as vec4 elements or one float at a time.
 */
async function roundTrip(
  g: Gpu,
  n: number,
  type: "vec4<f32>" | "f32",
): Promise<Float32Array> {
  const values = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 7);
  // A non-zero offset: the slice starts 256 bytes into its buffer.
  const input = packTensors(g, [values], 256);
  const count = type === "f32" ? n : n / 4;
  const out = g.device.createBuffer({
    size: n * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const code = `${inputWgsl(0, "src", type, "image")}
@group(0) @binding(1) var<storage, read_write> out: array<${type}>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < ${count}u) { out[id.x] = srcAt(id.x); }
}`;
  const pipeline = g.device.createComputePipeline({
    layout: "auto",
    compute: { module: g.device.createShaderModule({ code }), entryPoint: "main" },
  });
  const texture = sharedInputTexture(g, "vec4<f32>", 7, n / 4).texture();
  g.device.pushErrorScope("validation");
  const enc = g.device.createCommandEncoder();
  encodeInputCopy(enc, input.slices[0], texture, n / 4);
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    g.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: texture.createView() },
        { binding: 1, resource: { buffer: out } },
      ],
    }),
  );
  pass.dispatchWorkgroups(Math.ceil(count / 64));
  pass.end();
  g.device.queue.submit([enc.finish()]);
  const error = await g.device.popErrorScope();
  assert(!error, error?.message);
  const read = await readFloat32(g, out, n);
  out.destroy();
  input.buffer.destroy();
  return read;
}

// Texel counts below, at and across the texture's 256-texel rows.
for (const texels of [1, 255, 256, 257, 1000]) {
  Deno.test(`texture inputs: ${texels} texels copied in read back the same, as vec4s and as floats`, async () => {
    const g = await requestGpu();
    const n = texels * 4;
    const expected = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 7);
    assertEquals(await roundTrip(g, n, "vec4<f32>"), expected, "vec4 elements");
    assertEquals(await roundTrip(g, n, "f32"), expected, "single floats");
    assertEquals(textureInputMode(g), "image", "the kernels read images");
  });
}

Deno.test("texture inputs: a shared texture grows for a larger input and says so", async () => {
  const g = await requestGpu();
  const small = sharedInputTexture(g, "vec4<f32>", 6, 10);
  const before = small.generation();
  const rows = small.texture().height;
  assertEquals(sharedInputTexture(g, "vec4<f32>", 6, 5).generation(), before, "no growth needed");
  const large = sharedInputTexture(g, "vec4<f32>", 6, (rows + 3) * TEXTURE_INPUT_WIDTH);
  assert(large === small, "one texture per (format, slot)");
  assert(small.generation() > before, "a new texture: bind groups must be rebuilt");
  assert(small.texture().height >= rows + 3);
  assert(sharedInputTexture(g, "vec4<u32>", 6, 10) !== small, "another format, another texture");
});

Deno.test("texture inputs: fit while the rows stay within the device's 2-D limit", async () => {
  const g = await requestGpu();
  const max = g.limits.maxTextureDimension2D * TEXTURE_INPUT_WIDTH;
  assert(textureInputFits(g, max));
  assert(!textureInputFits(g, max + 1));
});
