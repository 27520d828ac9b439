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
  const short = categories.filter(([, indices]) => indices.length < required.length);
  if (short.length) {
    const counts = short.map(([c, indices]) =>
      `"${c}" has ${indices.length} file${indices.length === 1 ? "" : "s"}`
    );
    const names = short.map(([c]) => `"${c}"`).join(", ");
    throw new UserError(
      `${short.length === 1 ? "category" : `${short.length} categories:`} ${counts.join(", ")}; ` +
        `the ${splitName(fr)} split needs at least ${required.length} per category`,
      {
        ...location,
        expected: `at least ${required.length} files in every category`,
        found: short.map(([c, indices]) => `${indices.length} in "${c}"`).join(", "),
        hint: `add files to ${names} or remove ` +
          (short.length === 1 ? "that category" : "those categories") +
          (fr.test > 0 && short.every(([, indices]) => indices.length >= 2)
            ? " (or set test_fraction to 0)"
            : ""),
      },
    );
  }
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
