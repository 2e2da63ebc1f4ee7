// The model file's own checksum (MODEL_KEYS.dataSha256, jsd.data_sha256), written by the converter over the tensor data.
import { JsdError } from "./errors.js";
import { GgufFile } from "./formats/gguf-reader.js";
import { MODEL_KEYS } from "./formats/model-keys.js";

export interface ChecksumResult {
  expected: string | null;
  actual: string;
  ok: boolean;
}

/** Recomputes the SHA-256 of a model file's tensor data and compares it with the stored one. */
export async function checkModelChecksum(file: GgufFile): Promise<ChecksumResult> {
  const stored = file.metadata.get(MODEL_KEYS.dataSha256);
  const expected = stored?.type === "string" ? String(stored.value) : null;
  const actual = await file.computeDataSha256();
  return { expected, actual, ok: expected !== null && expected === actual };
}

/** Throws JSD_BAD_MODEL unless the file's tensor data match its stored checksum. */
export async function verifyModelFile(path: string): Promise<void> {
  const file = await GgufFile.open(path);
  try {
    const { expected, ok } = await checkModelChecksum(file);
    if (expected === null) throw new JsdError("JSD_BAD_MODEL", `${path} has no ${MODEL_KEYS.dataSha256} to verify`);
    if (!ok) throw new JsdError("JSD_BAD_MODEL", `${path}: the tensor data do not match ${MODEL_KEYS.dataSha256} (the file is corrupted)`);
  } finally {
    await file.close();
  }
}
