// The model file's key/value metadata (docs/model-format.md, "Key/value metadata"), in the spec's order;
// the key names come from native/model/model_keys.json (lib/formats/model-keys.ts).
import { JsdError } from "../errors.js";
import { type GgufValue, gguf } from "../formats/gguf-writer.js";
import { MODEL_ARCHITECTURE, MODEL_FORMAT_VERSION, MODEL_KEYS, keysOf, sectionKey } from "../formats/model-keys.js";
import { SentencePieceModel } from "../prompt/sentencepiece.js";
import { version } from "../system-info.js";
import type { DiffusersFolder } from "./folder.js";

export const SHA256_PLACEHOLDER = "0".repeat(64);
export const ALIGNMENT = 32;
/** JSD's pipeline sets these on its tokenizer whatever tokenizer_config.json says. */
export const MODEL_MAX_LENGTH = 77;
export const DO_LOWER_CASE = true;

export interface TokenizerIds {
  pad: number;
  eos: number;
  unk: number;
  vocabSize: number;
}

function tokenString(folder: DiffusersFolder, key: string, fallback: string): string {
  const v = folder.specialTokensMap[key] ?? folder.tokenizerConfig[key];
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return fallback;
}

/** Parses spiece.model and finds the special ids the way T5Tokenizer does (piece -> id). */
export function tokenizerIds(folder: DiffusersFolder): TokenizerIds {
  const sp = SentencePieceModel.fromBytes(folder.spiece);
  const id = (key: string, fallback: string): number => {
    const piece = tokenString(folder, key, fallback);
    const i = sp.pieceToId(piece);
    if (i < 0 || sp.idToPiece(i) !== piece) {
      throw new JsdError("JSD_BAD_TOKENIZER", `tokenizer/spiece.model has no piece '${piece}' (the tokenizer's ${key})`);
    }
    return i;
  };
  const ids = { pad: id("pad_token", "<pad>"), eos: id("eos_token", "</s>"), unk: id("unk_token", "<unk>"), vocabSize: sp.vocabSize };
  if (ids.vocabSize > folder.textEncoder.vocabSize) {
    throw new JsdError(
      "JSD_BAD_MODEL",
      `tokenizer/spiece.model has ${ids.vocabSize} pieces but the text encoder's vocab_size is ${folder.textEncoder.vocabSize}`,
    );
  }
  return ids;
}

export function sourceDescription(folder: DiffusersFolder): string {
  return JSON.stringify({
    folder: folder.path,
    weights: Object.fromEntries(Object.entries(folder.weights).map(([c, w]) => [c, { file: w.relative, format: w.format }])),
  });
}

/** The optional sections: the safety checker's tower and its feature extractor's settings (none without a checker). */
function safetyCheckerMetadata(folder: DiffusersFolder): Array<[string, GgufValue]> {
  const part = folder.safetyChecker;
  if (!part) return [];
  const sc = part.config;
  const fe = part.featureExtractor;
  const [checkerKey, extractorKey] = [keysOf("safety_checker"), keysOf("feature_extractor")];
  return [
    [checkerKey("config"), gguf.str(part.configText)],
    [checkerKey("hidden_size"), gguf.u32(sc.hiddenSize)],
    [checkerKey("intermediate_size"), gguf.u32(sc.intermediateSize)],
    [checkerKey("num_hidden_layers"), gguf.u32(sc.numHiddenLayers)],
    [checkerKey("num_attention_heads"), gguf.u32(sc.numAttentionHeads)],
    [checkerKey("image_size"), gguf.u32(sc.imageSize)],
    [checkerKey("patch_size"), gguf.u32(sc.patchSize)],
    [checkerKey("num_channels"), gguf.u32(sc.numChannels)],
    [checkerKey("projection_dim"), gguf.u32(sc.projectionDim)],
    [checkerKey("layer_norm_eps"), gguf.f32(sc.layerNormEps)],
    [checkerKey("hidden_act"), gguf.str(sc.hiddenAct)],

    [extractorKey("config"), gguf.str(part.featureExtractorConfigText)],
    [extractorKey("size"), gguf.u32(fe.size)],
    [extractorKey("crop_size"), gguf.u32(fe.cropSize)],
    [extractorKey("do_resize"), gguf.bool(fe.doResize)],
    [extractorKey("do_center_crop"), gguf.bool(fe.doCenterCrop)],
    [extractorKey("do_normalize"), gguf.bool(fe.doNormalize)],
    [extractorKey("resample"), gguf.u32(fe.resample)],
    [extractorKey("image_mean"), gguf.f32s([...fe.imageMean])],
    [extractorKey("image_std"), gguf.f32s([...fe.imageStd])],
  ];
}

/**
 * Every key/value of the file. `embeddings`: the tensors read as tables of rows (the plan's
 * embedding roles), which the engine never reorders for a matrix kernel. `interleaved`: the q8_0
 * matrices stored in the CPU kernel's layout (native/kernels/q8_gemm.h), listed under
 * MODEL_KEYS.q8Interleaved when there are any.
 */
export function buildMetadata(
  folder: DiffusersFolder,
  fileType: string,
  ids: TokenizerIds,
  embeddings: readonly string[],
  interleaved: readonly string[] = [],
): Array<[string, GgufValue]> {
  const te = folder.textEncoder;
  const unet = folder.unet;
  const vae = folder.vae;
  const k = MODEL_KEYS;
  const [tokenizerKey, textEncoderKey, unetKey, vaeKey] = [keysOf("tokenizer"), keysOf("text_encoder"), keysOf("unet"), keysOf("vae")];
  return [
    [k.architecture, gguf.str(MODEL_ARCHITECTURE)],
    [k.name, gguf.str(folder.name)],
    [k.alignment, gguf.u32(ALIGNMENT)],
    [k.formatVersion, gguf.u32(MODEL_FORMAT_VERSION)],
    [k.converter, gguf.str(`japanese-stable-diffusion@${version()}`)],
    [k.source, gguf.str(sourceDescription(folder))],
    [k.fileType, gguf.str(fileType)],
    [k.modelIndex, gguf.str(folder.modelIndex)],
    [k.dataSha256, gguf.str(SHA256_PLACEHOLDER)],
    [k.embeddings, gguf.strs([...embeddings])],

    [tokenizerKey("sentencepiece"), gguf.bytes(folder.spiece)],
    [tokenizerKey("pad_id"), gguf.i32(ids.pad)],
    [tokenizerKey("eos_id"), gguf.i32(ids.eos)],
    [tokenizerKey("unk_id"), gguf.i32(ids.unk)],
    [tokenizerKey("do_lower_case"), gguf.bool(DO_LOWER_CASE)],
    [tokenizerKey("model_max_length"), gguf.u32(MODEL_MAX_LENGTH)],
    [tokenizerKey("config"), gguf.str(folder.tokenizerConfigText)],

    [textEncoderKey("config"), gguf.str(folder.textEncoderConfigText)],
    [textEncoderKey("vocab_size"), gguf.u32(te.vocabSize)],
    [textEncoderKey("hidden_size"), gguf.u32(te.hiddenSize)],
    [textEncoderKey("intermediate_size"), gguf.u32(te.intermediateSize)],
    [textEncoderKey("num_hidden_layers"), gguf.u32(te.numHiddenLayers)],
    [textEncoderKey("num_attention_heads"), gguf.u32(te.numAttentionHeads)],
    [textEncoderKey("max_position_embeddings"), gguf.u32(te.maxPositionEmbeddings)],
    [textEncoderKey("layer_norm_eps"), gguf.f32(te.layerNormEps)],
    [textEncoderKey("hidden_act"), gguf.str(te.hiddenAct)],

    [unetKey("config"), gguf.str(folder.unetConfigText)],
    [unetKey("in_channels"), gguf.u32(unet.inChannels)],
    [unetKey("out_channels"), gguf.u32(unet.outChannels)],
    [unetKey("layers_per_block"), gguf.u32(unet.layersPerBlock)],
    [unetKey("cross_attention_dim"), gguf.u32(unet.crossAttentionDim)],
    [unetKey("norm_num_groups"), gguf.u32(unet.normNumGroups)],
    [unetKey("sample_size"), gguf.u32(unet.sampleSize)],
    [unetKey("freq_shift"), gguf.u32(unet.freqShift)],
    [unetKey("attention_head_dim"), gguf.u32s(unet.attentionHeadDim)],
    [unetKey("block_out_channels"), gguf.u32s(unet.blockOutChannels)],
    [unetKey("down_block_types"), gguf.strs(unet.downBlockTypes)],
    [unetKey("up_block_types"), gguf.strs(unet.upBlockTypes)],
    [unetKey("norm_eps"), gguf.f32(unet.normEps)],
    [unetKey("flip_sin_to_cos"), gguf.bool(unet.flipSinToCos)],

    [vaeKey("config"), gguf.str(folder.vaeConfigText)],
    [vaeKey("in_channels"), gguf.u32(vae.inChannels)],
    [vaeKey("out_channels"), gguf.u32(vae.outChannels)],
    [vaeKey("latent_channels"), gguf.u32(vae.latentChannels)],
    [vaeKey("layers_per_block"), gguf.u32(vae.layersPerBlock)],
    [vaeKey("norm_num_groups"), gguf.u32(vae.normNumGroups)],
    [vaeKey("sample_size"), gguf.u32(vae.sampleSize)],
    [vaeKey("block_out_channels"), gguf.u32s(vae.blockOutChannels)],
    [vaeKey("scaling_factor"), gguf.f32(vae.scalingFactor)],

    [sectionKey("scheduler", "config"), gguf.str(folder.schedulerConfigText)],
    ...safetyCheckerMetadata(folder),
    ...(interleaved.length > 0 ? [[k.q8Interleaved, gguf.strs([...interleaved])] as [string, GgufValue]] : []),
  ];
}
