// Where the CLI writes images: never over an existing file unless --force (numbered names
// instead), always through a temporary name renamed into place, so a failure leaves nothing
// half-written.
import { existsSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { JsdError } from "../errors.js";

/** `base`, or `base-1`, `base-2`, … : the first name not taken (and not already chosen). */
export function freePath(path: string, taken: ReadonlySet<string> = new Set()): string {
  const ext = extname(path);
  const stem = join(dirname(path), basename(path, ext));
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? path : `${stem}-${i}${ext}`;
    if (!existsSync(candidate) && !taken.has(candidate)) return candidate;
  }
}

/** Names for `count` outputs based on `path`: numbered when needed, or overwritten with force. */
export function outputPaths(path: string, count: number, force: boolean): string[] {
  const ext = extname(path);
  const stem = join(dirname(path), basename(path, ext));
  if (force) return Array.from({ length: count }, (_, i) => (i === 0 ? path : `${stem}-${i}${ext}`));
  const chosen = new Set<string>();
  return Array.from({ length: count }, () => {
    const p = freePath(path, chosen);
    chosen.add(p);
    return p;
  });
}

/** Writes through `<path>.tmp-<pid>` and renames; a failure removes the temporary file. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data, { flag: "wx" });
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOSPC" ? "the disk is full" : code === "EACCES" || code === "EPERM" || code === "EROFS" ? "the folder is not writable" : (error as Error).message;
    throw new JsdError("JSD_IO", `cannot write ${path}: ${why}`, { cause: error });
  }
}
