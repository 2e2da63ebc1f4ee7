// Writes a .safetensors file (the format's header, then the tensors' bytes back to back): tests
// build edited checkpoints with it.
import { writeFile } from "node:fs/promises";
import type { RawTensor } from "../../lib/formats/safetensors.js";

export async function writeSafetensorsFile(path: string, tensors: ReadonlyArray<Omit<RawTensor, "data"> & { data: Uint8Array }>): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  await writeFile(path, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => t.data)]));
}
