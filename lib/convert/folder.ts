// Reads a diffusers pipeline folder (as `StableDiffusionPipeline.save_pretrained` / the Hub lays it out):
// model_index.json, the component configs, the tokenizer's spiece.model and one weight file per network;
// and, when model_index.json names one (as rinna's does), the safety checker and its feature extractor.
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { JsdError } from "../errors.js";
import type { Component } from "./architecture.js";
import {
  parseFeatureExtractorConfig,
  parseJsonObject,
  parseSafetyCheckerConfig,
  parseTextEncoderConfig,
  parseUNetConfig,
  parseVaeConfig,
  type FeatureExtractorConfig,
  type SafetyCheckerConfig,
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
  /** The safety checker's weight file is there only when the folder has a checker (`safetyChecker`). */
  weights: Record<Exclude<Component, "safety_checker">, WeightFile> & { safety_checker?: WeightFile };
  /** The optional fourth component, with its feature extractor; undefined when the folder has none or it was left out. */
  safetyChecker?: SafetyCheckerPart;
}

export interface SafetyCheckerPart {
  configText: string;
  config: SafetyCheckerConfig;
  featureExtractorConfigText: string;
  featureExtractor: FeatureExtractorConfig;
}

export interface ReadFolderOptions {
  /** Read the safety checker when model_index.json names one. Default true. */
  safetyChecker?: boolean;
}

const EXPECTED_CLASSES: Record<string, { library: string; classes: string[] }> = {
  text_encoder: { library: "transformers", classes: ["CLIPTextModel"] },
  unet: { library: "diffusers", classes: ["UNet2DConditionModel"] },
  vae: { library: "diffusers", classes: ["AutoencoderKL"] },
  tokenizer: { library: "transformers", classes: ["T5Tokenizer", "T5TokenizerFast"] },
};

const SAFETY_CHECKER_CLASSES = { safety_checker: ["StableDiffusionSafetyChecker"], feature_extractor: ["CLIPFeatureExtractor", "CLIPImageProcessor"] };

/** Weight files looked for, best first: full-precision safetensors, fp16 safetensors, then the same as PyTorch pickles. */
function weightCandidates(component: Component): string[] {
  // transformers' models (the text encoder, the checker) are model.*, diffusers' diffusion_pytorch_model.*.
  const transformers = component === "text_encoder" || component === "safety_checker";
  const stem = transformers ? "model" : "diffusion_pytorch_model";
  const alt = transformers ? "pytorch_model" : "diffusion_pytorch_model";
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

/** Whether model_index.json names a safety checker; a class this converter does not know is an error. */
function namesSafetyChecker(index: Record<string, unknown>): boolean {
  const named = (key: keyof typeof SAFETY_CHECKER_CLASSES): boolean => {
    const entry = index[key];
    if (entry === undefined || entry === null || (Array.isArray(entry) && entry.every((x) => x === null))) return false;
    if (!Array.isArray(entry) || entry.length !== 2 || !SAFETY_CHECKER_CLASSES[key].includes(String(entry[1]))) {
      throw new JsdError(
        "JSD_BAD_MODEL",
        `model_index.json: ${key} is ${JSON.stringify(entry)}; this converter handles ${SAFETY_CHECKER_CLASSES[key].join(" or ")} (or null; --no-safety-checker leaves it out)`,
      );
    }
    return true;
  };
  const checker = named("safety_checker");
  const extractor = named("feature_extractor");
  if (checker && !extractor) throw new JsdError("JSD_BAD_MODEL", "model_index.json names a safety_checker but no feature_extractor, which prepares its input");
  return checker;
}

/** The checker's config and its feature extractor's, checked against each other. */
async function readSafetyChecker(folder: string): Promise<SafetyCheckerPart> {
  const hint = " (--no-safety-checker converts the model without it)";
  const configFile = join(folder, "safety_checker/config.json");
  const extractorFile = join(folder, "feature_extractor/preprocessor_config.json");
  const configText = await readText(folder, "safety_checker/config.json", `safety checker config${hint}`);
  const featureExtractorConfigText = await readText(folder, "feature_extractor/preprocessor_config.json", `feature extractor config${hint}`);
  const config = parseSafetyCheckerConfig(configFile, parseJsonObject(configFile, configText));
  const featureExtractor = parseFeatureExtractorConfig(extractorFile, parseJsonObject(extractorFile, featureExtractorConfigText));
  if (!featureExtractor.doResize || !featureExtractor.doCenterCrop) {
    throw new JsdError("JSD_BAD_MODEL", `${extractorFile}: do_resize and do_center_crop must be true (the checker sees ${config.imageSize}x${config.imageSize} crops)`);
  }
  if (featureExtractor.cropSize !== config.imageSize) {
    throw new JsdError("JSD_BAD_MODEL", `${extractorFile}: crop_size ${featureExtractor.cropSize} does not match ${configFile}'s image_size ${config.imageSize}`);
  }
  return { configText, config, featureExtractorConfigText, featureExtractor };
}

/** Reads and validates everything in the folder except the weights (which are only located). */
export async function readDiffusersFolder(input: string, options: ReadFolderOptions = {}): Promise<DiffusersFolder> {
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

  const safetyChecker = options.safetyChecker !== false && namesSafetyChecker(index) ? await readSafetyChecker(folder) : undefined;
  const weights: DiffusersFolder["weights"] = {
    text_encoder: await findWeightFile(folder, "text_encoder"),
    unet: await findWeightFile(folder, "unet"),
    vae: await findWeightFile(folder, "vae"),
  };
  if (safetyChecker) weights.safety_checker = await findWeightFile(folder, "safety_checker");
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
    safetyChecker,
  };
}
