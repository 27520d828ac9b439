/**
 * The train/validation/test split.
 *
 * A file's side is a pure function of its content hash and the pipeline seed:
 * the pair is hashed to a score in [0, 1); scores below `test` go to the test
 * split (reported figures), the next `val` to validation (early stopping),
 * the rest to training. Adding, removing or renaming other files never moves
 * a file, and the same bytes land on the same side wherever they sit. The
 * scan job owns the fractions and records each file's side in `files.json`;
 * tokenize and bucket carry it forward.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";

/** Which side of the split a file is on. */
export type Split = "train" | "val" | "test";

/** Shares of files held out: `test` for reported figures, `val` for early stopping. */
export interface SplitFractions {
  val: number;
  /** 0: no test split (the two-way split of earlier versions). */
  test: number;
}

/**
 * A file's split score in [0, 1): a hash of the seed and the file's content hash.
 *
 * @param sha256 the file's content hash (hex)
 * @param seed the pipeline seed
 */
export function splitScore(sha256: string, seed: number): number {
  // The project's generator seeded by (seed, "split/<sha256>") is a well-mixed hash of the pair.
  return new Random(seed, `split/${sha256.toLowerCase()}`).uniform();
}

/** The interval of scores `[lo, hi)` of each side: test first, then val, then train. */
function intervals(f: SplitFractions): Record<Split, [number, number]> {
  return { test: [0, f.test], val: [f.test, f.test + f.val], train: [f.test + f.val, 1] };
}

function sideOfScore(score: number, f: SplitFractions): Split {
  return score < f.test ? "test" : score < f.test + f.val ? "val" : "train";
}

/**
 * The sides every category must have at least one file on: validation and
 * train, and test when its share is above 0. So a category needs at least
 * this many files.
 *
 * @param fractions the validation share (a number: no test split) or both shares
 */
export function requiredSides(fractions: number | SplitFractions): Split[] {
  return fractionsOf(fractions).test > 0 ? ["test", "val", "train"] : ["val", "train"];
}

/**
 * The sides of {@link requiredSides} as messages name them: "train/validation/test".
 *
 * @param fractions the validation share (a number: no test split) or both shares
 */
export function splitName(fractions: number | SplitFractions): string {
  return requiredSides(fractions).length === 3 ? "train/validation/test" : "train/validation";
}

function fractionsOf(f: number | SplitFractions): SplitFractions {
  const fr = typeof f === "number" ? { val: f, test: 0 } : f;
  if (!(fr.val >= 0 && fr.test >= 0 && fr.val + fr.test <= 1)) {
    throw new RangeError(
      `split fractions val ${fr.val}, test ${fr.test}: not shares summing to <= 1`,
    );
  }
  return fr;
}

/**
 * The side a file is on, from its content hash and the seed alone: scores
 * below `test` go to test, the next `val` to validation, the rest to train.
 *
 * @param sha256 the file's content hash (hex)
 * @param seed the pipeline seed
 * @param fractions the validation share (a number: no test split) or both shares
 */
export function splitOf(
  sha256: string,
  seed: number,
  fractions: number | SplitFractions,
): Split {
  return sideOfScore(splitScore(sha256, seed), fractionsOf(fractions));
}

/**
 * The fewest files a category may have: one on each of {@link requiredSides},
 * or `minFiles` (scan's `min_files_per_category`) when that is more.
 *
 * @param fractions the validation share (a number: no test split) or both shares
 * @param minFiles the fewest files a category may have by setting
 */
export function filesNeededPerCategory(
  fractions: number | SplitFractions,
  minFiles = 0,
): number {
  return Math.max(minFiles, requiredSides(fractions).length);
}

/**
 * The categories with fewer than `needed` files, in the order of `counts`.
 *
 * @param counts category -> number of (usable) files
 * @param needed {@link filesNeededPerCategory}
 */
export function shortCategories(counts: ReadonlyMap<string, number>, needed: number): string[] {
  return [...counts].filter(([, n]) => n < needed).map(([c]) => c);
}

/** A file left out of a category, and why (scan's rejects). */
export interface RejectedFile {
  path: string;
  reason: string;
  detail: string;
}

/** What {@link tooFewFilesError} reports. */
export interface TooFewFiles {
  /** Category -> number of files (usable ones, when `rejectedIn` is given). */
  counts: ReadonlyMap<string, number>;
  fractions: number | SplitFractions;
  /** The fewest files a category may have by setting (scan's `min_files_per_category`). */
  minFiles?: number;
  /** A category's rejected files (scan): the error then counts usable files and shows rejects. */
  rejectedIn?: (category: string) => readonly RejectedFile[];
  location: { file?: string; step?: string; field?: string };
}

/**
 * The error for categories with too few files ({@link shortCategories}): it
 * names each with its count (and, from scan, its rejects), says why that is
 * too few, and suggests only fixes that help.
 *
 * @param short the categories with too few files (not empty)
 * @param t the counts, the split and where the files are
 */
export function tooFewFilesError(short: readonly string[], t: TooFewFiles): UserError {
  const fr = fractionsOf(t.fractions);
  const sides = requiredSides(fr).length;
  const minFiles = t.minFiles ?? 0;
  const needed = filesNeededPerCategory(fr, minFiles);
  const count = (c: string) => t.counts.get(c)!;
  const rejectedIn = (c: string) => t.rejectedIn?.(c) ?? [];
  const noun = t.rejectedIn ? "usable file" : "file";
  const describe = (c: string) => {
    const rejected = rejectedIn(c);
    return `"${c}" has ${count(c)} ${noun}${count(c) === 1 ? "" : "s"}` +
      (rejected.length ? ` (${rejected.length} rejected)` : "");
  };
  const why = needed === sides
    ? `the ${splitName(fr)} split needs at least ${sides} per category`
    : `min_files_per_category is ${minFiles}`;
  const found = t.rejectedIn
    ? short.map((c) => {
      const rejected = rejectedIn(c);
      const shown = rejected.slice(0, 3).map((r) => `${r.path}: ${r.reason} (${r.detail})`);
      return `${c}: ${count(c)} usable, ${rejected.length} rejected` +
        (shown.length ? ` [${shown.join("; ")}${rejected.length > 3 ? "; …" : ""}]` : "");
    }).join("; ")
    : short.map((c) => `${count(c)} in "${c}"`).join(", ");
  // Lowering min_files_per_category helps only a category the split can still divide.
  const lowerTo = Math.min(...short.map(count));
  const fixes = [`add ${noun}s to ${short.map((c) => `"${c}"`).join(", ")}`];
  if (minFiles > sides && lowerTo >= sides && lowerTo >= 2) {
    fixes.push(`lower min_files_per_category to ${lowerTo}`);
  } else {
    if (fr.test > 0 && short.every((c) => count(c) >= 2)) {
      fixes.push("set test_fraction to 0 (then 2 files per category are enough)");
    }
    fixes.push(`remove ${short.length === 1 ? "that category's" : "those categories'"} folders`);
  }
  return new UserError(
    `${short.length === 1 ? "category" : `${short.length} categories have too few files:`} ` +
      `${short.map(describe).join(", ")}; ${why}`,
    {
      ...t.location,
      expected: `at least ${needed} ${noun}s in every category folder`,
      found,
      hint: fixes.length > 2
        ? `${fixes.slice(0, -1).join(", ")}, or ${fixes[fixes.length - 1]}`
        : fixes.join(", or "),
    },
  );
}

/** What {@link splitFiles} needs to know about a file. */
export interface SplittableFile {
  sha256: string;
  category: string;
}

/**
 * Splits files: every file gets {@link splitOf} (so each side's share of a
 * category is only about its fraction: not stratified), and then each
 * category is guaranteed at least one file on each side (train,
 * validation, and test when its share is above 0). When a side is empty, the
 * file whose score is closest to that side's interval crosses over from a
 * side that keeps at least one file (ties broken by hash, then position).
 * So in that rare case a file's side also depends on its category's other
 * files; everywhere else it depends on its own hash and the seed only.
 *
 * @param files the files (any order; the result follows it)
 * @param seed the pipeline seed
 * @param fractions the validation share (a number: no test split) or both shares
 * @param location where the files came from, for the error message
 * @returns the side of each file, in the order of `files`
 * @throws UserError naming every category with fewer files than sides
 */
export function splitFiles(
  files: readonly SplittableFile[],
  seed: number,
  fractions: number | SplitFractions,
  location: { file?: string; step?: string } = {},
): Split[] {
  const fr = fractionsOf(fractions);
  const bounds = intervals(fr);
  const required = requiredSides(fr);
  const scores = files.map((f) => splitScore(f.sha256, seed));
  const sides: Split[] = scores.map((s) => sideOfScore(s, fr));
  const byCategory = new Map<string, number[]>();
  files.forEach((f, i) => {
    const list = byCategory.get(f.category);
    if (list) list.push(i);
    else byCategory.set(f.category, [i]);
  });
  const categories = [...byCategory].sort(([a], [b]) => a < b ? -1 : 1);
  const counts = new Map(categories.map(([c, indices]) => [c, indices.length]));
  const short = shortCategories(counts, filesNeededPerCategory(fr));
  if (short.length) throw tooFewFilesError(short, { counts, fractions: fr, location });
  for (const [, indices] of categories) {
    for (const to of required) {
      const count = (side: Split) => indices.filter((i) => sides[i] === side).length;
      if (count(to) > 0) continue;
      const [lo, hi] = bounds[to];
      const distance = (i: number) => scores[i] < lo ? lo - scores[i] : scores[i] - hi;
      const donors = indices.filter((i) => sides[i] !== to && count(sides[i]) > 1);
      const pick = donors.reduce((best, i) => {
        const d = distance(i) - distance(best);
        if (d !== 0) return d < 0 ? i : best;
        const a = files[i].sha256, b = files[best].sha256;
        return a < b || (a === b && i < best) ? i : best;
      });
      sides[pick] = to;
    }
  }
  return sides;
}
