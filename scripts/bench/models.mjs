// The benchmark's model files, made once in the ignored cache folder (.cache/ by default):
//
//   <cache>/sd1-random/             full-size SD v1 / JSD diffusers folder, random f32 weights
//                                   (scripts/make-random-model.mjs, configs from test/fixtures/sd1-full-configs)
//   <cache>/sd1-random-<type>.gguf  that folder converted with convert() (UNet and text encoder
//                                   in <type>, VAE in f16)
//
// Idempotent: the folder is checked (every weight file's size must match its safetensors header)
// and regenerated into a temporary folder, then renamed, only when missing or broken; a model
// file is converted when missing, older than the folder's weights, or when `reconvert` is set
// (convert() itself writes to a temporary file and renames it when complete).
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { splitVariant } from "./kernels.mjs";

const WEIGHTS = ["text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"];
const CONFIGS = ["model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/spiece.model"];

async function statOrNull(path) {
  try {
    return await stat(path);
  } catch (error) {
    if (error.code === "ENOENT") return null;
    throw error;
  }
}

/** Why a safetensors file is not complete, or null when its size matches its header. */
async function safetensorsProblem(path) {
  const s = await statOrNull(path);
  if (!s) return "missing";
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    const headerLength = Number(head.readBigUInt64LE(0));
    if (headerLength <= 0 || headerLength > 100 * 2 ** 20 || headerLength + 8 > s.size) return "bad header";
    const json = Buffer.alloc(headerLength);
    await fh.read(json, 0, headerLength, 8);
    const header = JSON.parse(json.toString("utf8"));
    let end = 0;
    for (const [name, t] of Object.entries(header)) if (name !== "__metadata__") end = Math.max(end, t.data_offsets[1]);
    const expected = 8 + headerLength + end;
    return s.size === expected ? null : `size ${s.size}, header says ${expected}`;
  } catch (error) {
    return `unreadable (${error.message})`;
  } finally {
    await fh.close();
  }
}

/** Problems of a random-model folder; empty when complete. */
export async function folderProblems(folder) {
  const problems = [];
  for (const rel of CONFIGS) if (!(await statOrNull(join(folder, rel)))) problems.push(`${rel}: missing`);
  for (const rel of WEIGHTS) {
    const p = await safetensorsProblem(join(folder, rel));
    if (p) problems.push(`${rel}: ${p}`);
  }
  return problems;
}

// What is being made right now, so that an interrupted run can clean up after itself.
const inFlight = { child: undefined, tmp: undefined, conversion: undefined };

/**
 * Stops the model preparation in progress (on SIGINT): kills make-random-model.mjs and removes its
 * temporary folder at once; aborts a conversion, which removes its temporary file itself and then
 * rejects. Returns true when a conversion was aborted (the caller should let it settle).
 */
export function abortPreparation() {
  if (inFlight.child?.pid && inFlight.child.exitCode === null) inFlight.child.kill("SIGKILL");
  if (inFlight.tmp) rmSync(inFlight.tmp, { recursive: true, force: true });
  if (inFlight.conversion) {
    inFlight.conversion.abort();
    return true;
  }
  return false;
}

function runNode(args, log) {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    inFlight.child = child;
    const forward = (chunk) => {
      for (const line of chunk.toString().split("\n")) if (line.trim()) log(`  ${line}`);
    };
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.on("error", fail);
    child.on("exit", (code, signal) => {
      inFlight.child = undefined;
      if (code === 0) done();
      else fail(new Error(`${args[0]} exited with ${signal ?? code}`));
    });
  });
}

/** Makes sure <cache>/sd1-random is complete; returns { folder, regenerated }. */
export async function ensureRandomFolder({ root, cache, log }) {
  const folder = join(cache, "sd1-random");
  const exists = await statOrNull(folder);
  const problems = exists ? await folderProblems(folder) : ["missing"];
  if (problems.length === 0) return { folder, regenerated: false };
  log(exists ? `${folder} is incomplete (${problems.join("; ")}): regenerating it` : `writing the random full-size model to ${folder} (about 4.3 GB, once)`);
  const tmp = `${folder}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  inFlight.tmp = tmp;
  try {
    await runNode([join(root, "scripts/make-random-model.mjs"), tmp, "--configs", join(root, "test/fixtures/sd1-full-configs")], log);
    const left = await folderProblems(tmp);
    if (left.length) throw new Error(`make-random-model.mjs wrote an incomplete folder: ${left.join("; ")}`);
    if (exists) await rm(folder, { recursive: true, force: true });
    await rename(tmp, folder);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw error;
  } finally {
    inFlight.tmp = undefined;
  }
  return { folder, regenerated: true };
}

/** "<type>+cpu" names a file converted with cpuLayout (jsd convert --cpu-layout); this is <type>. */
export function baseType(type) {
  return type.replace(/\+cpu$/, "");
}

export function modelPath(cache, type) {
  return join(cache, `sd1-random-${type}.gguf`);
}

/** Makes sure the model file of `type` exists and is newer than the folder; returns its path. */
export async function ensureConverted({ root, cache, folder, type, force, log }) {
  const out = modelPath(cache, type);
  const have = await statOrNull(out);
  let reason = force ? (typeof force === "string" ? force : "forced") : have ? null : "missing";
  if (!reason) {
    for (const rel of WEIGHTS) {
      const s = await statOrNull(join(folder, rel));
      if (s && s.mtimeMs > have.mtimeMs) reason = `older than ${rel}`;
    }
  }
  if (!reason) return { path: out, converted: false };
  const { convert } = await import(pathToFileURL(join(root, "dist/convert/index.js")).href);
  log(`converting to ${out} (${reason})`);
  let lastTenth = -1;
  const controller = new AbortController();
  inFlight.conversion = controller;
  const base = baseType(type);
  const result = await convert(folder, out, {
    signal: controller.signal,
    type: base,
    vaeType: "f16",
    textEncoderType: base,
    cpuLayout: base !== type,
    force: true,
    onProgress: ({ index, total }) => {
      const tenth = Math.floor(((index + 1) * 10) / total);
      if (tenth !== lastTenth) {
        lastTenth = tenth;
        log(`  ${type}: ${tenth * 10} %`);
      }
    },
  }).finally(() => (inFlight.conversion = undefined));
  log(`  ${type}: ${(result.size / 2 ** 20).toFixed(0)} MiB in ${result.seconds.toFixed(1)} s (${Object.entries(result.tensorTypes).map(([t, n]) => `${n} ${t}`).join(", ")})`);
  return { path: out, converted: true };
}

/** Phase 1: the random model folder and each type's model file (made once, then reused). */
export async function prepareModels(args, { root, log, exitIfInterrupted }) {
  const models = {};
  await mkdir(args.cache, { recursive: true });
  let folder;
  let folderError;
  try {
    folder = await ensureRandomFolder({ root, cache: args.cache, log });
  } catch (error) {
    exitIfInterrupted();
    folderError = `random model: ${error.message}`;
    log(`bench: ${folderError}`);
  }
  // Kernel variants ("q8_0+avx2") run their type's file, prepared once.
  for (const type of new Set(args.types.map((t) => splitVariant(t).type))) {
    if (!folder) {
      // Without the folder, model files already converted can still be benchmarked.
      const path = modelPath(args.cache, type);
      models[type] = (await stat(path).catch(() => null)) ? { path } : { error: folderError };
      continue;
    }
    try {
      const { path } = await ensureConverted({ root, cache: args.cache, folder: folder.folder, type, force: args.reconvert ? "--reconvert" : folder.regenerated ? "the random model was just written" : false, log });
      models[type] = { path, bytes: (await stat(path)).size };
    } catch (error) {
      exitIfInterrupted();
      models[type] = { error: `convert: ${error.code ? `${error.code}: ` : ""}${error.message}` };
      log(`bench: ${type}: ${models[type].error}`);
    }
  }
  for (const type of args.types) models[type] = models[splitVariant(type).type];

  return { models, folder: folder?.folder };
}
