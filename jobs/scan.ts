/**
 * scan: walks a folder of labelled audio, decodes every file, and lists the
 * usable ones with their category, format, sample rate, channels, duration and
 * content hash. Files that cannot be used are listed with the reason.
 *
 * Layout: `<root>/<category>/<file>`. A file's category is the first folder
 * level under the root, so `<root>/coin/big/a.wav` is a "coin" file (deeper
 * folders only organise a category). Files directly under the root have no
 * category and are rejected (`no-category`). Hidden files and folders (names
 * starting with ".") are skipped silently (counted as `hidden_skipped`); files
 * whose extension is not in `extensions` are listed as `unsupported-extension`
 * (and counted as `ignored_files`, with anything that is neither a file nor a
 * folder), but never make `on_reject: fail` stop. Symbolic links are followed,
 * and a link never decides a category: every folder reachable without links
 * is walked before any link to a folder is entered, and a folder already
 * visited (a link loop, or a link to a folder scanned already) is not entered
 * again (the log names the link). A file reached twice in one category is kept
 * once, under its path without links when it has one (the other paths are
 * `duplicate`); a file reached in two categories (a link in one category's
 * folder to a file in another's) is rejected on every path
 * (`conflicting-category`). Links to files and folders outside the root are
 * scanned like the files and folders themselves.
 *
 * Reads: input slot `audio` (scans `<audio>/audio`, the synth layout), or the
 * folder in the `root` parameter (a relative one from the project's folder).
 * Writes `files.json` (`{ source, files: [{ path, category, format,
 * sample_rate, channels, duration_s, sha256, split }], categories: { name:
 * count } }`, paths relative to the scanned folder, `/`-separated, sorted;
 * `source` says where that folder is without a local path:
 * `{ input: "audio", path: "audio" }` or `{ param: "root", path: <root as
 * written> }`, see lib/data/scan_source.ts) and `rejects.json`
 * (`[{ path, reason, detail }]`, sorted by path). Reasons: `unreadable`,
 * `empty`, `not-audio`, `cannot-decode`, `silent`, `too-short`, `too-long`,
 * `no-category`, `duplicate`, `conflicting-category`, `unsupported-extension`.
 * The log lists the first rejects with their reasons.
 *
 * It fails (UserError) when `on_reject` is "fail" and any file was rejected
 * (other extensions aside), when fewer than two categories remain, or when a
 * category has fewer usable files than `min_files_per_category` or than the
 * split has sides (3 with a test share, else 2); that error names every such
 * category with its usable and rejected counts and its first rejects. It
 * splits the files into train, validation and test (lib/data/split.ts) and
 * records each file's side in files.json.
 *
 * @module
 */
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import { AudioDecodeError, decodeAudioBytes } from "../lib/audio/decode.ts";
import type { AudioFormat } from "../lib/audio/decode.ts";
import { audioRejectReason, DEFAULT_AUDIO_LIMITS } from "../lib/audio/checks.ts";
import {
  filesNeededPerCategory,
  shortCategories,
  type Split,
  splitFiles,
  tooFewFilesError,
} from "../lib/data/split.ts";
import type { ScanSource } from "../lib/data/scan_source.ts";
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
  | "duplicate"
  | "conflicting-category"
  | "unsupported-extension";

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
  /** Where the scanned folder is (an input's sub-folder, or the `root` parameter as written). */
  source: ScanSource;
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
  min_duration_s: z.number().min(0).default(DEFAULT_AUDIO_LIMITS.min_duration_s),
  /** Longer files are rejected (`too-long`). */
  max_duration_s: z.number().positive().default(DEFAULT_AUDIO_LIMITS.max_duration_s),
  /** A file whose peak absolute sample is below this is rejected (`silent`); 1e-3 is -60 dBFS. */
  silence_threshold: z.number().min(0).max(1).default(DEFAULT_AUDIO_LIMITS.silence_threshold),
  /** "skip": list rejects and go on; "fail": stop with an error naming the rejected files. */
  on_reject: z.enum(["skip", "fail"]).default("skip"),
  /**
   * Expected share of validation files (early stopping). This job owns the
   * split: each file's side goes into files.json and later steps carry it.
   */
  val_fraction: z.number().gt(0).lt(1).default(0.15),
  /** Expected share of test files (the figures the evaluate job reports); 0: no test split. */
  test_fraction: z.number().min(0).lt(1).default(0.15),
  /**
   * Fewest usable files a category may have (at least 2: one train, one
   * validation). The split raises it to 3 when `test_fraction` is above 0.
   */
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

/** A file the walk reached, with where it really is. */
interface Reached extends Candidate {
  /** `Deno.realPath` of the file. */
  real: string;
  /** Whether `rel` passes through a symbolic link (the file itself, or a folder above it). */
  viaLink: boolean;
}

interface WalkResult {
  candidates: Candidate[];
  rejects: ScanReject[];
  hidden: number;
  /** Entries that are neither files nor folders, or dangling links without an audio extension. */
  ignored: number;
  /** Links to folders not entered: the folder (`target`: relative to the root when inside it) is reached otherwise. */
  revisitedFolders: { link: string; target: string }[];
}

function byCodepoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Lists the audio files under `root`, following links but never entering a
 * folder twice, and decides which path of a file reached more than once
 * counts. Every folder reachable without links is walked before any link to
 * a folder is entered, so a link never takes a folder's place (or category);
 * links to folders are entered in the order they are found (sorted by name
 * per folder). A file reached under one category through several paths is
 * kept once, under a path without links when it has one (the others are
 * `duplicate`); a file reached under two categories is rejected on every path
 * (`conflicting-category`): which label is right is the user's call.
 */
async function walk(root: string, extensions: Set<string>): Promise<WalkResult> {
  const out: WalkResult = {
    candidates: [],
    rejects: [],
    hidden: 0,
    ignored: 0,
    revisitedFolders: [],
  };
  const supported = [...extensions].map((e) => `.${e}`).join(", ");
  const realRoot = await Deno.realPath(root);
  const visited = new Set<string>([realRoot]);
  const reached: Reached[] = [];
  /** Links to folders, entered once every folder reachable without links has been walked. */
  const folderLinks: string[] = [];
  const visit = async (relDir: string, viaLink: boolean): Promise<void> => {
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(join(root, relDir))) entries.push(e);
    } catch (e) {
      out.rejects.push({
        path: `${relDir}/`,
        reason: "unreadable",
        detail: `cannot list folder: ${message(e)}`,
      });
      return;
    }
    for (const entry of entries.sort((a, b) => byCodepoint(a.name, b.name))) {
      const name = entry.name;
      if (name.startsWith(".")) {
        out.hidden++;
        continue;
      }
      const rel = relDir ? `${relDir}/${name}` : name;
      const abs = join(root, rel);
      const dot = name.lastIndexOf(".");
      const extension = dot > 0 ? name.slice(dot + 1) : "";
      const wanted = extensions.has(extension.toLowerCase());
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
        if (entry.isSymlink) folderLinks.push(rel);
        else await enter(rel, viaLink);
      } else if (!info.isFile) {
        out.ignored++;
      } else if (!wanted) {
        out.ignored++;
        out.rejects.push({
          path: rel,
          reason: "unsupported-extension",
          detail: (extension ? `extension ".${extension}"` : "no extension") +
            ` is not scanned (extensions: ${supported})`,
        });
      } else if (!relDir) {
        out.rejects.push({
          path: rel,
          reason: "no-category",
          detail: "file directly under the root; put it in a folder named after its category",
        });
      } else {
        reached.push({
          rel,
          abs,
          category: rel.slice(0, rel.indexOf("/")),
          real: await Deno.realPath(abs),
          viaLink: viaLink || entry.isSymlink,
        });
      }
    }
  };
  /** Walks the folder at `rel` unless its real path was walked already. */
  const enter = async (rel: string, viaLink: boolean): Promise<void> => {
    const real = await Deno.realPath(join(root, rel));
    if (visited.has(real)) {
      const inside = relative(realRoot, real);
      const target = real === realRoot
        ? "the root"
        : inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)
        ? real
        : inside.split(sep).join("/");
      out.revisitedFolders.push({ link: rel, target });
      return;
    }
    visited.add(real);
    await visit(rel, viaLink);
  };
  await visit("", false);
  // Entering a linked folder may find more links; they join the end of the queue.
  for (let i = 0; i < folderLinks.length; i++) await enter(folderLinks[i], true);

  const byReal = new Map<string, Reached[]>();
  for (const r of reached) {
    const paths = byReal.get(r.real);
    if (paths) paths.push(r);
    else byReal.set(r.real, [r]);
  }
  for (const paths of byReal.values()) {
    // A path without links first, then by path.
    paths.sort((a, b) => Number(a.viaLink) - Number(b.viaLink) || byCodepoint(a.rel, b.rel));
    const categories = new Set(paths.map((p) => p.category));
    if (categories.size > 1) {
      for (const p of paths) {
        const others = paths.filter((o) => o !== p)
          .map((o) => `${o.rel}, in category "${o.category}"`).join("; ");
        out.rejects.push({
          path: p.rel,
          reason: "conflicting-category",
          detail: `same file as ${others}, reached through a symbolic link: a file cannot be in ` +
            "two categories; remove the link or move the file",
        });
      }
      continue;
    }
    const [kept, ...duplicates] = paths;
    out.candidates.push({ rel: kept.rel, abs: kept.abs, category: kept.category });
    for (const d of duplicates) {
      out.rejects.push({ path: d.rel, reason: "duplicate", detail: `same file as ${kept.rel}` });
    }
  }
  out.candidates.sort((a, b) => byCodepoint(a.rel, b.rel));
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
  const unusable = audioRejectReason(audio, p);
  if (unusable) return reject(unusable.reason, unusable.detail);
  return {
    file: {
      path: c.rel,
      category: c.category,
      format: audio.format,
      sample_rate: audio.sampleRate,
      channels: audio.channels.length,
      duration_s: audio.durationS,
      sha256: hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
      split: "train", // set once every file is known (splitFiles)
    },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The category (first folder) of a path relative to the root. */
function categoryOf(rel: string): string {
  return rel.slice(0, rel.indexOf("/"));
}

/** How many rejects the log and error messages show before "…". */
const REJECTS_SHOWN = 10;

/** Logs the rejected files (up to {@link REJECTS_SHOWN}) and a count of the files of other types. */
function logRejects(
  log: (message: string) => void,
  problems: readonly ScanReject[],
  unsupported: readonly ScanReject[],
  extensions: readonly string[],
): void {
  if (problems.length) {
    log(
      `${plural(problems.length, "file")} rejected` +
        (problems.length > REJECTS_SHOWN ? ` (the first ${REJECTS_SHOWN}):` : ":"),
    );
    for (const r of problems.slice(0, REJECTS_SHOWN)) {
      log(`  ${r.path}: ${r.reason} (${r.detail})`);
    }
  }
  if (unsupported.length) {
    log(
      `${plural(unsupported.length, "file")} with other extensions not scanned ` +
        `(e.g. ${unsupported[0].path}; scanned: ${extensions.map((e) => `.${e}`).join(", ")}, ` +
        "the extensions parameter)",
    );
  }
}

/** The scan job (see the module doc). */
export const job = defineJob({
  name: "scan",
  // 2: files.json's `source` (no local path) replaced `root`.
  version: "2",
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
      const links = walked.revisitedFolders;
      ctx.log(
        `not entering ${plural(links.length, "folder")} reached again through symbolic links: ` +
          links.slice(0, 3).map((l) => `${l.link} (a link to ${l.target})`).join(", ") +
          (links.length > 3 ? ", …" : ""),
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
    rejects.sort((a, b) => byCodepoint(a.path, b.path));
    // Files of other types are listed for the record; they were never meant as audio.
    const unsupported = rejects.filter((r) => r.reason === "unsupported-extension");
    const problems = rejects.filter((r) => r.reason !== "unsupported-extension");
    ctx.progress.finish(`${files.length} usable, ${problems.length} rejected`);
    logRejects(ctx.log, problems, unsupported, p.extensions);

    if (p.on_reject === "fail" && problems.length) {
      const first = problems[0];
      throw new UserError(
        `${plural(problems.length, "file")} rejected and on_reject is "fail"; first: ` +
          `${first.path}: ${first.reason} (${first.detail})`,
        {
          step: ctx.step,
          file: join(root, first.path),
          field: "on_reject",
          expected: "every file decodable, not silent, within the duration limits",
          found: problems.slice(0, 10).map((r) => `${r.path}: ${r.reason}`).join(", ") +
            (problems.length > 10 ? ", …" : ""),
          hint: 'fix or remove these files, or set on_reject: "skip"',
        },
      );
    }

    // A category whose files all went to another category's path still counts (with 0).
    const counts = new Map<string, number>();
    for (const c of walked.candidates) counts.set(c.category, 0);
    for (const r of rejects) {
      if (r.reason === "conflicting-category") counts.set(categoryOf(r.path), 0);
    }
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
            `${plural(problems.length, "reject")}`,
          hint: "put each category's files in its own folder under the root",
        },
      );
    }
    // Every category needs a file on each side of the split, and min_files_per_category.
    const short = shortCategories(
      new Map(categories.map((c) => [c, counts.get(c)!])),
      filesNeededPerCategory(
        { val: p.val_fraction, test: p.test_fraction },
        p.min_files_per_category,
      ),
    );
    if (short.length) {
      throw tooFewFilesError(short, {
        counts,
        fractions: { val: p.val_fraction, test: p.test_fraction },
        minFiles: p.min_files_per_category,
        rejectedIn: (c) => problems.filter((r) => categoryOf(r.path) === c),
        location: {
          step: ctx.step,
          file: short.length === 1 ? join(root, short[0]) : root,
          field: "min_files_per_category",
        },
      });
    }
    files.sort((a, b) => byCodepoint(a.path, b.path));
    const sides = splitFiles(
      files,
      ctx.seed,
      { val: p.val_fraction, test: p.test_fraction },
      { file: root, step: ctx.step },
    );
    files.forEach((f, i) => f.split = sides[i]);

    // Where the folder is, named by the input slot or the parameter as written: the bytes
    // depend neither on where the store is nor on where the project is checked out.
    const listing: ScanListing = {
      source: p.root !== undefined
        ? { param: "root", path: p.root }
        : { input: "audio", path: "audio" },
      files,
      categories: Object.fromEntries(categories.map((c) => [c, counts.get(c)!])),
    };
    await Deno.writeTextFile(join(ctx.outDir, "files.json"), JSON.stringify(listing, null, 1));
    await Deno.writeTextFile(join(ctx.outDir, "rejects.json"), JSON.stringify(rejects, null, 1));
    if (rejects.length) {
      ctx.log(
        `all ${plural(rejects.length, "file")} left out are listed with their reasons in ` +
          "rejects.json in this step's artifact (deno task artifacts show KEY prints its folder)",
      );
    }

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
