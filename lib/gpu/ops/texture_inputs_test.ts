import { assert, assertEquals } from "../../../tests/assert.ts";
import {
  createStorageBufferFrom,
  type Gpu,
  isSoftwareAdapter,
  readFloat32,
  requestGpu,
} from "../device.ts";
import { createAdd } from "./elementwise.ts";
import {
  createInputMirror,
  encodeInputCopy,
  inputWgsl,
  sharedInputTexture,
  TEXTURE_INPUT_WIDTH,
  textureInputFits,
  textureInputMode,
} from "./texture_inputs.ts";
import { packTensors, recordSteps } from "./test_helpers.ts";

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

Deno.test("a kernel created after a buffer's mirror reads the mirror, not a copy of the buffer", async () => {
  const g = await requestGpu();
  if (!isSoftwareAdapter(g)) return; // texture inputs (and so mirrors) are read on software adapters
  const n = 4096;
  const a = createStorageBufferFrom(g, Float32Array.from({ length: n }, (_, i) => i), "a");
  const b = createStorageBufferFrom(g, new Float32Array(n).fill(0.5), "b");
  const out = [0, 1].map(() => createStorageBufferFrom(g, new Float32Array(n), "out"));
  const before = createAdd(g, { a, b, out: out[0], maxCount: n });
  const mirror = createInputMirror(g, a, n / 4, "mirror.a");
  assert(mirror !== undefined, "a mirror of 1024 texels fits");
  const after = createAdd(g, { a, b, out: out[1], maxCount: n });
  // The mirror holds a's first contents; then a changes and the mirror is not refreshed.
  const enc = g.device.createCommandEncoder();
  mirror.encode(enc, n / 4);
  g.device.queue.submit([enc.finish()]);
  g.device.queue.writeBuffer(a, 0, new Float32Array(n).fill(100));
  await recordSteps(g, [[before, { count: n }], [after, { count: n }]]);
  const [copied, mirrored] = await Promise.all(out.map((o) => readFloat32(g, o, n)));
  assertEquals(copied[7], 100.5, "created before the mirror: copies a as it is now");
  assertEquals(mirrored[7], 7.5, "created after: reads the mirror's contents");
  // A destroyed mirror is forgotten: kernels created later copy the buffer again.
  mirror.destroy();
  const later = createAdd(g, { a, b, out: out[1], maxCount: n });
  await recordSteps(g, [[later, { count: n }]]);
  assertEquals((await readFloat32(g, out[1], n))[7], 100.5, "after destroy");
  for (const s of [before, after, later]) s.destroy();
  for (const buf of [a, b, ...out]) buf.destroy();
});
