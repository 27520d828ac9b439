/**
 * The SamOut model: config, parameter table and init, safetensors, CPU reference.
 *
 * @module
 */
export * from "./config.ts";
export * from "./params.ts";
export * from "./safetensors.ts";
export * from "./reference.ts";
export * from "./graph.ts";
export * from "./inference.ts";
