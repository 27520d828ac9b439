/**
 * The train/validation split.
 *
 * A file's side is a pure function of its content hash and the pipeline seed:
 * the pair is hashed to a score in [0, 1) and the file goes to validation when
 * the score is below `valFraction`. Adding, removing or renaming other files
 * never moves a file, and the same bytes land on the same side wherever they
 * sit. scan uses this to fail early; tokenize and bucket compute the same split.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";

/** Which side of the split a file is on. */
export type Split = "train" | "val";

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

/**
 * The side a file is on, from its content hash and the seed alone.
 *
 * @param sha256 the file's content hash (hex)
 * @param seed the pipeline seed
 * @param valFraction the expected share of files in validation, in [0, 1]
 */
export function splitOf(sha256: string, seed: number, valFraction: number): Split {
  return splitScore(sha256, seed) < valFraction ? "val" : "train";
}

/** What {@link splitFiles} needs to know about a file. */
export interface SplittableFile {
  sha256: string;
  category: string;
}

/**
 * Splits files stratified by category: every file gets {@link splitOf}, and
 * then each category is guaranteed at least one validation and one training
 * file. When the rule puts all of a category's files on one side, the one
 * file whose score is closest to the threshold crosses over: the lowest-scoring
 * training file moves to validation, or the highest-scoring validation file
 * moves to training (ties broken by hash, then position). So in that rare case
 * a file's side also depends on its category's other files; everywhere else
 * it depends on its own hash and the seed only.
 *
 * @param files the files (any order; the result follows it)
 * @param seed the pipeline seed
 * @param valFraction the expected share of files in validation, in [0, 1]
 * @param location where the files came from, for the error message
 * @returns the side of each file, in the order of `files`
 * @throws UserError when a category has fewer than 2 files
 */
export function splitFiles(
  files: readonly SplittableFile[],
  seed: number,
  valFraction: number,
  location: { file?: string; step?: string } = {},
): Split[] {
  if (!(valFraction >= 0 && valFraction <= 1)) {
    throw new RangeError(`splitFiles: valFraction ${valFraction} is not in [0, 1]`);
  }
  const scores = files.map((f) => splitScore(f.sha256, seed));
  const sides: Split[] = scores.map((s) => s < valFraction ? "val" : "train");
  const byCategory = new Map<string, number[]>();
  files.forEach((f, i) => {
    const list = byCategory.get(f.category);
    if (list) list.push(i);
    else byCategory.set(f.category, [i]);
  });
  for (const [category, indices] of [...byCategory].sort(([a], [b]) => a < b ? -1 : 1)) {
    if (indices.length < 2) {
      throw new UserError(
        `category "${category}" has ${indices.length} file; the train/validation split needs at least 2 per category`,
        {
          ...location,
          expected: "at least 2 files in every category",
          found: `${indices.length} file in "${category}"`,
          hint: `add files to "${category}" or remove that category`,
        },
      );
    }
    const val = indices.filter((i) => sides[i] === "val");
    if (val.length === 0 || val.length === indices.length) {
      const to: Split = val.length === 0 ? "val" : "train";
      // Closest to the threshold: the lowest score when moving to val, the highest when to train.
      const sign = to === "val" ? 1 : -1;
      const pick = indices.reduce((best, i) => {
        const d = sign * (scores[i] - scores[best]);
        if (d !== 0) return d < 0 ? i : best;
        const a = files[i].sha256, b = files[best].sha256;
        return a < b || (a === b && i < best) ? i : best;
      });
      sides[pick] = to;
    }
  }
  return sides;
}
