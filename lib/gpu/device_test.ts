import { assert, assertEquals } from "../../tests/assert.ts";
import {
  fixedSubgroupSize,
  llvmpipeThreads,
  requestGpu,
  vulkanDriverInstalled,
  webgpuBackend,
} from "./device.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("WebGPU runs on Vulkan alone on Linux where a Vulkan driver is installed", () => {
  const yes = () => true, no = () => false;
  assertEquals(webgpuBackend("linux", envOf({}), yes), "vulkan");
  // No Vulkan driver: wgpu's default (its OpenGL fallback) stays.
  assertEquals(webgpuBackend("linux", envOf({}), no), undefined);
  // The user's choice stands.
  assertEquals(webgpuBackend("linux", envOf({ DENO_WEBGPU_BACKEND: "gl" }), yes), undefined);
  // Elsewhere the platform's own backend (Metal, DX12) is wgpu's business.
  assertEquals(webgpuBackend("darwin", envOf({}), yes), undefined);
  assertEquals(webgpuBackend("windows", envOf({}), yes), undefined);
});

Deno.test("a Vulkan driver is found where the Vulkan loader would find one", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const empty = { HOME: `${dir}/home`, XDG_CONFIG_DIRS: `${dir}/none`, XDG_DATA_DIRS: dir };
    // /etc/vulkan/icd.d is searched too: only meaningful where this machine has none there.
    let etc = false;
    try {
      etc = [...Deno.readDirSync("/etc/vulkan/icd.d")].some((e) => e.name.endsWith(".json"));
    } catch { /* none */ }
    if (!etc) assertEquals(vulkanDriverInstalled(envOf(empty)), false);
    Deno.mkdirSync(`${dir}/vulkan/icd.d`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/vulkan/icd.d/README.txt`, "not a manifest");
    if (!etc) assertEquals(vulkanDriverInstalled(envOf(empty)), false);
    Deno.writeTextFileSync(`${dir}/vulkan/icd.d/lvp_icd.x86_64.json`, "{}");
    assert(vulkanDriverInstalled(envOf(empty)));
    // In the user's data folder, and named by the loader's variables.
    const home = { ...empty, XDG_DATA_DIRS: `${dir}/none`, XDG_DATA_HOME: dir };
    assert(vulkanDriverInstalled(envOf(home)));
    assert(
      vulkanDriverInstalled(
        envOf({ ...empty, XDG_DATA_DIRS: "/nowhere", VK_DRIVER_FILES: "/x.json" }),
      ),
    );
    assert(
      vulkanDriverInstalled(
        envOf({ ...empty, XDG_DATA_DIRS: "/nowhere", VK_ICD_FILENAMES: "/x.json" }),
      ),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a subgroup size is fixed only where the adapter has one size", () => {
  assertEquals(fixedSubgroupSize({ subgroupMinSize: 8, subgroupMaxSize: 8 }), 8);
  assertEquals(fixedSubgroupSize({ subgroupMinSize: 32, subgroupMaxSize: 32 }), 32);
  // A GPU that picks 16 to 64 per pipeline: kernels cannot assume one.
  assertEquals(fixedSubgroupSize({ subgroupMinSize: 16, subgroupMaxSize: 64 }), undefined);
  // Not reported, or reported as 0.
  assertEquals(fixedSubgroupSize({}), undefined);
  assertEquals(fixedSubgroupSize({ subgroupMinSize: 0, subgroupMaxSize: 0 }), undefined);
});

Deno.test("on llvmpipe the device has the subgroups of its SIMD width", async () => {
  const gpu = await requestGpu();
  if (!gpu.adapterDescription.startsWith("llvmpipe")) return;
  // 8 lanes at 256 bits (the bench's software adapter on these machines).
  if (gpu.adapterDescription.includes("256 bits")) assertEquals(gpu.subgroupSize, 8);
  assert(gpu.device.features.has("subgroups"));
});

Deno.test("llvmpipe gets three worker threads a core, capped at its 32, unless the user chose", () => {
  assertEquals(llvmpipeThreads(envOf({}), 2), "6");
  assertEquals(llvmpipeThreads(envOf({}), 1), "3");
  assertEquals(llvmpipeThreads(envOf({}), 0), "3");
  assertEquals(llvmpipeThreads(envOf({}), 64), "32");
  assertEquals(llvmpipeThreads(envOf({ LP_NUM_THREADS: "2" }), 2), undefined);
});
