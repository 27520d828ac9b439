/**
 * The export bundle from Python (tools/check_export.py): the bundle's
 * samout.py loads model.safetensors with load_state_dict, its logits match
 * the ONNX logits recorded in check.json, and both ONNX files pass
 * onnx.checker with full checking. Runs where /usr/bin/python3 imports torch
 * and onnx (Debian: python3-torch, python3-onnx); ignored elsewhere (CI does
 * not install them).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "./assert.ts";
import { writeTinyArtifacts } from "./export_fixture.ts";
import { exportBundle } from "../lib/export/mod.ts";
import { requestGpu } from "../lib/gpu/device.ts";

const PYTHON = "/usr/bin/python3";
const TOOL = fileURLToPath(new URL("../tools/check_export.py", import.meta.url));

function pythonHasTorchAndOnnx(): boolean {
  try {
    const { code } = new Deno.Command(PYTHON, {
      args: ["-c", "import torch, onnx"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return code === 0;
  } catch {
    return false;
  }
}

/** Each file's bytes, by name (the bundle must not change under the check). */
async function snapshot(dir: string): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) out[e.name] = Array.from(await Deno.readFile(join(dir, e.name)));
  }
  return out;
}

const available = pythonHasTorchAndOnnx();
if (!available) {
  console.warn(
    `tests/export_python_test.ts: ignored, ${PYTHON} cannot import torch and onnx ` +
      "(apt-get install python3-torch python3-onnx to run it)",
  );
}

Deno.test({
  name: "tools/check_export.py: PyTorch loads the bundle and matches its ONNX; onnx.checker passes",
  ignore: !available,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const inputs = await writeTinyArtifacts(join(root, "inputs"));
      const outDir = join(root, "bundle"), workDir = join(root, "work");
      await Deno.mkdir(outDir);
      await Deno.mkdir(workDir);
      await exportBundle({
        ...inputs,
        outDir,
        workDir,
        gpu: await requestGpu(),
        tolerance: 1e-4,
        webgpu: "skip",
        checkRows: 3,
      });
      const before = await snapshot(outDir);
      const out = await new Deno.Command(PYTHON, { args: [TOOL, outDir] }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, `check_export.py failed:\n${stdout}\n${stderr}`);
      const report = JSON.parse(stdout);
      assertEquals(report.failures, []);
      assertEquals(report.load_state_dict, { tensors: 29, missing: [], unexpected: [] });
      assert(report.checks.pytorch_vs_onnx_recorded < 1e-5, JSON.stringify(report.checks));
      assert(report.checks.pytorch_step_vs_full < 1e-5, JSON.stringify(report.checks));
      assertEquals(report.checks.load_safetensors_big_endian_path, "swaps each value's bytes");
      for (const model of ["model.onnx", "model.step.onnx"]) {
        assertEquals(report.checks[`${model}_checker_full_check`], "passed");
        assertEquals(report.checks[`${model}_initializers_equal_safetensors`], true);
      }
      assertEquals(await snapshot(outDir), before, "the check leaves the bundle as it was");
      const self = await new Deno.Command(PYTHON, { args: [join(outDir, "samout.py"), outDir] })
        .output();
      assertEquals(self.code, 0, new TextDecoder().decode(self.stdout));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
