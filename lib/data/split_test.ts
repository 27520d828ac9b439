import { assert, assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { Random } from "../random/mod.ts";
import { requiredSides, type Split, splitFiles, splitName, splitOf, splitScore } from "./split.ts";

function fakeSha(rng: Random): string {
  return Array.from({ length: 8 }, () => rng.nextUint32().toString(16).padStart(8, "0")).join("");
}

function fakeFiles(n: number, categories: string[], stream: string) {
  const rng = new Random(7, stream);
  return Array.from({ length: n }, (_, i) => ({
    sha256: fakeSha(rng),
    category: categories[i % categories.length],
  }));
}

Deno.test("splitScore is in [0, 1), depends on the seed, and is stable", () => {
  const sha = "ab".repeat(32);
  const s = splitScore(sha, 1);
  assert(s >= 0 && s < 1, `score ${s} outside [0, 1)`);
  assertEquals(splitScore(sha, 1), s);
  assertEquals(splitScore(sha.toUpperCase(), 1), s, "hex case must not matter");
  assert(splitScore(sha, 2) !== s, "a different seed should give a different score");
});

Deno.test("splitOf puts about valFraction of files in val", () => {
  const files = fakeFiles(4000, ["x"], "fraction");
  const val = files.filter((f) => splitOf(f.sha256, 3, 0.2) === "val").length / files.length;
  assert(Math.abs(val - 0.2) < 0.03, `val share ${val}, expected about 0.2`);
});

Deno.test("adding files never moves old ones", () => {
  const cats = ["coin", "laser", "jump"];
  const old = fakeFiles(60, cats, "old");
  const added = fakeFiles(200, cats, "new");
  const before = splitFiles(old, 11, 0.25);
  const after = splitFiles([...added.slice(0, 100), ...old, ...added.slice(100)], 11, 0.25);
  assertEquals(after.slice(100, 160), before);
});

Deno.test("splitFiles matches splitOf when every category already has both sides", () => {
  const files = fakeFiles(300, ["a", "b", "c"], "plain");
  const sides = splitFiles(files, 5, 0.3);
  for (const c of ["a", "b", "c"]) {
    const mine = sides.filter((_, i) => files[i].category === c);
    assert(mine.includes("val") && mine.includes("train"), `category ${c} lacks a side`);
  }
  assertEquals(sides, files.map((f) => splitOf(f.sha256, 5, 0.3)));
});

Deno.test("each category with >= 2 files gets a val and a train file", () => {
  // With 2 files per category and valFraction 0.05, most categories start with no val file.
  const cats = Array.from({ length: 40 }, (_, i) => `c${i}`);
  for (const fraction of [0, 0.05, 0.95, 1]) {
    const files = fakeFiles(80, cats, `strat${fraction}`);
    const sides = splitFiles(files, 9, fraction);
    for (const c of cats) {
      const mine = sides.filter((_, i) => files[i].category === c);
      assertEquals(mine.slice().sort(), ["train", "val"], `category ${c} at ${fraction}`);
    }
  }
});

Deno.test("the file moved to val is the train file with the lowest score", () => {
  const files = fakeFiles(5, ["only"], "closest");
  const scores = files.map((f) => splitScore(f.sha256, 4));
  const sides = splitFiles(files, 4, 0); // every file's rule says train
  const lowest = scores.indexOf(Math.min(...scores));
  assertEquals(sides, files.map((_, i): Split => i === lowest ? "val" : "train"));
});

Deno.test("a category with one file is a UserError naming it and the count", () => {
  const files = [...fakeFiles(4, ["coin"], "one"), { sha256: "00".repeat(32), category: "laser" }];
  const e = assertThrows(() => splitFiles(files, 1, 0.2, { step: "scan" }), 'category "laser"');
  assert(e instanceof UserError);
  assertStringIncludes(e.message, "has 1 file");
  assertEquals(e.location.step, "scan");
});

Deno.test("three-way split: test below `test`, val next, train the rest, by score", () => {
  const files = fakeFiles(4000, ["x"], "three");
  const fr = { val: 0.15, test: 0.2 };
  const sides = files.map((f) => splitOf(f.sha256, 3, fr));
  const share = (s: Split) => sides.filter((x) => x === s).length / files.length;
  assert(Math.abs(share("test") - 0.2) < 0.03, `test share ${share("test")}`);
  assert(Math.abs(share("val") - 0.15) < 0.03, `val share ${share("val")}`);
  files.forEach((f, i) => {
    const score = splitScore(f.sha256, 3);
    const expected: Split = score < 0.2 ? "test" : score < 0.35 ? "val" : "train";
    assertEquals(sides[i], expected);
  });
  // A test share of 0 is the two-way split.
  assertEquals(
    files.map((f) => splitOf(f.sha256, 3, { val: 0.2, test: 0 })),
    files.map((f) => splitOf(f.sha256, 3, 0.2)),
  );
});

Deno.test("three-way splitFiles: every category of >= 3 files gets all three sides; 2 files is an error", () => {
  const cats = Array.from({ length: 30 }, (_, i) => `c${i}`);
  for (
    const fr of [{ val: 0.05, test: 0.05 }, { val: 0.2, test: 0.2 }, { val: 0.01, test: 0.98 }]
  ) {
    const files = fakeFiles(90, cats, `three${fr.test}`);
    const sides = splitFiles(files, 9, fr);
    for (const c of cats) {
      const mine = sides.filter((_, i) => files[i].category === c);
      assertEquals(mine.slice().sort(), ["test", "train", "val"], `category ${c} at ${fr.test}`);
    }
  }
  const two = fakeFiles(4, ["a", "b"], "two");
  const e = assertThrows(() => splitFiles(two, 1, { val: 0.2, test: 0.2 }), "at least 3");
  assert(e instanceof UserError);
});

Deno.test("three-way: adding files never moves old ones", () => {
  const cats = ["coin", "laser", "jump"];
  const old = fakeFiles(90, cats, "old3");
  const added = fakeFiles(200, cats, "new3");
  const fr = { val: 0.2, test: 0.2 };
  const before = splitFiles(old, 11, fr);
  const after = splitFiles([...added.slice(0, 100), ...old, ...added.slice(100)], 11, fr);
  assertEquals(after.slice(100, 190), before);
});

Deno.test("splitFiles names every category too small for the split in one error", () => {
  const files = [
    ...fakeFiles(6, ["big"], "every"),
    ...fakeFiles(1, ["one"], "every1"),
    ...fakeFiles(2, ["two"], "every2"),
  ];
  const e = assertThrows(() => splitFiles(files, 1, { val: 0.2, test: 0.2 }), "2 categories");
  assert(e instanceof UserError);
  assertStringIncludes(e.message, '"one" has 1 file, "two" has 2 files');
  assertEquals(e.found, '1 in "one", 2 in "two"');
  // "one" has too few files even for a two-way split, so test_fraction 0 is no way out.
  assert(!e.hint!.includes("test_fraction"), e.hint);
});

Deno.test("requiredSides: test, val and train with a test share; val and train without", () => {
  assertEquals(requiredSides({ val: 0.2, test: 0.1 }), ["test", "val", "train"]);
  assertEquals(requiredSides({ val: 0.2, test: 0 }), ["val", "train"]);
  assertEquals(requiredSides(0.2), ["val", "train"]);
  assertEquals(splitName({ val: 0.2, test: 0.1 }), "train/validation/test");
});
