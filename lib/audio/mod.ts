/**
 * Audio input and output: decoding files, WAV reading and writing, channel
 * mixing and resampling.
 *
 * @module
 */
export * from "./decode.ts";
export * from "./resample.ts";
export * from "./wav.ts";
