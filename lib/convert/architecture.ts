// The state-dict tensors (names and PyTorch shapes) that diffusers 0.8.1 / transformers 4.25
// build from the configs, i.e. the names found in the 2022 SD v1 / JSD checkpoints:
//   - text encoder: CLIPTextModel (`text_model.*`, with the int64 `position_ids` buffer);
//   - UNet: UNet2DConditionModel, Transformer2DModel's proj_in/proj_out as 1x1 convolutions;
//   - VAE: AutoencoderKL, the mid-block AttentionBlock's query/key/value/proj_attn as Linear;
//   - safety checker (optional): diffusers' StableDiffusionSafetyChecker, a CLIPVisionModel
//     (`vision_model.vision_model.*`, with `position_ids`), `visual_projection` and the concept tables.
// The converter checks a checkpoint against this list; scripts/make-random-model.mjs writes it.
import type { SafetyCheckerConfig, TextEncoderConfig, UNetConfig, VaeConfig } from "./config.js";

export type Component = "text_encoder" | "unet" | "vae" | "safety_checker";

export type TensorRole =
  /** Linear weight [out, in]. */
  | "linear"
  /** Convolution weight [out, in, kh, kw]. */
  | "conv"
  /** A projection stored either as Linear [out, in] or as a 1x1 convolution [out, in, 1, 1]; written as Linear. */
  | "projection"
  /** Bias or norm weight (1-D). */
  | "vector"
  | "embedding"
  | "position_embedding"
  /** A 2-D table read whole, never multiplied by the kernels (the checker's concept embeddings): always f32. */
  | "table"
  /** A non-parameter buffer that is not converted (the int64 `position_ids`). */
  | "buffer";

/** Tensors read as tables of rows (ggml_get_rows, views), never multiplied as matrices. */
export function isRowLookup(role: TensorRole): boolean {
  return role === "embedding" || role === "position_embedding";
}

export interface ArchTensor {
  component: Component;
  /** State-dict name as in the 2022 checkpoints. */
  name: string;
  /** PyTorch shape as in the 2022 checkpoints. */
  shape: number[];
  role: TensorRole;
  /** Inputs per output value (for the random initialisation of the benchmark model). */
  fanIn: number;
  /** "norm" for GroupNorm/LayerNorm weights, "bias" for biases. */
  vectorKind?: "norm" | "bias";
}

class Builder {
  readonly out: ArchTensor[] = [];
  constructor(readonly component: Component) {}

  linear(name: string, inF: number, outF: number, bias = true, role: TensorRole = "linear"): void {
    this.out.push({ component: this.component, name: `${name}.weight`, shape: [outF, inF], role, fanIn: inF });
    if (bias) this.bias(`${name}.bias`, outF);
  }

  conv(name: string, inC: number, outC: number, k: number, role: TensorRole = "conv", bias = true): void {
    this.out.push({ component: this.component, name: `${name}.weight`, shape: [outC, inC, k, k], role, fanIn: inC * k * k });
    if (bias) this.bias(`${name}.bias`, outC);
  }

  norm(name: string, channels: number): void {
    this.out.push({ component: this.component, name: `${name}.weight`, shape: [channels], role: "vector", fanIn: 1, vectorKind: "norm" });
    this.bias(`${name}.bias`, channels);
  }

  bias(name: string, n: number): void {
    this.out.push({ component: this.component, name, shape: [n], role: "vector", fanIn: 1, vectorKind: "bias" });
  }

  push(t: Omit<ArchTensor, "component">): void {
    this.out.push({ component: this.component, ...t });
  }

  /** transformers' CLIPEncoderLayer (the text encoder's and the vision tower's), in its modules' order. */
  clipEncoderLayer(name: string, hidden: number, intermediate: number): void {
    this.linear(`${name}.self_attn.k_proj`, hidden, hidden);
    this.linear(`${name}.self_attn.v_proj`, hidden, hidden);
    this.linear(`${name}.self_attn.q_proj`, hidden, hidden);
    this.linear(`${name}.self_attn.out_proj`, hidden, hidden);
    this.norm(`${name}.layer_norm1`, hidden);
    this.linear(`${name}.mlp.fc1`, hidden, intermediate);
    this.linear(`${name}.mlp.fc2`, intermediate, hidden);
    this.norm(`${name}.layer_norm2`, hidden);
  }

  /** diffusers ResnetBlock2D (time_embedding_norm "default"); `temb` 0 for the VAE's blocks without time embedding. */
  resnet(name: string, inC: number, outC: number, temb: number): void {
    this.norm(`${name}.norm1`, inC);
    this.conv(`${name}.conv1`, inC, outC, 3);
    if (temb > 0) this.linear(`${name}.time_emb_proj`, temb, outC);
    this.norm(`${name}.norm2`, outC);
    this.conv(`${name}.conv2`, outC, outC, 3);
    if (inC !== outC) this.conv(`${name}.conv_shortcut`, inC, outC, 1);
  }

  /** diffusers 0.8.1 Transformer2DModel (one BasicTransformerBlock, 1x1 conv projections). */
  transformer(name: string, channels: number, heads: number, crossDim: number): void {
    const inner = heads * Math.floor(channels / heads);
    this.norm(`${name}.norm`, channels);
    this.conv(`${name}.proj_in`, channels, inner, 1, "projection");
    const b = `${name}.transformer_blocks.0`;
    this.linear(`${b}.attn1.to_q`, inner, inner, false);
    this.linear(`${b}.attn1.to_k`, inner, inner, false);
    this.linear(`${b}.attn1.to_v`, inner, inner, false);
    this.linear(`${b}.attn1.to_out.0`, inner, inner);
    this.linear(`${b}.ff.net.0.proj`, inner, inner * 4 * 2);
    this.linear(`${b}.ff.net.2`, inner * 4, inner);
    this.linear(`${b}.attn2.to_q`, inner, inner, false);
    this.linear(`${b}.attn2.to_k`, crossDim, inner, false);
    this.linear(`${b}.attn2.to_v`, crossDim, inner, false);
    this.linear(`${b}.attn2.to_out.0`, inner, inner);
    this.norm(`${b}.norm1`, inner);
    this.norm(`${b}.norm2`, inner);
    this.norm(`${b}.norm3`, inner);
    this.conv(`${name}.proj_out`, inner, channels, 1, "projection");
  }

  /** diffusers 0.8.1 AttentionBlock (VAE mid block), old names. */
  vaeAttention(name: string, channels: number): void {
    this.norm(`${name}.group_norm`, channels);
    for (const p of ["query", "key", "value", "proj_attn"]) this.linear(`${name}.${p}`, channels, channels, true, "projection");
  }
}

export function textEncoderTensors(cfg: TextEncoderConfig): ArchTensor[] {
  const b = new Builder("text_encoder");
  const h = cfg.hiddenSize;
  b.push({ name: "text_model.embeddings.token_embedding.weight", shape: [cfg.vocabSize, h], role: "embedding", fanIn: 1 });
  b.push({ name: "text_model.embeddings.position_embedding.weight", shape: [cfg.maxPositionEmbeddings, h], role: "position_embedding", fanIn: 1 });
  b.push({ name: "text_model.embeddings.position_ids", shape: [1, cfg.maxPositionEmbeddings], role: "buffer", fanIn: 1 });
  for (let i = 0; i < cfg.numHiddenLayers; i++) b.clipEncoderLayer(`text_model.encoder.layers.${i}`, h, cfg.intermediateSize);
  b.norm("text_model.final_layer_norm", h);
  return b.out;
}

export function unetTensors(cfg: UNetConfig): ArchTensor[] {
  const b = new Builder("unet");
  const boc = cfg.blockOutChannels;
  const temb = boc[0] * 4;
  const levels = boc.length;
  b.conv("conv_in", cfg.inChannels, boc[0], 3);
  b.linear("time_embedding.linear_1", boc[0], temb);
  b.linear("time_embedding.linear_2", temb, temb);

  let outC = boc[0];
  for (let i = 0; i < levels; i++) {
    const inC = outC;
    outC = boc[i];
    const final = i === levels - 1;
    const name = `down_blocks.${i}`;
    const cross = cfg.downBlockTypes[i] === "CrossAttnDownBlock2D";
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      b.resnet(`${name}.resnets.${j}`, j === 0 ? inC : outC, outC, temb);
      if (cross) b.transformer(`${name}.attentions.${j}`, outC, cfg.attentionHeadDim[i], cfg.crossAttentionDim);
    }
    if (!final) b.conv(`${name}.downsamplers.0.conv`, outC, outC, 3);
  }

  const midC = boc[levels - 1];
  b.resnet("mid_block.resnets.0", midC, midC, temb);
  b.transformer("mid_block.attentions.0", midC, cfg.attentionHeadDim[levels - 1], cfg.crossAttentionDim);
  b.resnet("mid_block.resnets.1", midC, midC, temb);

  const rev = [...boc].reverse();
  const revHeads = [...cfg.attentionHeadDim].reverse();
  outC = rev[0];
  for (let i = 0; i < levels; i++) {
    const prevC = outC;
    outC = rev[i];
    const inC = rev[Math.min(i + 1, levels - 1)];
    const final = i === levels - 1;
    const name = `up_blocks.${i}`;
    const cross = cfg.upBlockTypes[i] === "CrossAttnUpBlock2D";
    const layers = cfg.layersPerBlock + 1;
    for (let j = 0; j < layers; j++) {
      const skip = j === layers - 1 ? inC : outC;
      const resIn = j === 0 ? prevC : outC;
      b.resnet(`${name}.resnets.${j}`, resIn + skip, outC, temb);
      if (cross) b.transformer(`${name}.attentions.${j}`, outC, revHeads[i], cfg.crossAttentionDim);
    }
    if (!final) b.conv(`${name}.upsamplers.0.conv`, outC, outC, 3);
  }

  b.norm("conv_norm_out", boc[0]);
  b.conv("conv_out", boc[0], cfg.outChannels, 3);
  return b.out;
}

export function vaeTensors(cfg: VaeConfig): ArchTensor[] {
  const b = new Builder("vae");
  const boc = cfg.blockOutChannels;
  const levels = boc.length;
  const top = boc[levels - 1];

  b.conv("encoder.conv_in", cfg.inChannels, boc[0], 3);
  let outC = boc[0];
  for (let i = 0; i < levels; i++) {
    const inC = outC;
    outC = boc[i];
    for (let j = 0; j < cfg.layersPerBlock; j++) b.resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inC : outC, outC, 0);
    if (i !== levels - 1) b.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, outC, outC, 3);
  }
  b.resnet("encoder.mid_block.resnets.0", top, top, 0);
  b.vaeAttention("encoder.mid_block.attentions.0", top);
  b.resnet("encoder.mid_block.resnets.1", top, top, 0);
  b.norm("encoder.conv_norm_out", top);
  b.conv("encoder.conv_out", top, 2 * cfg.latentChannels, 3);

  b.conv("decoder.conv_in", cfg.latentChannels, top, 3);
  b.resnet("decoder.mid_block.resnets.0", top, top, 0);
  b.vaeAttention("decoder.mid_block.attentions.0", top);
  b.resnet("decoder.mid_block.resnets.1", top, top, 0);
  const rev = [...boc].reverse();
  outC = rev[0];
  for (let i = 0; i < levels; i++) {
    const prevC = outC;
    outC = rev[i];
    for (let j = 0; j < cfg.layersPerBlock + 1; j++) b.resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prevC : outC, outC, 0);
    if (i !== levels - 1) b.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, outC, outC, 3);
  }
  b.norm("decoder.conv_norm_out", boc[0]);
  b.conv("decoder.conv_out", boc[0], cfg.outChannels, 3);

  b.conv("quant_conv", 2 * cfg.latentChannels, 2 * cfg.latentChannels, 1);
  b.conv("post_quant_conv", cfg.latentChannels, cfg.latentChannels, 1);
  return b.out;
}

/** diffusers 0.8.1 StableDiffusionSafetyChecker: its concept tables have these many rows whatever the config. */
export const SAFETY_CONCEPTS = 17;
export const SAFETY_SPECIAL_CARE_CONCEPTS = 3;

export function safetyCheckerTensors(cfg: SafetyCheckerConfig): ArchTensor[] {
  const b = new Builder("safety_checker");
  const h = cfg.hiddenSize;
  const positions = (cfg.imageSize / cfg.patchSize) ** 2 + 1;
  const e = "vision_model.vision_model.embeddings";
  b.push({ name: `${e}.class_embedding`, shape: [h], role: "vector", fanIn: 1, vectorKind: "bias" });
  b.conv(`${e}.patch_embedding`, cfg.numChannels, h, cfg.patchSize, "conv", false);
  b.push({ name: `${e}.position_embedding.weight`, shape: [positions, h], role: "position_embedding", fanIn: 1 });
  b.push({ name: `${e}.position_ids`, shape: [1, positions], role: "buffer", fanIn: 1 });
  b.norm("vision_model.vision_model.pre_layrnorm", h); // sic: transformers' name
  for (let i = 0; i < cfg.numHiddenLayers; i++) b.clipEncoderLayer(`vision_model.vision_model.encoder.layers.${i}`, h, cfg.intermediateSize);
  b.norm("vision_model.vision_model.post_layernorm", h);
  b.linear("visual_projection", h, cfg.projectionDim, false);
  b.push({ name: "concept_embeds", shape: [SAFETY_CONCEPTS, cfg.projectionDim], role: "table", fanIn: 1 });
  b.push({ name: "special_care_embeds", shape: [SAFETY_SPECIAL_CARE_CONCEPTS, cfg.projectionDim], role: "table", fanIn: 1 });
  b.push({ name: "concept_embeds_weights", shape: [SAFETY_CONCEPTS], role: "vector", fanIn: 1, vectorKind: "bias" });
  b.push({ name: "special_care_embeds_weights", shape: [SAFETY_SPECIAL_CARE_CONCEPTS], role: "vector", fanIn: 1, vectorKind: "bias" });
  return b.out;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
