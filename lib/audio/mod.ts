/**
 * Audio input and output: decoding files, checking they are usable, WAV
 * reading and writing, channel mixing and resampling.
 *
 * @module
 */
export * from "./checks.ts";
export * from "./decode.ts";
export * from "./resample.ts";
export * from "./wav.ts";
