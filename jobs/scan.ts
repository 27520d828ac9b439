/**
 * scan: walks a folder of labelled audio, decodes every file, and lists the
 * usable ones with their category, format, sample rate, channels, duration and
 * content hash. Files that cannot be used are listed with the reason.
 *
 * Layout: `<root>/<category>/<file>`. A file's category is the first folder
 * level under the root, so `<root>/coin/big/a.wav` is a "coin" file (deeper
 * folders only organise a category). Files directly under the root have no
 * category and are rejected (`no-category`). Hidden files and folders (names
 * starting with ".") are skipped, and so are files whose extension is not in
 * `extensions` (counted as `ignored_files`). Symbolic links are followed; a
 * folder already visited (a link loop, or two links to one folder) is not
 * entered again, and a file reached twice is kept once (`duplicate`).
 *
 * Reads: input slot `audio` (scans `<audio>/audio`, the synth layout), or the
 * folder in the `root` parameter. Writes `files.json`
 * (`{ root, files: [{ path, category, format, sample_rate, channels,
 * duration_s, sha256 }], categories: { name: count } }`, paths relative to the
 * `root`, `/`-separated, sorted; `root` is absolute for a user folder and
 * relative to the scan artifact's own folder for an input artifact) and `rejects.json`
 * (`[{ path, reason, detail }]`, sorted by path). Reasons: `unreadable`,
 * `empty`, `not-audio`, `cannot-decode`, `silent`, `too-short`, `too-long`,
 * `no-category`, `duplicate`.
 *
 * It fails (UserError) when `on_reject` is "fail" and any file was rejected,
 * when fewer than two categories remain, or when a category has fewer than
 * `min_files_per_category` usable files; it splits the files into train,
 * validation and test (recorded per file in files.json) and checks the split
 * (lib/data/split.ts) so that a category too small for it fails here.
 *
 * @module
 */
import { basename, join, resolve, sep } from "node:path";
import { z } from "zod";
import { AudioDecodeError, decodeAudioBytes } from "../lib/audio/decode.ts";
import type { AudioFormat } from "../lib/audio/decode.ts";
import { type Split, splitFiles } from "../lib/data/split.ts";
import { UserError } from "../lib/errors/mod.ts";
import { defineJob } from "../lib/pipeline/job.ts";

/** Why a file was left out. */
export type RejectReason =
  | "unreadable"
  | "empty"
  | "not-audio"
  | "cannot-decode"
  | "silent"
  | "too-short"
  | "too-long"
  | "no-category"
  | "duplicate";

/** One entry of `files.json`'s `files`. */
export interface ScannedFile {
  /** Relative to `root`, `/`-separated. */
  path: string;
  category: string;
  format: AudioFormat;
  sample_rate: number;
  channels: number;
  duration_s: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** The file's side of the split (lib/data/split.ts; this job owns the fractions). */
  split: Split;
}

/** `files.json`. */
export interface ScanListing {
  /** The absolute folder scanned. */
  root: string;
  /** Sorted by path. */
  files: ScannedFile[];
  /** Category -> number of files, keys sorted. */
  categories: Record<string, number>;
}

/** One entry of `rejects.json`. */
export interface ScanReject {
  /** Relative to `root`, `/`-separated (a folder ends in "/"). */
  path: string;
  reason: RejectReason;
  /** What exactly was wrong, for people. */
  detail: string;
}

/** The scan job's parameters. */
export const ScanParams = z.strictObject({
  /** Folder to scan instead of the `audio` input (its content becomes part of the step key). */
  root: z.string().min(1).optional(),
  /** Shorter files are rejected (`too-short`). */
  min_duration_s: z.number().min(0).default(0.05),
  /** Longer files are rejected (`too-long`). */
  max_duration_s: z.number().positive().default(30),
  /** A file whose peak absolute sample is below this is rejected (`silent`); 1e-3 is -60 dBFS. */
  silence_threshold: z.number().min(0).max(1).default(1e-3),
  /** "skip": list rejects and go on; "fail": stop with an error naming the rejected files. */
  on_reject: z.enum(["skip", "fail"]).default("skip"),
  /**
   * Expected share of validation files (early stopping). This job owns the
   * split: each file's side goes into files.json and later steps carry it.
   */
  val_fraction: z.number().gt(0).lt(1).default(0.15),
  /** Expected share of test files (the figures the evaluate job reports); 0: no test split. */
  test_fraction: z.number().min(0).lt(1).default(0.15),
  /** Fewest usable files a category may have (at least 2: one train, one validation). */
  min_files_per_category: z.number().int().min(2).default(2),
  /** File extensions to consider, without the dot; case-insensitive. */
  extensions: z.array(z.string().min(1).transform((e) => e.replace(/^\./, "").toLowerCase()))
    .min(1).default(["wav", "flac", "ogg", "mp3"]),
}).refine((p) => p.min_duration_s < p.max_duration_s, {
  message: "min_duration_s must be less than max_duration_s",
  path: ["min_duration_s"],
}).refine((p) => p.val_fraction + p.test_fraction < 1, {
  message: "val_fraction + test_fraction must be below 1 (some files must be left to train on)",
  path: ["test_fraction"],
});

/** Parsed scan parameters. */
export type ScanParams = z.output<typeof ScanParams>;

/** A file found by the walk, before decoding. */
interface Candidate {
  rel: string;
  abs: string;
  category: string;
}

interface WalkResult {
  candidates: Candidate[];
  rejects: ScanReject[];
  hidden: number;
  ignored: number;
  revisitedFolders: string[];
}

function byCodepoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Lists the audio files under `root` (sorted), following links but never a folder twice. */
async function walk(root: string, extensions: Set<string>): Promise<WalkResult> {
  const out: WalkResult = {
    candidates: [],
    rejects: [],
    hidden: 0,
    ignored: 0,
    revisitedFolders: [],
  };
  const visited = new Set<string>([await Deno.realPath(root)]);
  const seenFiles = new Map<string, string>();
  const visit = async (relDir: string): Promise<void> => {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(join(root, relDir))) names.push(e.name);
    } catch (e) {
      out.rejects.push({
        path: `${relDir}/`,
        reason: "unreadable",
        detail: `cannot list folder: ${message(e)}`,
      });
      return;
    }
    for (const name of names.sort(byCodepoint)) {
      if (name.startsWith(".")) {
        out.hidden++;
        continue;
      }
      const rel = relDir ? `${relDir}/${name}` : name;
      const abs = join(root, rel);
      const dot = name.lastIndexOf(".");
      const wanted = dot > 0 && extensions.has(name.slice(dot + 1).toLowerCase());
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(abs); // follows links
      } catch (e) {
        // Deno hands back a name that is not UTF-8 with U+FFFD in place of the bad
        // bytes; that name then names no file, and "No such file" would mislead.
        const detail = name.includes("\uFFFD")
          ? "the file name is not valid UTF-8 (rename the file)"
          : message(e);
        if (wanted) out.rejects.push({ path: rel, reason: "unreadable", detail });
        else out.ignored++;
        continue;
      }
      if (info.isDirectory) {
        const real = await Deno.realPath(abs);
        if (visited.has(real)) {
          out.revisitedFolders.push(rel);
          continue;
        }
        visited.add(real);
        await visit(rel);
      } else if (!info.isFile || !wanted) {
        out.ignored++;
      } else if (!relDir) {
        out.rejects.push({
          path: rel,
          reason: "no-category",
          detail: "file directly under the root; put it in a folder named after its category",
        });
      } else {
        const real = await Deno.realPath(abs);
        const first = seenFiles.get(real);
        if (first !== undefined) {
          out.rejects.push({ path: rel, reason: "duplicate", detail: `same file as ${first}` });
          continue;
        }
        seenFiles.set(real, rel);
        out.candidates.push({ rel, abs, category: rel.slice(0, rel.indexOf("/")) });
      }
    }
  };
  await visit("");
  return out;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

type Checked = { file: ScannedFile } | { reject: ScanReject };

/** Reads, hashes, decodes and checks one file. */
async function checkFile(c: Candidate, p: ScanParams): Promise<Checked> {
  const reject = (reason: RejectReason, detail: string): Checked => ({
    reject: { path: c.rel, reason, detail },
  });
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(c.abs);
  } catch (e) {
    return reject("unreadable", message(e));
  }
  if (bytes.length === 0) return reject("empty", "0 bytes");
  let audio;
  try {
    audio = await decodeAudioBytes(bytes, c.rel);
  } catch (e) {
    if (!(e instanceof AudioDecodeError)) throw e;
    const reason = e.failure === "empty" || e.failure === "not-audio" ? e.failure : "cannot-decode";
    const detail = [
      e.message,
      e.expected && `expected ${e.expected}`,
      e.found && `found ${e.found}`,
    ]
      .filter(Boolean).join("; ");
    return reject(reason, detail);
  }
  const frames = audio.channels[0].length;
  if (frames === 0) return reject("empty", `${audio.format} file with no samples`);
  let peak = 0;
  for (const ch of audio.channels) {
    for (let i = 0; i < ch.length; i++) {
      const a = Math.abs(ch[i]);
      if (!(a <= peak)) {
        if (!Number.isFinite(a)) return reject("cannot-decode", `non-finite sample at frame ${i}`);
        peak = a;
      }
    }
  }
  const seconds = audio.durationS;
  if (seconds < p.min_duration_s) {
    return reject(
      "too-short",
      `${seconds.toFixed(3)} s, shorter than min_duration_s ${p.min_duration_s}`,
    );
  }
  if (seconds > p.max_duration_s) {
    return reject(
      "too-long",
      `${seconds.toFixed(3)} s, longer than max_duration_s ${p.max_duration_s}`,
    );
  }
  if (peak < p.silence_threshold) {
    return reject(
      "silent",
      `peak ${peak.toExponential(2)} below silence_threshold ${p.silence_threshold}`,
    );
  }
  return {
    file: {
      path: c.rel,
      category: c.category,
      format: audio.format,
      sample_rate: audio.sampleRate,
      channels: audio.channels.length,
      duration_s: seconds,
      sha256: hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
      split: "train", // set once every file is known (splitFiles)
    },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The scan job (see the module doc). */
export const job = defineJob({
  name: "scan",
  version: "1",
  description: "list labelled audio files (<root>/<category>/<file>), decoding and checking each",
  params: ScanParams,
  inputs: (p) => p.root === undefined ? ["audio"] : [],
  slots: { audio: ["synth"] },
  sources: (p) => p.root === undefined ? [] : [p.root],
  async run(ctx) {
    const p = ctx.params;
    const where = { step: ctx.step, file: ctx.pipelineFile };
    const root = p.root !== undefined ? resolve(p.root) : join(ctx.inputs.audio.dir, "audio");
    let rootInfo: Deno.FileInfo | undefined;
    try {
      rootInfo = await Deno.stat(root);
    } catch {
      // reported below
    }
    if (!rootInfo?.isDirectory) {
      throw new UserError(`the folder to scan does not exist or is not a folder: ${root}`, {
        ...where,
        field: p.root !== undefined ? "root" : undefined,
        expected: "a folder laid out as <root>/<category>/<audio file>",
        found: rootInfo ? "a file" : "nothing",
      });
    }

    const walked = await walk(root, new Set(p.extensions));
    if (walked.revisitedFolders.length) {
      ctx.log(
        `scan: not entering ${plural(walked.revisitedFolders.length, "folder")} reached again ` +
          `through symbolic links (e.g. ${walked.revisitedFolders[0]})`,
      );
    }
    const files: ScannedFile[] = [];
    const rejects = walked.rejects;
    ctx.progress.start(walked.candidates.length, "files", "scan");
    let done = 0;
    for (const c of walked.candidates) {
      ctx.signal.throwIfAborted();
      const checked = await checkFile(c, p);
      if ("file" in checked) files.push(checked.file);
      else rejects.push(checked.reject);
      ctx.progress.update(++done, c.rel);
    }
    ctx.progress.finish(`${files.length} usable, ${rejects.length} rejected`);
    rejects.sort((a, b) => byCodepoint(a.path, b.path));

    if (p.on_reject === "fail" && rejects.length) {
      const first = rejects[0];
      throw new UserError(
        `${plural(rejects.length, "file")} rejected and on_reject is "fail"; first: ` +
          `${first.path}: ${first.reason} (${first.detail})`,
        {
          step: ctx.step,
          file: join(root, first.path),
          field: "on_reject",
          expected: "every file decodable, not silent, within the duration limits",
          found: rejects.slice(0, 10).map((r) => `${r.path}: ${r.reason}`).join(", ") +
            (rejects.length > 10 ? ", …" : ""),
          hint: 'fix or remove these files, or set on_reject: "skip"',
        },
      );
    }

    const counts = new Map<string, number>();
    for (const c of walked.candidates) counts.set(c.category, 0);
    for (const f of files) counts.set(f.category, counts.get(f.category)! + 1);
    const categories = [...counts.keys()].sort(byCodepoint);
    const usable = categories.filter((c) => counts.get(c)! > 0);
    if (usable.length < 2) {
      throw new UserError(
        `found ${plural(usable.length, "category")} with usable audio in ${root}` +
          (usable.length ? ` (${usable.join(", ")})` : "") + "; training needs at least 2",
        {
          ...where,
          file: root,
          expected:
            "at least 2 category folders, each holding audio files: <root>/<category>/<file>",
          found: `${plural(usable.length, "category")}, ${plural(files.length, "usable file")}, ` +
            `${plural(rejects.length, "reject")}`,
          hint: "put each category's files in its own folder under the root",
        },
      );
    }
    const small = categories.filter((c) => counts.get(c)! < p.min_files_per_category);
    if (small.length) {
      const c = small[0];
      const rejected = rejects.filter((r) => r.path.startsWith(`${c}/`)).length;
      throw new UserError(
        `category "${c}" has ${plural(counts.get(c)!, "usable file")}` +
          (rejected ? ` (${rejected} rejected)` : "") +
          `, fewer than min_files_per_category ${p.min_files_per_category}`,
        {
          ...where,
          file: join(root, c),
          field: "min_files_per_category",
          expected: `at least ${p.min_files_per_category} usable files in every category folder`,
          found: small.map((s) => `${s}: ${counts.get(s)}`).join(", "),
          hint: "add files to these folders, remove them, or lower min_files_per_category",
        },
      );
    }
    files.sort((a, b) => byCodepoint(a.path, b.path));
    const sides = splitFiles(
      files,
      ctx.seed,
      { val: p.val_fraction, test: p.test_fraction },
      { file: root, step: ctx.step },
    );
    files.forEach((f, i) => f.split = sides[i]);

    // An input artifact's folder is recorded relative to this artifact (the store's
    // objects sit side by side), so the bytes do not depend on where the store is.
    const listing: ScanListing = {
      root: p.root !== undefined
        ? root
        : join("..", basename(ctx.inputs.audio.dir), "audio").split(sep).join("/"),
      files,
      categories: Object.fromEntries(categories.map((c) => [c, counts.get(c)!])),
    };
    await Deno.writeTextFile(join(ctx.outDir, "files.json"), JSON.stringify(listing, null, 1));
    await Deno.writeTextFile(join(ctx.outDir, "rejects.json"), JSON.stringify(rejects, null, 1));

    const rejectCounts: Record<string, number> = {};
    for (const r of rejects) rejectCounts[r.reason] = (rejectCounts[r.reason] ?? 0) + 1;
    const seconds = files.reduce((s, f) => s + f.duration_s, 0);
    return {
      metrics: {
        files: files.length,
        categories: listing.categories,
        rejects: rejects.length,
        rejects_by_reason: rejectCounts,
        total_duration_s: Math.round(seconds * 1000) / 1000,
        train_files: sides.filter((s) => s === "train").length,
        val_files: sides.filter((s) => s === "val").length,
        test_files: sides.filter((s) => s === "test").length,
        hidden_skipped: walked.hidden,
        ignored_files: walked.ignored,
        folders_revisited: walked.revisitedFolders.length,
      },
    };
  },
});
