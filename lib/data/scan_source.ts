/**
 * Where a scan's audio is: `files.json`'s `source`, and how a job that reads
 * the scan finds the folder from it.
 *
 * The scan records the place without a local path, so its bytes depend only
 * on the step's identity (not on where the project or the store is):
 * `{ input: "audio", path: "audio" }` is the sub-folder `audio` of the scan's
 * input artifact `audio` (the synth layout), which a reader gets from the
 * runner as `ctx.upstream.scan.audio` (a declared, checked input: the job
 * lists `scan` in its `upstream`); `{ param: "root", path: "data_small" }` is
 * the scan's `root` parameter as the user wrote it, read like the scan read it
 * (a relative path from the project's folder, where `deno task` runs).
 *
 * @module
 */
import { join, resolve } from "node:path";
import type { ArtifactRef } from "../artifacts/mod.ts";
import { type ErrorLocation, UserError } from "../errors/mod.ts";

/**
 * `files.json`'s `source`: `path` (`/`-separated) inside the scan's input
 * artifact `input`, or the scan's parameter `param` with `path` its value as
 * written in the pipeline.
 */
export type ScanSource = { input: string; path: string } | { param: string; path: string };

/**
 * The `source` of a parsed `files.json`, checked. A listing from scan version 1
 * (a `root` path instead of `source`) is an error that says to rebuild it.
 */
export function scanSourceOf(listing: unknown, file: string): ScanSource {
  const l = listing as { source?: unknown; root?: unknown } | null;
  const s = l?.source as Record<string, unknown> | undefined;
  const text = (v: unknown) => typeof v === "string" && v.length > 0;
  if (s && text(s.path) && (text(s.input) !== text(s.param))) {
    return text(s.input)
      ? { input: s.input as string, path: s.path as string }
      : { param: s.param as string, path: s.path as string };
  }
  const old = l !== null && typeof l === "object" && "root" in l && !("source" in l);
  throw new UserError(
    old
      ? "files.json was written by an older scan (version 1, with a `root` path): rebuild it"
      : "files.json has no valid `source` (where the scanned audio is)",
    {
      file,
      field: "source",
      expected: '{ "input": SLOT, "path": FOLDER } or { "param": NAME, "path": FOLDER }',
      found: JSON.stringify(old ? { root: l!.root } : s ?? null),
      hint: old ? "run the pipeline again (the scan step is rebuilt by this version)" : undefined,
    },
  );
}

/**
 * The folder the scan's file paths are relative to. `upstream` is the scan
 * artifact's own inputs by slot, as the runner resolved them
 * (`ctx.upstream.scan`); a source folder is read from the project's folder.
 */
export function scanAudioRoot(
  source: ScanSource,
  upstream: Record<string, ArtifactRef> | undefined,
  where: ErrorLocation,
): string {
  if ("param" in source) return resolve(source.path);
  const ref = upstream?.[source.input];
  if (!ref) {
    throw new UserError(
      `the scanned audio is in the scan's input "${source.input}", which this step was not given`,
      {
        ...where,
        expected: `the scan's input "${source.input}" resolved by the runner`,
        found: `upstream inputs: ${Object.keys(upstream ?? {}).join(", ") || "none"}`,
        hint: 'the job must list its scan slot in `upstream` (e.g. upstream: ["scan"])',
      },
    );
  }
  return join(ref.dir, ...source.path.split("/"));
}

/** Reads `<scanDir>/files.json` and returns the folder its file paths are relative to. */
export async function readScanAudioRoot(
  scanDir: string,
  upstream: Record<string, ArtifactRef> | undefined,
  where: ErrorLocation = {},
): Promise<string> {
  const file = join(scanDir, "files.json");
  const listing = JSON.parse(await Deno.readTextFile(file));
  return scanAudioRoot(scanSourceOf(listing, file), upstream, { ...where, file });
}
