/**
 * The artifact store: immutable, content-addressed step outputs.
 *
 * @module
 */
export type { ArtifactRef, Manifest, ManifestFile } from "./types.ts";
