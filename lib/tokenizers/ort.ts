/**
 * Loads onnxruntime-web (wasm backend) lazily and configures it once for Deno.
 *
 * Under Deno, `npm:onnxruntime-web` resolves (export condition "node") to
 * `node_modules/onnxruntime-web/dist/ort.node.min.mjs`; its wasm runtime
 * (`ort-wasm-simd-threaded.mjs` + `.wasm`) sits in the same `dist/` folder,
 * which deno.json's `"nodeModulesDir": "auto"` keeps on disk. We set
 * `env.wasm.wasmPaths` to that folder explicitly (derived from
 * `import.meta.resolve`, so it follows the pinned version), rather than rely on
 * each build's own guess, and `env.wasm.numThreads = 1`: the multi-threaded
 * runtime would start workers, which buys nothing for small codec models and
 * makes reductions order-dependent. The first session costs about 0.7–1.5 s
 * (wasm compile); later ones reuse the compiled module.
 *
 * @module
 */
import type * as OrtModule from "onnxruntime-web";

/** The onnxruntime-web module type. */
export type Ort = typeof OrtModule;
/** An onnxruntime-web inference session. */
export type OrtSession = OrtModule.InferenceSession;

let loaded: Promise<Ort> | undefined;

/** The onnxruntime-web module, imported on first use and configured for the single-threaded wasm backend. */
export function ort(): Promise<Ort> {
  loaded ??= (async () => {
    const mod = await import("onnxruntime-web");
    const entry = import.meta.resolve("onnxruntime-web");
    if (entry.startsWith("file:")) mod.env.wasm.wasmPaths = new URL("./", entry).href;
    mod.env.wasm.numThreads = 1;
    mod.env.logLevel = "error";
    return mod;
  })();
  return loaded;
}

/** Creates a wasm-backend session from `.onnx` bytes. */
export async function createOrtSession(model: Uint8Array): Promise<OrtSession> {
  const o = await ort();
  return await o.InferenceSession.create(model, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
}

/** An onnxruntime-web tensor. */
export type OrtTensor = OrtModule.Tensor;
