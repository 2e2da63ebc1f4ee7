// Test models: the tiny fixture converted on the fly (a fraction of a second), and edited
// copies of it for the loader's bad-input tests.
import { cpSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convert } from "../../lib/convert/index.js";
import { GgufFile, type GgufTensorInfo } from "../../lib/formats/gguf-reader.js";
import { GGUF_KEY_ALIGNMENT, GgufWriter, type GgufValue } from "../../lib/formats/gguf-writer.js";

export const fixtures = new URL("../fixtures/", import.meta.url).pathname;
export const tinyJsd = join(fixtures, "tiny-jsd");
export const referenceCases = join(fixtures, "reference");
export const tinySafetyCheckerFixture = join(fixtures, "tiny-safety-checker");
export const safetyCheckerCases = join(referenceCases, "safety_checker");

const scratch = mkdtempSync(join(tmpdir(), "jsd-test-models-"));
const converted = new Map<string, Promise<string>>();

/** The tiny model converted with one type for every network ("f32" keeps everything f32). */
export function tinyModel(type: "f32" | "f16" | "q8_0" | "q4_0" = "f32"): Promise<string> {
  let path = converted.get(type);
  if (!path) {
    const out = join(scratch, `tiny-${type}.gguf`);
    path = convert(tinyJsd, out, { type, textEncoderType: type, vaeType: type === "f32" ? "f32" : "f16" }).then(() => out);
    converted.set(type, path);
  }
  return path;
}

/**
 * A copy of tiny-jsd with tiny-safety-checker laid over it: a diffusers folder shaped like rinna's
 * whole repository (safety_checker/, feature_extractor/, a model_index.json naming them). Tests
 * that break one of its files take their own copy (`name`).
 */
export function tinySafetyFolder(name = "tiny-safety"): string {
  const folder = join(scratch, name);
  if (!existsSync(folder)) {
    cpSync(tinyJsd, folder, { recursive: true });
    cpSync(tinySafetyCheckerFixture, folder, { recursive: true });
  }
  return folder;
}

/** The overlay folder converted (text encoder and checker of `type`; the VAE f32 for "f32", else f16). */
export function tinySafetyModel(type: "f32" | "f16" | "q8_0" | "q4_0" = "f32"): Promise<string> {
  const key = `safety-${type}`;
  let path = converted.get(key);
  if (!path) {
    const out = join(scratch, `tiny-safety-${type}.gguf`);
    path = convert(tinySafetyFolder(), out, { type, textEncoderType: type, vaeType: type === "f32" ? "f32" : "f16" }).then(() => out);
    converted.set(key, path);
  }
  return path;
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
