/**
 * The artifact store: immutable, content-addressed step outputs.
 *
 * @module
 */
export type { ArtifactRef, Manifest, ManifestFile } from "./types.ts";
export type {
  ArtifactStore,
  CheckDepth,
  CommitResult,
  ManifestBits,
  Release,
  Staging,
  VerifyProblem,
  VerifyReport,
} from "./store.ts";
export { listFiles, LocalArtifactStore } from "./store.ts";
export { checkStorePath, fsErrorCode, storeFaultError } from "./faults.ts";
export { canonicalJson, sha256File, sha256Hex, toHex } from "./hash.ts";
