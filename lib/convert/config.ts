// Typed views of the diffusers / transformers config files a JSD (SD v1 structured) folder holds.
// Values missing from a config take the defaults of the classes that read them
// (CLIPTextConfig, UNet2DConditionModel, AutoencoderKL); structural values are required.
import { JsdError } from "../errors.js";
import { checkFeatureExtractorSettings, PIL_BICUBIC, type FeatureExtractorSettings } from "../safety/index.js";

export interface TextEncoderConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  layerNormEps: number;
  hiddenAct: "quick_gelu" | "gelu";
}

export type UNetDownBlockType = "CrossAttnDownBlock2D" | "DownBlock2D";
export type UNetUpBlockType = "UpBlock2D" | "CrossAttnUpBlock2D";

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  layersPerBlock: number;
  crossAttentionDim: number;
  normNumGroups: number;
  sampleSize: number;
  freqShift: number;
  /** One value per level (a single int in the config is repeated). In SD v1 configs: the number of heads. */
  attentionHeadDim: number[];
  blockOutChannels: number[];
  downBlockTypes: UNetDownBlockType[];
  upBlockTypes: UNetUpBlockType[];
  normEps: number;
  flipSinToCos: boolean;
}

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  layersPerBlock: number;
  normNumGroups: number;
  sampleSize: number;
  blockOutChannels: number[];
  scalingFactor: number;
}

type Json = Record<string, unknown>;

class ConfigReader {
  constructor(
    readonly file: string,
    readonly json: Json,
  ) {}

  fail(why: string): never {
    throw new JsdError("JSD_BAD_MODEL", `${this.file}: ${why}`);
  }

  #value(key: string, fallback: unknown): unknown {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) this.fail(`'${key}' is missing`);
      return fallback;
    }
    return v;
  }

  /** A positive (or, with min 0, non-negative) integer. */
  int(key: string, fallback?: number, min = 1): number {
    const v = this.#value(key, fallback);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > 0xffffffff) {
      this.fail(`'${key}' must be an integer >= ${min}, not ${JSON.stringify(v)}`);
    }
    return v;
  }

  float(key: string, fallback?: number): number {
    const v = this.#value(key, fallback);
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(`'${key}' must be a number, not ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.#value(key, fallback);
    if (typeof v !== "boolean") this.fail(`'${key}' must be true or false, not ${JSON.stringify(v)}`);
    return v;
  }

  ints(key: string): number[] {
    const v = this.#value(key, undefined);
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 1 && x <= 0xffffffff)) {
      this.fail(`'${key}' must be a non-empty list of positive integers, not ${JSON.stringify(v)}`);
    }
    return v as number[];
  }

  strings<T extends string>(key: string, allowed: readonly T[]): T[] {
    const v = this.#value(key, undefined);
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) this.fail(`'${key}' must be a non-empty list of strings`);
    for (const x of v as string[]) {
      if (!allowed.includes(x as T)) this.fail(`'${key}' contains '${x}', which is not supported (supported: ${allowed.join(", ")})`);
    }
    return v as T[];
  }

  /** Fails when `key` is present with a value other than the accepted ones. */
  only(key: string, accepted: unknown[]): void {
    const v = this.json[key];
    if (v === undefined || v === null) return;
    if (!accepted.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      const want = accepted.length === 0 ? "only null is supported" : `only ${accepted.map((a) => JSON.stringify(a)).join(" or ")} is supported`;
      this.fail(`'${key}' is ${JSON.stringify(v)}; ${want} (SD v1 architecture)`);
    }
  }
}

export function parseJsonObject(file: string, text: string): Json {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new JsdError("JSD_BAD_MODEL", `${file} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new JsdError("JSD_BAD_MODEL", `${file} is not a JSON object`);
  return json as Json;
}

function checkGroups(c: ConfigReader, groups: number, channels: number[]): void {
  for (const ch of channels) {
    if (ch % groups !== 0) c.fail(`block_out_channels ${ch} is not divisible by norm_num_groups ${groups}`);
  }
}

export function parseTextEncoderConfig(file: string, json: Json): TextEncoderConfig {
  const c = new ConfigReader(file, json);
  const hiddenAct = c.json.hidden_act ?? "quick_gelu";
  if (hiddenAct !== "quick_gelu" && hiddenAct !== "gelu") c.fail(`hidden_act '${String(hiddenAct)}' is not supported (quick_gelu or gelu)`);
  const cfg: TextEncoderConfig = {
    vocabSize: c.int("vocab_size"),
    hiddenSize: c.int("hidden_size"),
    intermediateSize: c.int("intermediate_size"),
    numHiddenLayers: c.int("num_hidden_layers"),
    numAttentionHeads: c.int("num_attention_heads"),
    maxPositionEmbeddings: c.int("max_position_embeddings"),
    layerNormEps: c.float("layer_norm_eps", 1e-5),
    hiddenAct: hiddenAct as TextEncoderConfig["hiddenAct"],
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) c.fail(`hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`);
  if (cfg.maxPositionEmbeddings < 77) c.fail(`max_position_embeddings ${cfg.maxPositionEmbeddings} is less than the 77 tokens JSD uses`);
  return cfg;
}

export function parseUNetConfig(file: string, json: Json): UNetConfig {
  const c = new ConfigReader(file, json);
  // Options of later diffusers versions that change the SD v1 structure.
  c.only("mid_block_type", ["UNetMidBlock2DCrossAttn"]);
  c.only("class_embed_type", []);
  c.only("addition_embed_type", []);
  c.only("encoder_hid_dim", []);
  c.only("transformer_layers_per_block", [1]);
  c.only("time_embedding_type", ["positional"]);
  c.only("resnet_time_scale_shift", ["default"]);
  c.only("dual_cross_attention", [false]);
  c.only("only_cross_attention", [false]);
  c.only("act_fn", ["silu"]);
  c.only("conv_in_kernel", [3]);
  c.only("conv_out_kernel", [3]);
  c.only("center_input_sample", [false]);
  const blockOutChannels = c.ints("block_out_channels");
  const downBlockTypes = c.strings("down_block_types", ["CrossAttnDownBlock2D", "DownBlock2D"] as const);
  const upBlockTypes = c.strings("up_block_types", ["UpBlock2D", "CrossAttnUpBlock2D"] as const);
  const levels = blockOutChannels.length;
  if (downBlockTypes.length !== levels || upBlockTypes.length !== levels) {
    c.fail(`block_out_channels, down_block_types and up_block_types must have the same length (${levels}, ${downBlockTypes.length}, ${upBlockTypes.length})`);
  }
  const rawHeads = c.json.attention_head_dim ?? 8;
  const attentionHeadDim = typeof rawHeads === "number" ? new Array<number>(levels).fill(rawHeads) : rawHeads;
  if (!Array.isArray(attentionHeadDim) || attentionHeadDim.length !== levels || !attentionHeadDim.every((x) => Number.isSafeInteger(x) && x >= 1)) {
    c.fail(`'attention_head_dim' must be a positive integer or a list of ${levels}, not ${JSON.stringify(rawHeads)}`);
  }
  const cfg: UNetConfig = {
    inChannels: c.int("in_channels", 4),
    outChannels: c.int("out_channels", 4),
    layersPerBlock: c.int("layers_per_block", 2),
    crossAttentionDim: c.int("cross_attention_dim", 1280),
    normNumGroups: c.int("norm_num_groups", 32),
    sampleSize: c.int("sample_size"),
    freqShift: c.int("freq_shift", 0, 0),
    attentionHeadDim: attentionHeadDim as number[],
    blockOutChannels,
    downBlockTypes,
    upBlockTypes,
    normEps: c.float("norm_eps", 1e-5),
    flipSinToCos: c.bool("flip_sin_to_cos", true),
  };
  checkGroups(c, cfg.normNumGroups, blockOutChannels);
  return cfg;
}

export function parseVaeConfig(file: string, json: Json): VaeConfig {
  const c = new ConfigReader(file, json);
  c.only("act_fn", ["silu"]);
  const blockOutChannels = c.ints("block_out_channels");
  const down = c.strings("down_block_types", ["DownEncoderBlock2D"] as const);
  const up = c.strings("up_block_types", ["UpDecoderBlock2D"] as const);
  if (down.length !== blockOutChannels.length || up.length !== blockOutChannels.length) {
    c.fail(`block_out_channels, down_block_types and up_block_types must have the same length`);
  }
  const cfg: VaeConfig = {
    inChannels: c.int("in_channels", 3),
    outChannels: c.int("out_channels", 3),
    latentChannels: c.int("latent_channels", 4),
    layersPerBlock: c.int("layers_per_block", 1),
    normNumGroups: c.int("norm_num_groups", 32),
    sampleSize: c.int("sample_size", 32),
    blockOutChannels,
    scalingFactor: c.float("scaling_factor", 0.18215),
  };
  checkGroups(c, cfg.normNumGroups, blockOutChannels);
  return cfg;
}

/**
 * The safety checker's CLIP vision tower (diffusers' StableDiffusionSafetyChecker over transformers'
 * CLIPVisionModel). Its `config.json` is a CLIPConfig: the tower's values sit in `vision_config`
 * (transformers 4.25 prefers the older `vision_config_dict` when a file has both, as the 2022
 * CompVis file does), `projection_dim` at the top. Missing values take CLIPVisionConfig's defaults.
 */
export interface SafetyCheckerConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  projectionDim: number;
  layerNormEps: number;
  hiddenAct: "quick_gelu";
}

export function parseSafetyCheckerConfig(file: string, json: Json): SafetyCheckerConfig {
  const top = new ConfigReader(file, json);
  const tower = json.vision_config_dict ?? json.vision_config ?? {};
  if (typeof tower !== "object" || tower === null || Array.isArray(tower)) top.fail("'vision_config' must be an object");
  const c = new ConfigReader(`${file} (vision_config)`, tower as Json);
  const hiddenAct = c.json.hidden_act ?? "quick_gelu";
  if (hiddenAct !== "quick_gelu") c.fail(`hidden_act '${String(hiddenAct)}' is not supported (the CLIP vision tower uses quick_gelu)`);
  const cfg: SafetyCheckerConfig = {
    hiddenSize: c.int("hidden_size", 768),
    intermediateSize: c.int("intermediate_size", 3072),
    numHiddenLayers: c.int("num_hidden_layers", 12),
    numAttentionHeads: c.int("num_attention_heads", 12),
    imageSize: c.int("image_size", 224),
    patchSize: c.int("patch_size", 32),
    numChannels: c.int("num_channels", 3),
    projectionDim: top.int("projection_dim", 512),
    layerNormEps: c.float("layer_norm_eps", 1e-5),
    hiddenAct: "quick_gelu",
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) c.fail(`hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`);
  if (cfg.imageSize % cfg.patchSize !== 0) c.fail(`image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`);
  if (cfg.numChannels !== 3) c.fail(`num_channels ${cfg.numChannels} is not supported (the checker sees RGB images)`);
  return cfg;
}

/** CLIP's normalisation constants, CLIPFeatureExtractor's defaults. */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** transformers' CLIPFeatureExtractor settings (`feature_extractor/preprocessor_config.json`); lib/safety owns what they mean. */
export type FeatureExtractorConfig = FeatureExtractorSettings;

export function parseFeatureExtractorConfig(file: string, json: Json): FeatureExtractorConfig {
  const c = new ConfigReader(file, json);
  // Later image processors write sizes as objects: {"shortest_edge": n} and {"height": n, "width": n}.
  const side = (key: string, fallback: number, field: string): number => {
    const v = c.json[key];
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      const inner = new ConfigReader(`${file} (${key})`, v as Json);
      if (field === "square") {
        const [h, w] = [inner.int("height"), inner.int("width")];
        if (h !== w) inner.fail(`a ${h}x${w} crop is not supported (the checker sees square images)`);
        return h;
      }
      return inner.int(field);
    }
    return c.int(key, fallback);
  };
  // Options of later image processors that would change the arithmetic.
  c.only("do_rescale", [true]);
  c.only("rescale_factor", [1 / 255]);
  c.only("do_convert_rgb", [true]);
  const floats3 = (key: string, fallback: number[]): [number, number, number] => {
    const v = c.json[key] ?? fallback;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) c.fail(`'${key}' must be a list of 3 numbers, not ${JSON.stringify(v)}`);
    return v as [number, number, number];
  };
  const cfg: FeatureExtractorConfig = {
    size: side("size", 224, "shortest_edge"),
    cropSize: side("crop_size", 224, "square"),
    doResize: c.bool("do_resize", true),
    doCenterCrop: c.bool("do_center_crop", true),
    doNormalize: c.bool("do_normalize", true),
    resample: c.int("resample", PIL_BICUBIC, 0),
    imageMean: floats3("image_mean", CLIP_MEAN),
    imageStd: floats3("image_std", CLIP_STD),
  };
  // The feature extractor's own check: what it cannot run exactly is refused now, not at generate().
  try {
    return checkFeatureExtractorSettings(cfg);
  } catch (error) {
    return c.fail((error as Error).message);
  }
}
