/**
 * Web Worker of `features.ts`: turns the bytes of one file at a time into
 * features ({@link fileFeatures}) and sends them back, buffers transferred.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import {
  fileFeatures,
  toWire,
  transferables,
  type WorkerReply,
  type WorkerTask,
} from "./features.ts";

self.onmessage = async (ev: MessageEvent<WorkerTask>) => {
  const t = ev.data;
  let reply: WorkerReply;
  try {
    const features = await fileFeatures(t.bytes, t.path, t.spec, t.keepSamples);
    reply = { index: t.index, features };
    self.postMessage(reply, transferables(features));
  } catch (e) {
    reply = { index: t.index, error: toWire(e) };
    self.postMessage(reply);
  }
};

const ready: WorkerReply = { ready: true };
self.postMessage(ready);
