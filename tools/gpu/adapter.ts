/**
 * `deno run -A tools/gpu/adapter.ts [--allow-software]`: the WebGPU adapter
 * this project gets here, as one JSON object on stdout (its info, whether it
 * is a software fallback, its features and the limits the device was given,
 * the subgroup size the kernels may use, the Deno and Vulkan backend it ran
 * with). tools/gpu/run.sh runs it first on a lent GPU machine and stops there
 * when the adapter is not the GPU: exit 3 for a software adapter unless
 * `--allow-software`, exit 1 when there is none at all.
 *
 * @module
 */
import { requestGpu } from "../../lib/gpu/device.ts";

const allowSoftware = Deno.args.includes("--allow-software");
const gpu = await requestGpu();
const limits: Record<string, number> = {};
for (const key in gpu.limits) {
  const value = (gpu.limits as unknown as Record<string, unknown>)[key];
  if (typeof value === "number") limits[key] = value;
}
console.log(JSON.stringify(
  {
    description: gpu.adapterDescription,
    software: gpu.isFallback,
    timestamps: gpu.timestamps,
    subgroup_size: gpu.subgroupSize ?? null,
    features: [...gpu.device.features].sort(),
    limits,
    adapter_key: JSON.parse(gpu.adapterKey),
    deno: Deno.version.deno,
    webgpu_backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? null,
  },
  null,
  2,
));
if (gpu.isFallback && !allowSoftware) {
  console.error(
    `error: tools/gpu/adapter.ts: the adapter is a software fallback (${gpu.adapterDescription}), ` +
      "not a GPU: the Vulkan loader or the GPU driver's ICD was not found (see tools/gpu/run.sh)",
  );
  Deno.exit(3);
}
