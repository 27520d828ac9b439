/**
 * The store-wide lock between pipeline runs and clean-up: every run holds it
 * shared for as long as it runs (so many runs share a store at once), and
 * `gc` holds it exclusively (so it never removes an artifact a running
 * pipeline has found cached and is about to read). `locks/store.lock` is an
 * flock, released by the kernel when a process dies.
 *
 * @module
 */

/** Releases the lock. */
export type StoreLockRelease = () => void;

/**
 * Takes the store lock (`exclusive` for gc). Resolves once held; `onWait` is
 * called if it is not free within a second. Returns undefined when the lock
 * file cannot be opened (a read-only store: nothing can be removed from it
 * by this user anyway).
 */
export async function lockStore(
  root: string,
  exclusive: boolean,
  onWait?: () => void,
): Promise<StoreLockRelease | undefined> {
  let file: Deno.FsFile;
  try {
    Deno.mkdirSync(`${root}/locks`, { recursive: true });
    file = Deno.openSync(`${root}/locks/store.lock`, { read: true, write: true, create: true });
  } catch {
    return undefined;
  }
  const note = onWait ? setTimeout(onWait, 1000) : undefined;
  try {
    await file.lock(exclusive);
  } finally {
    clearTimeout(note);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    file.close();
  };
}
