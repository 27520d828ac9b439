/**
 * The token vocabulary and the two sequence layouts.
 *
 * Ids: `<|pad|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2, `<|wav|>` = 3,
 * then the category names sorted (by UTF-16 code units), then the audio codes
 * "0".."K-1".
 *
 * - "seed" (the original project's layout): `<|im_start|> a_1 … a_n <category> <|im_end|>`;
 *   the model hears the clip and then names it.
 * - "label-first": `<|im_start|> <category> <|wav|> a_1 … a_n <|im_end|>`;
 *   the model generates audio for a named category.
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";
import type { Vocabulary } from "./types.ts";

/** The special tokens, by id. */
export const SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|wav|>"] as const;

/** The sequence layouts. */
export type Layout = Vocabulary["layout"];

/** Where a problem was found, for the `UserError`s of {@link buildVocabulary}. */
export interface VocabLocation {
  file?: string;
  step?: string;
}

/**
 * Builds the vocabulary for `categories` (any order, no duplicates) and a
 * codebook of `codebookSize` codes.
 *
 * @throws UserError when a category name is empty, duplicated, a special
 *   token or shaped like one (`<|…|>`), or digits only (it would read as a code)
 */
export function buildVocabulary(
  categories: readonly string[],
  codebookSize: number,
  layout: Layout,
  location: VocabLocation = {},
): Vocabulary {
  if (!Number.isInteger(codebookSize) || codebookSize < 1) {
    throw new UserError("invalid codebook size", {
      ...location,
      field: "codebook_size",
      expected: "a positive integer",
      found: String(codebookSize),
    });
  }
  if (categories.length === 0) {
    throw new UserError("there are no categories to build a vocabulary from", {
      ...location,
      expected: "at least one category",
      found: "none",
    });
  }
  const seen = new Set<string>();
  for (const name of categories) {
    const bad = (why: string) => {
      throw new UserError(`category name ${JSON.stringify(name)} cannot be a token: ${why}`, {
        ...location,
        field: "categories",
        expected:
          "non-empty names, unique, not digits only and not of the form <|…|> (reserved for special tokens)",
        found: JSON.stringify(name),
        hint: "rename the category's folder",
      });
    };
    if (name.length === 0) bad("it is empty");
    if (/^[0-9]+$/.test(name)) bad("digits-only names are audio codes");
    if (name.startsWith("<|") && name.endsWith("|>")) bad("<|…|> names are special tokens");
    if (seen.has(name)) bad("it appears twice");
    seen.add(name);
  }
  const sorted = [...categories].sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
  const categoryOffset = SPECIAL_TOKENS.length;
  const codeOffset = categoryOffset + sorted.length;
  const tokens: string[] = [...SPECIAL_TOKENS, ...sorted];
  for (let c = 0; c < codebookSize; c++) tokens.push(String(c));
  return {
    tokens,
    pad_id: 0,
    im_start_id: 1,
    im_end_id: 2,
    wav_id: 3,
    categories: sorted,
    category_offset: categoryOffset,
    code_offset: codeOffset,
    codebook_size: codebookSize,
    layout,
  };
}

/** Number of token ids (the model's vocabulary size). */
export function vocabularySize(vocab: Vocabulary): number {
  return vocab.code_offset + vocab.codebook_size;
}

/** The token id of a category; throws a `UserError` for an unknown one. */
export function categoryId(vocab: Vocabulary, category: string): number {
  const i = vocab.categories.indexOf(category);
  if (i < 0) {
    throw new UserError(`unknown category ${JSON.stringify(category)}`, {
      expected: `one of ${vocab.categories.map((c) => JSON.stringify(c)).join(", ")}`,
      found: JSON.stringify(category),
    });
  }
  return vocab.category_offset + i;
}

/** Tokens before the audio codes (`head`) and after them (`tail`) in a layout. */
export function layoutFraming(layout: Layout): { head: number; tail: number } {
  return layout === "seed" ? { head: 1, tail: 2 } : { head: 3, tail: 1 };
}

/**
 * Token ids of one clip in the vocabulary's layout (see the module doc):
 * `codes.length + 3` ids for "seed", `codes.length + 4` for "label-first".
 *
 * @param codes audio codes in `[0, codebook_size)`
 */
export function encodeSequence(
  vocab: Vocabulary,
  category: string,
  codes: Uint32Array | readonly number[],
): number[] {
  const cat = categoryId(vocab, category);
  const { head, tail } = layoutFraming(vocab.layout);
  const out = new Array<number>(head + codes.length + tail);
  let p = 0;
  out[p++] = vocab.im_start_id;
  if (vocab.layout === "label-first") {
    out[p++] = cat;
    out[p++] = vocab.wav_id;
  }
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (!(Number.isInteger(c) && c >= 0 && c < vocab.codebook_size)) {
      throw new RangeError(
        `encodeSequence: code ${c} at ${i} is not in [0, ${vocab.codebook_size})`,
      );
    }
    out[p++] = vocab.code_offset + c;
  }
  if (vocab.layout === "seed") out[p++] = cat;
  out[p++] = vocab.im_end_id;
  return out;
}

/**
 * The inverse of {@link encodeSequence}, lenient so it also reads model
 * output: audio codes are collected in order, the first category token gives
 * `category`, and special tokens (padding included) are skipped wherever
 * they are. Ids outside the vocabulary are a `RangeError`.
 */
export function decodeSequence(
  vocab: Vocabulary,
  ids: ArrayLike<number>,
): { category?: string; codes: number[] } {
  const size = vocabularySize(vocab);
  const codes: number[] = [];
  let category: string | undefined;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < size)) {
      throw new RangeError(`decodeSequence: id ${id} at ${i} is not in [0, ${size})`);
    }
    if (id >= vocab.code_offset) codes.push(id - vocab.code_offset);
    else if (id >= vocab.category_offset) {
      category ??= vocab.categories[id - vocab.category_offset];
    }
  }
  return category === undefined ? { codes } : { category, codes };
}

/**
 * Checks a parsed `vocab.json` against the {@link Vocabulary} contract (token
 * list consistent with the offsets, categories and codebook size) and returns
 * it typed; a `UserError` naming `file` otherwise.
 */
export function checkVocabulary(value: unknown, file: string): Vocabulary {
  const fail = (what: string): never => {
    throw new UserError(`vocab.json is not a valid vocabulary: ${what}`, {
      file,
      expected: "the vocab.json written by the tokenize job",
    });
  };
  if (typeof value !== "object" || value === null) return fail("not an object");
  const v = value as Partial<Vocabulary>;
  if (v.layout !== "seed" && v.layout !== "label-first") return fail("layout");
  if (!Array.isArray(v.categories) || !Array.isArray(v.tokens)) return fail("tokens/categories");
  if (typeof v.codebook_size !== "number") return fail("codebook_size");
  let expected: Vocabulary;
  try {
    expected = buildVocabulary(v.categories as string[], v.codebook_size, v.layout, { file });
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  const same = (Object.keys(expected) as (keyof Vocabulary)[]).every((k) =>
    JSON.stringify(expected[k]) === JSON.stringify(v[k])
  );
  if (!same) {
    return fail("its tokens or offsets do not match its categories and codebook size");
  }
  return expected;
}
