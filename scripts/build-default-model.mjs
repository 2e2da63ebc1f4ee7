#!/usr/bin/env node
// Converts the embedded default model (models/tiny-jsd-shapes, a diffusers folder trained by
// this project) into the GGUF that loadModel() uses when no path is given. Skips the work when
// the GGUF is newer than every source file and of the converter's format version. Needs the TS
// build (dist/).
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "models", "tiny-jsd-shapes");
const target = join(root, "models", "tiny-jsd-shapes.gguf");

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

async function currentFormat(path) {
  const { GgufFile } = await import(join(root, "dist", "formats", "gguf-reader.js"));
  const { MODEL_FORMAT_VERSION, MODEL_KEYS } = await import(join(root, "dist", "formats", "model-keys.js"));
  const file = await GgufFile.open(path);
  try {
    return file.getNumber(MODEL_KEYS.formatVersion) === MODEL_FORMAT_VERSION;
  } catch {
    return false;
  } finally {
    await file.close();
  }
}

if (existsSync(target) && statSync(target).mtimeMs >= newestMtime(source) && (await currentFormat(target))) {
  console.error(`default model: ${target} is up to date`);
} else {
  const { convert } = await import(join(root, "dist", "convert", "index.js"));
  // f32 keeps the embedded model numerically identical to the PyTorch reference (it is 28 MB).
  const result = await convert(source, target, { type: "f32", vaeType: "f32", force: true });
  console.error(`default model: wrote ${target} (${(result.size / 1e6).toFixed(1)} MB) in ${result.seconds.toFixed(1)} s`);
}
