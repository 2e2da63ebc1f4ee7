// The model file's key/value metadata (docs/model-format.md, "Key/value metadata"), in the spec's order.
import { JsdError } from "../errors.js";
import { type GgufValue, gguf } from "../formats/gguf-writer.js";
import { SentencePieceModel } from "../prompt/sentencepiece.js";
import { version } from "../system-info.js";
import type { DiffusersFolder } from "./folder.js";

/** 2: the converter's plan names the tensors read by rows (`jsd.embeddings`). */
export const FORMAT_VERSION = 2;
export const SHA256_KEY = "jsd.data_sha256";
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

/** The q8_0 matrices stored in the CPU kernel's interleaved layout (native/kernels/q8_gemm.h), if any. */
export const INTERLEAVED_Q8_KEY = "jsd.q8_0_interleaved";

/** embeddings: the tensors read as tables of rows (the plan's embedding roles), which the engine never reorders for a matrix kernel. */
export function buildMetadata(folder: DiffusersFolder, fileType: string, ids: TokenizerIds, embeddings: readonly string[]): Array<[string, GgufValue]> {
  const te = folder.textEncoder;
  const unet = folder.unet;
  const vae = folder.vae;
  return [
    ["general.architecture", gguf.str("jsd")],
    ["general.name", gguf.str(folder.name)],
    ["general.alignment", gguf.u32(ALIGNMENT)],
    ["jsd.format_version", gguf.u32(FORMAT_VERSION)],
    ["jsd.converter", gguf.str(`japanese-stable-diffusion@${version()}`)],
    ["jsd.source", gguf.str(sourceDescription(folder))],
    ["jsd.file_type", gguf.str(fileType)],
    ["jsd.model_index", gguf.str(folder.modelIndex)],
    [SHA256_KEY, gguf.str(SHA256_PLACEHOLDER)],
    ["jsd.embeddings", gguf.strs([...embeddings])],

    ["jsd.tokenizer.sentencepiece", gguf.bytes(folder.spiece)],
    ["jsd.tokenizer.pad_id", gguf.i32(ids.pad)],
    ["jsd.tokenizer.eos_id", gguf.i32(ids.eos)],
    ["jsd.tokenizer.unk_id", gguf.i32(ids.unk)],
    ["jsd.tokenizer.do_lower_case", gguf.bool(DO_LOWER_CASE)],
    ["jsd.tokenizer.model_max_length", gguf.u32(MODEL_MAX_LENGTH)],
    ["jsd.tokenizer.config", gguf.str(folder.tokenizerConfigText)],

    ["jsd.text_encoder.config", gguf.str(folder.textEncoderConfigText)],
    ["jsd.text_encoder.vocab_size", gguf.u32(te.vocabSize)],
    ["jsd.text_encoder.hidden_size", gguf.u32(te.hiddenSize)],
    ["jsd.text_encoder.intermediate_size", gguf.u32(te.intermediateSize)],
    ["jsd.text_encoder.num_hidden_layers", gguf.u32(te.numHiddenLayers)],
    ["jsd.text_encoder.num_attention_heads", gguf.u32(te.numAttentionHeads)],
    ["jsd.text_encoder.max_position_embeddings", gguf.u32(te.maxPositionEmbeddings)],
    ["jsd.text_encoder.layer_norm_eps", gguf.f32(te.layerNormEps)],
    ["jsd.text_encoder.hidden_act", gguf.str(te.hiddenAct)],

    ["jsd.unet.config", gguf.str(folder.unetConfigText)],
    ["jsd.unet.in_channels", gguf.u32(unet.inChannels)],
    ["jsd.unet.out_channels", gguf.u32(unet.outChannels)],
    ["jsd.unet.layers_per_block", gguf.u32(unet.layersPerBlock)],
    ["jsd.unet.cross_attention_dim", gguf.u32(unet.crossAttentionDim)],
    ["jsd.unet.norm_num_groups", gguf.u32(unet.normNumGroups)],
    ["jsd.unet.sample_size", gguf.u32(unet.sampleSize)],
    ["jsd.unet.freq_shift", gguf.u32(unet.freqShift)],
    ["jsd.unet.attention_head_dim", gguf.u32s(unet.attentionHeadDim)],
    ["jsd.unet.block_out_channels", gguf.u32s(unet.blockOutChannels)],
    ["jsd.unet.down_block_types", gguf.strs(unet.downBlockTypes)],
    ["jsd.unet.up_block_types", gguf.strs(unet.upBlockTypes)],
    ["jsd.unet.norm_eps", gguf.f32(unet.normEps)],
    ["jsd.unet.flip_sin_to_cos", gguf.bool(unet.flipSinToCos)],

    ["jsd.vae.config", gguf.str(folder.vaeConfigText)],
    ["jsd.vae.in_channels", gguf.u32(vae.inChannels)],
    ["jsd.vae.out_channels", gguf.u32(vae.outChannels)],
    ["jsd.vae.latent_channels", gguf.u32(vae.latentChannels)],
    ["jsd.vae.layers_per_block", gguf.u32(vae.layersPerBlock)],
    ["jsd.vae.norm_num_groups", gguf.u32(vae.normNumGroups)],
    ["jsd.vae.sample_size", gguf.u32(vae.sampleSize)],
    ["jsd.vae.block_out_channels", gguf.u32s(vae.blockOutChannels)],
    ["jsd.vae.scaling_factor", gguf.f32(vae.scalingFactor)],

    ["jsd.scheduler.config", gguf.str(folder.schedulerConfigText)],
  ];
}
