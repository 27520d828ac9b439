/**
 * Running the exported SamOut models with onnxruntime-web, whatever the
 * backend: the full model on a batch, and the step model fed one position at
 * a time. Both return logits `[rows, length, V]` f32, row-major, so the two
 * forms and the WGSL forward compare element by element.
 *
 * This module imports nothing: the WebGPU check runs it in a child process
 * that loads onnxruntime-web by file URL (see `webgpu_child.ts`), so the ORT
 * module and session are described structurally here.
 *
 * @module
 */

/** A batch of token ids `[rows, length]`, padding 0 (the shape of `TokenBatch`). */
export interface IdBatch {
  rows: number;
  length: number;
  /** `[rows, length]` row-major ids. */
  tokens: Int32Array;
}

/** The part of an onnxruntime tensor used here. */
export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** The part of the onnxruntime-web module used here. */
export interface OrtModuleLike {
  Tensor: new (
    type: "int64" | "float32",
    data: BigInt64Array | Float32Array,
    dims: readonly number[],
  ) => OrtTensorLike;
}

/** The part of an inference session used here. */
export interface OrtSessionLike {
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
}

function floats(t: OrtTensorLike | undefined, what: string, count: number): Float32Array {
  if (!t || !(t.data instanceof Float32Array) || t.data.length !== count) {
    throw new Error(
      `${what}: expected ${count} float32 values, got ${
        t ? `${(t.data as { length?: number }).length} (${t.dims.join("x")})` : "no output"
      }`,
    );
  }
  return t.data;
}

/** `model.onnx` on `batch`: logits `[rows, length, V]`. */
export async function runFullModel(
  ort: OrtModuleLike,
  session: OrtSessionLike,
  batch: IdBatch,
  vocabSize: number,
): Promise<Float32Array> {
  const ids = new ort.Tensor("int64", BigInt64Array.from(batch.tokens, BigInt), [
    batch.rows,
    batch.length,
  ]);
  const out = await session.run({ ids });
  return floats(out.logits, "model.onnx logits", batch.rows * batch.length * vocabSize).slice();
}

/**
 * `model.step.onnx` fed `batch` one position at a time from the initial
 * state (every value -inf), passing each `new_state` back, for the first
 * `positions` positions (default all): logits `[rows, positions, V]`
 * gathered from the steps.
 */
export async function runStepModel(
  ort: OrtModuleLike,
  session: OrtSessionLike,
  batch: IdBatch,
  sizes: { vocabSize: number; hidden: number; layers: number },
  positions = batch.length,
): Promise<Float32Array> {
  const { rows: B, length } = batch;
  const S = Math.min(positions, length);
  const { vocabSize: V, hidden: d, layers: L } = sizes;
  const logits = new Float32Array(B * S * V);
  let state = new ort.Tensor("float32", new Float32Array(L * B * d).fill(-Infinity), [L, B, d]);
  for (let t = 0; t < S; t++) {
    const token = new BigInt64Array(B);
    for (let b = 0; b < B; b++) token[b] = BigInt(batch.tokens[b * length + t]);
    const position = new BigInt64Array(B).fill(BigInt(t));
    const out = await session.run({
      token: new ort.Tensor("int64", token, [B]),
      state,
      position: new ort.Tensor("int64", position, [B]),
    });
    const step = floats(out.logits, `model.step.onnx logits at position ${t}`, B * V);
    for (let b = 0; b < B; b++) logits.set(step.subarray(b * V, (b + 1) * V), (b * S + t) * V);
    floats(out.new_state, `model.step.onnx new_state at position ${t}`, L * B * d);
    state = out.new_state;
  }
  return logits;
}

/** The first `positions` positions of logits `[rows, length, V]`: `[rows, positions, V]`. */
export function leadingPositions(
  logits: Float32Array,
  rows: number,
  length: number,
  positions: number,
  vocabSize: number,
): Float32Array {
  if (positions >= length) return logits;
  const out = new Float32Array(rows * positions * vocabSize);
  for (let r = 0; r < rows; r++) {
    const from = r * length * vocabSize;
    out.set(logits.subarray(from, from + positions * vocabSize), r * positions * vocabSize);
  }
  return out;
}

/**
 * `max |actual - expected| / max |expected|` over all elements; Infinity
 * when the lengths differ or any value is not finite (a NaN must not pass).
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]) || !Number.isFinite(expected[i])) return Infinity;
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}
