import { open, type FileHandle } from "node:fs/promises";
import { JsdError } from "../errors.js";

/** Opens a file for reading; a missing or unreadable file is JSD_NOT_FOUND naming the path. */
export async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `cannot open ${path}: ${(error as Error).message}`, { cause: error });
  }
}
