#!/usr/bin/env node
// Writes a full-size SD v1 / JSD-shaped diffusers folder with random float32 weights, for
// benchmarks of the converter and the engine (no real weights needed).
//
//   npm run build:ts                      # the script uses the compiled dist/ (lib/convert/architecture.ts)
//   node scripts/make-random-model.mjs .cache/sd1-random [--configs test/fixtures/sd1-full-configs] [--seed 1] [--force]
//       [--safety-checker | --add-safety-checker]
//
// - Configs, model_index.json, scheduler and tokenizer configs are copied from --configs.
// - Tensor names and shapes are those diffusers 0.8.1 / transformers 4.25 build from the configs,
//   i.e. the 2022 checkpoints' names (VAE attention query/key/value/proj_attn, UNet proj_in/proj_out
//   as 1x1 convs, text encoder `text_model.*` with the int64 `position_ids` buffer). The counts are
//   checked against --configs/params.json (parameters and state-dict tensors) before writing.
// - Weights are float32 .safetensors (text_encoder/model.safetensors, unet|vae/diffusion_pytorch_model.safetensors),
//   written tensor by tensor in 4 MiB chunks: memory stays small (about 4.3 GB on disk for SD v1).
// - Values: a seeded xorshift PRNG, uniform with the std of N(0, 1/sqrt(fan_in)) for conv/linear
//   weights, std 0.5 for embeddings, 1 + std 0.1 for norm weights, std 0.1 for biases.
// - --safety-checker also writes rinna's safety checker at its real size (safety_checker/ with a
//   random CLIP ViT-L/14 vision tower, concept tables and thresholds; feature_extractor/) and a
//   model_index.json that names them, as rinna's does. --add-safety-checker adds just those to an
//   existing folder (the networks' 4.3 GB stay as they are). The checker's random thresholds flag
//   nothing in particular: the folder is for measuring its cost.
// - TOKENIZER: sd1-full-configs has no spiece.model, so test/fixtures/tiny-jsd/tokenizer/spiece.model
//   is copied. Its vocabulary has 8000 pieces while the text encoder keeps vocab_size 32000 (as in
//   the real JSD): token ids only reach 7999, which is fine for benchmarks (the converter accepts a
//   tokenizer smaller than the embedding table), but prompts tokenize differently from real JSD.
import { copyFile, mkdir, open, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function usage(message) {
  if (message) console.error(`make-random-model: ${message}`);
  console.error("usage: node scripts/make-random-model.mjs <out-folder> [--configs <folder>] [--seed <n>] [--force] [--safety-checker | --add-safety-checker]");
  process.exit(2);
}

function parseArgs(argv) {
  const args = { out: undefined, configs: join(root, "test/fixtures/sd1-full-configs"), seed: 1, force: false, safetyChecker: false, addSafetyChecker: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--configs") args.configs = argv[++i] ?? usage("--configs needs a folder");
    else if (a === "--seed") args.seed = Number(argv[++i] ?? usage("--seed needs a number"));
    else if (a === "--force") args.force = true;
    else if (a === "--safety-checker") args.safetyChecker = true;
    else if (a === "--add-safety-checker") args.addSafetyChecker = true;
    else if (a === "-h" || a === "--help") usage();
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else if (args.out === undefined) args.out = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!args.out) usage("missing <out-folder>");
  if (!Number.isInteger(args.seed)) usage("--seed must be an integer");
  if (args.safetyChecker && args.addSafetyChecker) usage("--safety-checker and --add-safety-checker exclude each other");
  return args;
}

async function loadArchitecture() {
  const dist = join(root, "dist/convert/index.js");
  try {
    return await import(pathToFileURL(dist).href);
  } catch (error) {
    console.error(`make-random-model: cannot load ${dist} (${error.message.split("\n")[0]}); run \`npm run build:ts\` first`);
    process.exit(1);
  }
}

/** xorshift32 -> uniform floats in [-1, 1). One generator per tensor, seeded from (seed, tensor index). */
function makeRng(seed) {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0 || 1;
  return (out, n) => {
    let s = x;
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i] = (s | 0) * 4.656612873077393e-10; // / 2^31
    }
    x = s;
  };
}

const SQRT3 = Math.sqrt(3);

/** scale and offset so that offset + scale * U[-1, 1) has the intended mean and std. */
function distribution(t) {
  switch (t.role) {
    case "linear":
    case "conv":
    case "projection":
      return { offset: 0, scale: SQRT3 / Math.sqrt(t.fanIn) };
    case "embedding":
    case "position_embedding":
    case "table":
      return { offset: 0, scale: 0.5 * SQRT3 };
    case "vector":
      return t.vectorKind === "norm" ? { offset: 1, scale: 0.1 * SQRT3 } : { offset: 0, scale: 0.1 * SQRT3 };
    default:
      throw new Error(`no distribution for ${t.role}`);
  }
}

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

async function writeSafetensors(path, tensors, seedBase) {
  // The safetensors library's order: by name; all tensors here are 8-byte aligned anyway.
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of sorted) {
    const bytes = numel(t.shape) * (t.role === "buffer" ? 8 : 4);
    header[t.name] = { dtype: t.role === "buffer" ? "I64" : "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));

  const handle = await open(path, "w");
  try {
    let pos = 0;
    const put = async (data) => {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await handle.write(data, done, data.length - done, pos + done);
        done += bytesWritten;
      }
      pos += data.length;
    };
    await put(prefix);
    await put(Buffer.from(json));
    const CHUNK = 1 << 20; // values per chunk (4 MiB)
    const chunk = new Float32Array(CHUNK);
    const chunkBytes = new Uint8Array(chunk.buffer);
    for (const t of sorted) {
      const n = numel(t.shape);
      if (t.role === "buffer") {
        const ids = new BigInt64Array(n);
        for (let i = 0; i < n; i++) ids[i] = BigInt(i % t.shape[t.shape.length - 1]);
        await put(new Uint8Array(ids.buffer));
        continue;
      }
      const rng = makeRng(seedBase + tensors.indexOf(t));
      const { offset: mean, scale } = distribution(t);
      for (let done = 0; done < n; done += CHUNK) {
        const m = Math.min(CHUNK, n - done);
        rng(chunk, m);
        for (let i = 0; i < m; i++) chunk[i] = mean + scale * chunk[i];
        await put(chunkBytes.subarray(0, m * 4));
      }
    }
    return pos;
  } finally {
    await handle.close();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const arch = await loadArchitecture();
  const configs = resolve(args.configs);
  const out = resolve(args.out);
  const readJson = async (p) => JSON.parse(await readFile(join(configs, p), "utf8"));

  const te = arch.parseTextEncoderConfig("text_encoder/config.json", await readJson("text_encoder/config.json"));
  const unet = arch.parseUNetConfig("unet/config.json", await readJson("unet/config.json"));
  const vae = arch.parseVaeConfig("vae/config.json", await readJson("vae/config.json"));
  const networks = {
    text_encoder: { file: "model.safetensors", tensors: arch.textEncoderTensors(te) },
    unet: { file: "diffusion_pytorch_model.safetensors", tensors: arch.unetTensors(unet) },
    vae: { file: "diffusion_pytorch_model.safetensors", tensors: arch.vaeTensors(vae) },
  };
  const withChecker = args.safetyChecker || args.addSafetyChecker;
  const checker = withChecker
    ? { file: "model.safetensors", tensors: arch.safetyCheckerTensors(arch.parseSafetyCheckerConfig("safety_checker/config.json", await readJson("safety_checker/config.json"))) }
    : undefined;
  const components = args.addSafetyChecker ? { safety_checker: checker } : { ...networks, ...(checker ? { safety_checker: checker } : {}) };

  let params;
  try {
    params = await readJson("params.json");
  } catch {
    params = undefined;
  }
  for (const [name, c] of Object.entries(components)) {
    const count = c.tensors.length;
    const parameters = c.tensors.filter((t) => t.role !== "buffer").reduce((a, t) => a + numel(t.shape), 0);
    const want = params?.[name];
    const ok = !want || (want.state_dict_tensors === count && want.parameters === parameters);
    console.error(`${name}: ${count} tensors, ${parameters.toLocaleString("en-US")} parameters${want ? (ok ? " (matches params.json)" : ` but params.json says ${want.state_dict_tensors} / ${want.parameters}`) : ""}`);
    if (!ok) process.exit(1);
  }

  await mkdir(out, { recursive: true });
  const existing = await readdir(out);
  if (args.addSafetyChecker) {
    if (!existing.includes("model_index.json")) {
      console.error(`make-random-model: ${out} has no model_index.json: --add-safety-checker adds to a folder this script wrote`);
      process.exit(1);
    }
  } else if (existing.length > 0 && !args.force) {
    console.error(`make-random-model: ${out} is not empty (use --force to overwrite)`);
    process.exit(1);
  }
  const copied = args.addSafetyChecker
    ? []
    : [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json",
        "text_encoder/config.json",
        "unet/config.json",
        "vae/config.json",
      ];
  if (withChecker) copied.push("safety_checker/config.json", "feature_extractor/preprocessor_config.json");
  for (const rel of copied) {
    await mkdir(dirname(join(out, rel)), { recursive: true });
    await copyFile(join(configs, rel), join(out, rel));
  }
  if (withChecker) {
    // rinna's model_index.json names the two, as diffusers 0.8.1 wrote it.
    const index = JSON.parse(await readFile(join(out, "model_index.json"), "utf8"));
    index.safety_checker = ["stable_diffusion", "StableDiffusionSafetyChecker"];
    index.feature_extractor = ["transformers", "CLIPFeatureExtractor"];
    await writeFile(join(out, "model_index.json"), `${JSON.stringify(index, null, 2)}\n`);
  }
  if (!args.addSafetyChecker) {
    await copyFile(join(root, "test/fixtures/tiny-jsd/tokenizer/spiece.model"), join(out, "tokenizer/spiece.model"));
    await writeFile(
      join(out, "README.txt"),
      "Random weights with the shapes of SD v1 / Japanese Stable Diffusion, written by scripts/make-random-model.mjs.\n" +
        "tokenizer/spiece.model is the tiny fixture's (8000 pieces); the text encoder keeps vocab_size 32000.\n" +
        "For benchmarks only: the images are noise.\n",
    );
  }

  const started = performance.now();
  let total = 0;
  // The checker's seed comes after the three networks' whether it is written with them or added later.
  const seeds = { text_encoder: 0, unet: 1, vae: 2, safety_checker: 3 };
  for (const [name, c] of Object.entries(components)) {
    const seedBase = args.seed * 100003 + 10007 * seeds[name];
    const t0 = performance.now();
    await mkdir(join(out, name), { recursive: true });
    const bytes = await writeSafetensors(join(out, name, c.file), c.tensors, seedBase);
    total += bytes;
    console.error(`wrote ${name}/${c.file}: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.error(`done: ${out}, ${(total / 2 ** 30).toFixed(2)} GiB of weights in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

await main();
