/** A file listed in an artifact's manifest. */
export interface ManifestFile {
  /** Path relative to the artifact directory, `/`-separated. */
  path: string;
  size: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** `manifest.json`, written into every published artifact. */
export interface Manifest {
  /** The artifact key (hex SHA-256 over job, job code hash, params, input keys, source hashes). */
  key: string;
  job: string;
  job_version: string;
  /** Hash of the job's code (its file and local imports). */
  code_hash: string;
  step: string;
  params: unknown;
  /** Input slot -> artifact key. */
  inputs: Record<string, string>;
  /** Source path -> content hash, for jobs that read outside the store. */
  sources: Record<string, string>;
  files: ManifestFile[];
  started_at: string;
  finished_at: string;
  environment: Record<string, string>;
}

/** A published artifact as jobs see it. */
export interface ArtifactRef {
  key: string;
  /** Absolute directory of the published artifact (read-only by convention). */
  dir: string;
  manifest: Manifest;
}
