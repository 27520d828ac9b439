/**
 * File-system faults of the store turned into errors a user can act on: a full
 * disk, a read-only file system, missing permissions, a file where a folder
 * should be. Anything else is left as it is (a bug, shown with its stack).
 *
 * @module
 */
import { UserError } from "../errors/mod.ts";

/** The OS error code of a Deno file-system error (`ENOSPC`, `EROFS`, …), if it has one. */
export function fsErrorCode(e: unknown): string | undefined {
  if (e instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (e instanceof Deno.errors.NotADirectory) return "ENOTDIR";
  if (e instanceof Deno.errors.IsADirectory) return "EISDIR";
  if (e instanceof Deno.errors.AlreadyExists) return "EEXIST";
  if (e instanceof Deno.errors.NotFound) return "ENOENT";
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The path a Deno file-system error names (`… : writefile '/x/y'`), if any. */
export function fsErrorPath(e: unknown): string | undefined {
  const m = /: [a-z_]+ '([^']+)'(?: -> '[^']+')?$/.exec(e instanceof Error ? e.message : "");
  return m?.[1];
}

/** Codes that mean "the disk the store is on cannot take this write". */
const STORE_FAULT_CODES = new Set(["ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOTDIR"]);

/**
 * A {@link UserError} for a store fault, or undefined when `e` is not one.
 *
 * @param e the error thrown by a file-system call
 * @param storeRoot the store's directory (named in the message)
 * @param doing what was being done, e.g. `writing the artifact of step "train"`
 */
export function storeFaultError(
  e: unknown,
  storeRoot: string,
  doing: string,
): UserError | undefined {
  if (e instanceof UserError) return undefined;
  const code = fsErrorCode(e);
  if (!code || !STORE_FAULT_CODES.has(code)) return undefined;
  const named = fsErrorPath(e);
  const inStore = named === undefined || named === storeRoot || named.startsWith(`${storeRoot}/`);
  // A full disk is the disk's fault wherever the write went; the others are the store's only in it.
  if (!inStore && code !== "ENOSPC" && code !== "EDQUOT") return undefined;
  const found = e instanceof Error ? e.message : String(e);
  const storeHint = `or give --store DIR (or SAMOUT_STORE) on another disk`;
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return new UserError(`the disk is full (${doing}), store ${storeRoot}`, {
        found,
        hint: `free space on that disk (this run's unfinished files were removed; ` +
          `\`du -sh ${storeRoot}/*\` shows what the store holds), ${storeHint}, ` +
          `then run the same command again`,
      });
    case "EROFS":
      return new UserError(`the store ${storeRoot} is on a read-only file system (${doing})`, {
        found,
        hint: `remount it read-write, ${storeHint}; runs where every step is cached need no writes`,
      });
    case "EACCES":
    case "EPERM":
      return new UserError(`no permission to write in the store ${storeRoot} (${doing})`, {
        found,
        hint: `make ${storeRoot} writable for this user (chown/chmod), ${storeHint}`,
      });
    case "ENOTDIR":
      return new UserError(
        `a file is in the way of a folder of the store ${storeRoot} (${doing})`,
        {
          found,
          hint: `the store must be a folder made by this tool; move the file away, ${storeHint}`,
        },
      );
  }
  return undefined;
}

/** Options of {@link checkStorePath}. */
export interface StorePathCheck {
  /**
   * The store must already exist (commands that read or clean a store: a
   * missing one is a mistyped path, not a store to create).
   */
  mustExist?: boolean;
}

/**
 * Checks a store path before anything is read or written: it must be a
 * folder, or (unless `mustExist`) not exist yet (it is then created on the
 * first write). Throws a {@link UserError} naming the path otherwise.
 */
export function checkStorePath(root: string, options: StorePathCheck = {}): void {
  const expected = options.mustExist
    ? "the folder of an artifact store (with objects/ and runs/, made by a pipeline run)"
    : "a folder for the artifact store, or a path where one can be created";
  const hint = "give --store DIR (or SAMOUT_STORE) naming the store a pipeline ran with";
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (!options.mustExist) return;
      throw new UserError(`the artifact store ${root} does not exist`, {
        field: "--store",
        expected,
        found: "no such folder",
        hint,
      });
    }
    if (e instanceof Deno.errors.NotADirectory) {
      throw new UserError(`the store path runs through a file: ${root}`, {
        field: "--store",
        expected,
        found: "a file where a folder of that path should be",
        hint,
      });
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`cannot reach the store ${root}`, {
        field: "--store",
        expected,
        found: e.message,
        hint: `make ${root} readable for this user, or ${hint}`,
      });
    }
    throw e;
  }
  if (!info.isDirectory) {
    throw new UserError(`the store path is a file, not a folder: ${root}`, {
      field: "--store",
      expected,
      found: "a file",
      hint: `${hint}, or move the file away`,
    });
  }
}
