/**
 * The project's WebGPU layer: device acquisition, buffer helpers and the WGSL
 * kernels of the SamOut training graph.
 *
 * @module
 */
export * from "./device.ts";
