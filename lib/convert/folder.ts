// Reads a diffusers pipeline folder (as `StableDiffusionPipeline.save_pretrained` / the Hub lays it out):
// model_index.json, the component configs, the tokenizer's spiece.model and one weight file per network.
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { JsdError } from "../errors.js";
import type { Component } from "./architecture.js";
import {
  parseJsonObject,
  parseTextEncoderConfig,
  parseUNetConfig,
  parseVaeConfig,
  type TextEncoderConfig,
  type UNetConfig,
  type VaeConfig,
} from "./config.js";

export type WeightFormat = "safetensors" | "pytorch";

export interface WeightFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the pipeline folder, with forward slashes. */
  relative: string;
  format: WeightFormat;
}

export interface DiffusersFolder {
  path: string;
  name: string;
  modelIndex: string;
  textEncoderConfigText: string;
  unetConfigText: string;
  vaeConfigText: string;
  schedulerConfigText: string;
  tokenizerConfigText: string;
  tokenizerConfig: Record<string, unknown>;
  specialTokensMap: Record<string, unknown>;
  textEncoder: TextEncoderConfig;
  unet: UNetConfig;
  vae: VaeConfig;
  spiece: Uint8Array;
  weights: Record<Component, WeightFile>;
}

const EXPECTED_CLASSES: Record<string, { library: string; classes: string[] }> = {
  text_encoder: { library: "transformers", classes: ["CLIPTextModel"] },
  unet: { library: "diffusers", classes: ["UNet2DConditionModel"] },
  vae: { library: "diffusers", classes: ["AutoencoderKL"] },
  tokenizer: { library: "transformers", classes: ["T5Tokenizer", "T5TokenizerFast"] },
};

/** Weight files looked for, best first: full-precision safetensors, fp16 safetensors, then the same as PyTorch pickles. */
function weightCandidates(component: Component): string[] {
  const stem = component === "text_encoder" ? "model" : "diffusion_pytorch_model";
  const alt = component === "text_encoder" ? "pytorch_model" : "diffusion_pytorch_model";
  return [`${stem}.safetensors`, `${stem}.fp16.safetensors`, `${alt}.bin`, `${alt}.fp16.bin`];
}

async function readText(folder: string, relative: string, what: string): Promise<string> {
  const path = join(folder, relative);
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new JsdError("JSD_NOT_FOUND", `${what} not found: ${path} is missing`, { cause: error });
    throw new JsdError("JSD_BAD_FILE", `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function findWeightFile(folder: string, component: Component): Promise<WeightFile> {
  const dir = join(folder, component);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `the ${component} folder ${dir} is missing`, { cause: error });
  }
  const present = new Set(entries);
  const candidates = weightCandidates(component);
  let chosen = candidates.find((c) => present.has(c));
  if (!chosen) {
    // Other single-file names: any *.safetensors, else any *.bin.
    for (const ext of [".safetensors", ".bin"]) {
      const files = entries.filter((e) => e.endsWith(ext)).sort();
      if (files.length === 1) {
        chosen = files[0];
        break;
      }
      if (files.length > 1) {
        throw new JsdError("JSD_BAD_MODEL", `${dir} holds several ${ext} files (${files.join(", ")}); cannot tell which holds the ${component} weights`);
      }
    }
  }
  if (!chosen) {
    if (entries.some((e) => e.endsWith(".index.json"))) {
      throw new JsdError("JSD_BAD_MODEL", `${dir} holds sharded weights (*.index.json), which the converter does not support`);
    }
    throw new JsdError("JSD_NOT_FOUND", `no ${component} weights in ${dir} (looked for ${candidates.join(", ")})`);
  }
  const path = join(dir, chosen);
  const info = await stat(path);
  if (!info.isFile()) throw new JsdError("JSD_BAD_FILE", `${path} is not a regular file`);
  return { path, relative: `${component}/${chosen}`, format: chosen.endsWith(".safetensors") ? "safetensors" : "pytorch" };
}

/** Reads and validates everything in the folder except the weights (which are only located). */
export async function readDiffusersFolder(input: string): Promise<DiffusersFolder> {
  const folder = resolve(input);
  let info;
  try {
    info = await stat(folder);
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `input folder not found: ${folder}`, { cause: error });
  }
  if (!info.isDirectory()) throw new JsdError("JSD_INVALID_ARGUMENT", `${folder} is not a folder (expected a diffusers pipeline folder)`);

  let modelIndex: string;
  try {
    modelIndex = await readFile(join(folder, "model_index.json"), "utf8");
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `${folder} has no model_index.json: not a diffusers pipeline folder`, { cause: error });
  }
  const index = parseJsonObject(join(folder, "model_index.json"), modelIndex);
  for (const [component, want] of Object.entries(EXPECTED_CLASSES)) {
    const entry = index[component];
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new JsdError("JSD_BAD_MODEL", `model_index.json has no '${component}' component (expected ${want.library} ${want.classes[0]})`);
    }
    if (!want.classes.includes(String(entry[1]))) {
      throw new JsdError(
        "JSD_BAD_MODEL",
        `model_index.json: ${component} is ${String(entry[0])} ${String(entry[1])}; this converter handles Japanese Stable Diffusion (${want.classes.join(" or ")})`,
      );
    }
  }

  const textEncoderConfigText = await readText(folder, "text_encoder/config.json", "text encoder config");
  const unetConfigText = await readText(folder, "unet/config.json", "UNet config");
  const vaeConfigText = await readText(folder, "vae/config.json", "VAE config");
  const schedulerConfigText = await readText(folder, "scheduler/scheduler_config.json", "scheduler config");
  const tokenizerConfigText = await readText(folder, "tokenizer/tokenizer_config.json", "tokenizer config");
  let specialTokensMap: Record<string, unknown> = {};
  try {
    const text = await readFile(join(folder, "tokenizer/special_tokens_map.json"), "utf8");
    specialTokensMap = parseJsonObject(join(folder, "tokenizer/special_tokens_map.json"), text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  let spiece: Uint8Array;
  try {
    spiece = await readFile(join(folder, "tokenizer/spiece.model"));
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `sentencepiece model not found: ${join(folder, "tokenizer/spiece.model")} is missing`, { cause: error });
  }

  const f = (rel: string) => join(folder, rel);
  const textEncoder = parseTextEncoderConfig(f("text_encoder/config.json"), parseJsonObject(f("text_encoder/config.json"), textEncoderConfigText));
  const unet = parseUNetConfig(f("unet/config.json"), parseJsonObject(f("unet/config.json"), unetConfigText));
  const vae = parseVaeConfig(f("vae/config.json"), parseJsonObject(f("vae/config.json"), vaeConfigText));
  parseJsonObject(f("scheduler/scheduler_config.json"), schedulerConfigText);
  const tokenizerConfig = parseJsonObject(f("tokenizer/tokenizer_config.json"), tokenizerConfigText);
  if (unet.crossAttentionDim !== textEncoder.hiddenSize) {
    throw new JsdError(
      "JSD_BAD_MODEL",
      `unet/config.json cross_attention_dim ${unet.crossAttentionDim} does not match text_encoder/config.json hidden_size ${textEncoder.hiddenSize}`,
    );
  }
  if (unet.inChannels !== vae.latentChannels) {
    throw new JsdError("JSD_BAD_MODEL", `unet/config.json in_channels ${unet.inChannels} does not match vae/config.json latent_channels ${vae.latentChannels}`);
  }

  const weights = {
    text_encoder: await findWeightFile(folder, "text_encoder"),
    unet: await findWeightFile(folder, "unet"),
    vae: await findWeightFile(folder, "vae"),
  };
  return {
    path: folder,
    name: basename(folder),
    modelIndex,
    textEncoderConfigText,
    unetConfigText,
    vaeConfigText,
    schedulerConfigText,
    tokenizerConfigText,
    tokenizerConfig,
    specialTokensMap,
    textEncoder,
    unet,
    vae,
    spiece,
    weights,
  };
}
