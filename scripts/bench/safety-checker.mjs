// The bench's safety-checker phase (npm run bench -- --safety-checker): what rinna's safety checker
// costs per image, on a full-size random checker (CLIP ViT-L/14: 24 layers, 1024 wide, 304 M
// parameters), 1 thread, per weight type, in a fresh child process each.
//
// The model files: <cache>/sd1-random-sc/ is the random folder's networks (links to
// <cache>/sd1-random/) with a random checker added (scripts/make-random-model.mjs
// --add-safety-checker), converted per type to <cache>/sd1-random-sc-<type>.gguf (the checker's
// matrices take the text encoder's type, as jsd convert does).
//
// The child times, on one 512×512 RGBA image (what generate() hands the checker) and 1 thread:
//   featureExtractorCpuSeconds   the feature extractor (PIL bicubic to 224, crop, normalise)
//   embedCpuSeconds              the vision tower and projection (median of `reps` runs after a warm-up)
//   cpuSecondsPerImage           their sum, plus the decisions (microseconds)
// A batch of 4 is timed too (embedBatch4CpuSecondsPerImage): generate()'s numImages run in one call.
import { copyFile, lstat, mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { spawn } from "node:child_process";
import { baseType } from "./models.mjs";
import { runChild } from "./run-child.mjs";

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Child side (scripts/bench/child.mjs, job.mode "safety"). */
export async function runSafetyCheckerChild(root, job, log) {
  const { loadModel } = await import(pathToFileURL(join(root, "dist/index.js")).href);
  const { checkImages, extractFeatures } = await import(pathToFileURL(join(root, "dist/safety/index.js")).href);
  const model = await loadModel(job.model, { backend: job.backend ?? "cpu", threads: 1 });
  try {
    const checker = model.safetyChecker;
    if (!checker) throw new Error(`${job.model} has no safety checker`);
    const side = 512;
    const rgba = new Uint8Array(side * side * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 2654435761) >>> 24));
    const image = { data: rgba, width: side, height: side, channels: 4 };
    let c0 = cpuSeconds();
    const { pixelValues } = extractFeatures([image], checker.featureExtractor);
    const featureExtractorCpuSeconds = cpuSeconds() - c0;
    log(`feature extractor: ${featureExtractorCpuSeconds.toFixed(3)} CPU-s`);
    await model.embedImages(pixelValues, 1); // warm-up: graph build, first touch of the weights
    const samples = [];
    for (let r = 0; r < job.reps; r++) {
      c0 = cpuSeconds();
      await model.embedImages(pixelValues, 1);
      samples.push(cpuSeconds() - c0);
      log(`embed ${r + 1}/${job.reps}: ${samples.at(-1).toFixed(2)} CPU-s`);
    }
    const batch = new Float32Array(4 * pixelValues.length);
    for (let b = 0; b < 4; b++) batch.set(pixelValues, b * pixelValues.length);
    c0 = cpuSeconds();
    await model.embedImages(batch, 4);
    const embedBatch4CpuSecondsPerImage = (cpuSeconds() - c0) / 4;
    c0 = cpuSeconds();
    await checkImages([image], checker);
    const wholeCheckCpuSeconds = cpuSeconds() - c0;
    const embedCpuSeconds = median(samples);
    return {
      mode: "safety",
      featureExtractorCpuSeconds,
      embedCpuSeconds,
      embedCpuSamples: samples,
      embedBatch4CpuSecondsPerImage,
      wholeCheckCpuSeconds,
      cpuSecondsPerImage: featureExtractorCpuSeconds + embedCpuSeconds,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    await model.close();
  }
}

async function exists(path) {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** <cache>/sd1-random-sc: the random networks linked, a random checker added once. */
async function ensureCheckerFolder(root, cache, randomFolder, log) {
  const folder = join(cache, "sd1-random-sc");
  await mkdir(folder, { recursive: true });
  for (const entry of await readdir(randomFolder)) {
    if (entry === "model_index.json" || entry === "safety_checker" || entry === "feature_extractor") continue;
    if (!(await exists(join(folder, entry)))) await symlink(join(randomFolder, entry), join(folder, entry));
  }
  if (await exists(join(folder, "safety_checker/model.safetensors"))) return folder;
  await copyFile(join(randomFolder, "model_index.json"), join(folder, "model_index.json"));
  log(`writing a random full-size safety checker to ${folder} (1.2 GB, once)`);
  await new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(root, "scripts/make-random-model.mjs"), folder, "--add-safety-checker"], { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", fail);
    child.on("exit", (code) => (code === 0 ? done() : fail(new Error(`make-random-model.mjs --add-safety-checker exited with ${code}`))));
  });
  return folder;
}

/** Parent side: one child per type; its entries are the JSON's `safetyChecker`. */
export async function measureSafetyChecker(args, randomFolder, log) {
  const entries = [];
  if (!args.safetyChecker) return entries;
  const { root, cache } = args;
  const folder = await ensureCheckerFolder(root, cache, randomFolder, log);
  const { convert } = await import(pathToFileURL(join(root, "dist/convert/index.js")).href);
  for (const type of [...new Set(args.types.map(baseType))]) {
    const e = { type, imageSize: 512, threads: 1, cpuSecondsPerImage: null, featureExtractorCpuSeconds: null, embedCpuSeconds: null, errors: [] };
    entries.push(e);
    const path = join(cache, `sd1-random-sc-${type}.gguf`);
    try {
      if (!(await exists(path)) || args.reconvert) {
        log(`converting ${folder} to ${path}`);
        await convert(folder, path, { type, textEncoderType: type, vaeType: "f16", force: true });
      }
      log(`bench: safety checker, ${type}, 1 thread`);
      const r = await runChild({ mode: "safety", tag: `safety ${type}`, model: path, backend: args.backend, reps: args.reps }, args.timeout);
      if (r.error) e.errors.push(r.error);
      else {
        const { mode, ...figures } = r.result;
        Object.assign(e, figures);
      }
    } catch (error) {
      e.errors.push(error.message);
    }
    if (e.errors.length === 0) delete e.errors;
  }
  return entries;
}
