// Test models: the tiny fixture converted on the fly (a fraction of a second), and edited
// copies of it for the loader's bad-input tests.
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convert } from "../../lib/convert/index.js";
import { GgufFile, type GgufTensorInfo } from "../../lib/formats/gguf-reader.js";
import { GGUF_KEY_ALIGNMENT, GgufWriter, type GgufValue } from "../../lib/formats/gguf-writer.js";

export const fixtures = new URL("../fixtures/", import.meta.url).pathname;
export const tinyJsd = join(fixtures, "tiny-jsd");
/** The tiny safety checker and feature extractor, to lay over tiny-jsd (its README). */
export const tinySafetyChecker = join(fixtures, "tiny-safety-checker");
export const referenceCases = join(fixtures, "reference");

const scratch = mkdtempSync(join(tmpdir(), "jsd-test-models-"));
const converted = new Map<string, Promise<string>>();

type TinyType = "f32" | "f16" | "q8_0" | "q4_0";

/** A diffusers folder converted with one type for every network ("f32" keeps everything f32), once per name. */
function convertOnce(name: string, folder: () => string, type: TinyType): Promise<string> {
  let path = converted.get(name);
  if (!path) {
    const out = join(scratch, `${name}.gguf`);
    path = convert(folder(), out, { type, textEncoderType: type, vaeType: type === "f32" ? "f32" : "f16" }).then(() => out);
    converted.set(name, path);
  }
  return path;
}

/** The tiny model converted with one type for every network ("f32" keeps everything f32). */
export function tinyModel(type: TinyType = "f32"): Promise<string> {
  return convertOnce(`tiny-${type}`, () => tinyJsd, type);
}

/** The tiny model with the tiny safety checker laid over it (rinna's full layout), converted likewise. */
export function tinySafetyModel(type: TinyType = "f32"): Promise<string> {
  return convertOnce(`tiny-safety-${type}`, () => {
    const folder = join(scratch, `tiny-safety-${type}`);
    cpSync(tinyJsd, folder, { recursive: true });
    cpSync(tinySafetyChecker, folder, { recursive: true });
    return folder;
  }, type);
}

export function scratchPath(name: string): string {
  return join(scratch, name);
}

export interface GgufEdit {
  dropTensor?: string;
  /** New ggml shape for a tensor (its bytes are cut or zero-padded to fit). */
  reshape?: { name: string; ne: number[] };
  setMetadata?: Record<string, GgufValue>;
  dropMetadata?: string[];
}

/** Writes a copy of a GGUF file with one thing changed. */
export async function editGguf(source: string, target: string, edit: GgufEdit): Promise<string> {
  const file = await GgufFile.open(source);
  try {
    const metadata = [...file.metadata.entries()].filter(([k]) => k !== GGUF_KEY_ALIGNMENT && !edit.dropMetadata?.includes(k));
    for (const [k, v] of Object.entries(edit.setMetadata ?? {})) {
      const i = metadata.findIndex(([key]) => key === k);
      if (i >= 0) metadata[i] = [k, v];
      else metadata.push([k, v]);
    }
    const tensors = file.tensors.filter((t) => t.name !== edit.dropTensor);
    const specs = tensors.map((t: GgufTensorInfo) => {
      if (edit.reshape?.name !== t.name) return { name: t.name, ne: t.ne, ggmlType: t.ggmlType, nbytes: t.nbytes };
      const nbytes = (t.nbytes / t.nelements) * edit.reshape.ne.reduce((a, b) => a * b, 1);
      return { name: t.name, ne: edit.reshape.ne, ggmlType: t.ggmlType, nbytes };
    });
    const writer = await GgufWriter.create(target, metadata, specs);
    for (let i = 0; i < tensors.length; i++) {
      const data = await file.readTensor(tensors[i].name);
      const out = new Uint8Array(specs[i].nbytes);
      out.set(data.subarray(0, Math.min(data.length, out.length)));
      await writer.writeTensor(out);
    }
    await writer.finish();
  } finally {
    await file.close();
  }
  return target;
}
