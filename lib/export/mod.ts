/**
 * The export bundle: SamOut as ONNX (full sequence and step form, built from
 * operators onnxruntime-web's WebGPU backend runs), safetensors, a PyTorch
 * module, the tokenizer and a model card, checked against the WGSL forward
 * before it is published. `jobs/export.ts` is the pipeline's face of it.
 *
 * @module
 */
export { exportBundle, type ExportBundleOptions, type ExportBundleResult } from "./bundle.ts";
export {
  type CheckBatch,
  checkExportedModels,
  type Comparison,
  type ExportCheckOptions,
  type ExportCheckReport,
  type ExportCheckResult,
  type WebGpuMode,
  type WebGpuReport,
} from "./check.ts";
export { checkBatchesFrom } from "./check_batches.ts";
export { type ModelCardInfo, renderModelCard } from "./model_card.ts";
export { relativeError, runFullModel, runStepModel } from "./ort_run.ts";
export {
  FULL_IO,
  RUNNING_MAX_FILL,
  runningMaxSteps,
  SAMOUT_OPSET,
  samoutOnnx,
  samoutStepOnnx,
  STEP_IO,
} from "./samout_onnx.ts";
export { SAMOUT_PY } from "./samout_py.ts";
export { parseOrtLog, type SessionLog, WEBGPU_PROVIDER } from "./webgpu_check.ts";
