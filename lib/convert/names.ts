// Checkpoint tensor names (either generation) -> the model file's internal names
// (docs/model-format.md, "Tensor names"):
//   text encoder  `text_model.X`                      -> `te.X`
//   UNet          `X` with `transformer_blocks.` -> `blocks.`   -> `unet.X'`
//   VAE           `X`, mid-block attention `query,key,value,proj_attn` (2022) or
//                 `to_q,to_k,to_v,to_out.0` (current diffusers)   -> `vae.X` with the current names
//   safety checker `vision_model.vision_model.X` (transformers 4: CLIPVisionModel's inner
//                 `vision_model`) or `vision_model.X` (later savers, e.g. the tiny fixture)  -> `sc.X`
//                 `visual_projection.weight`, the concept tables    -> `sc.<name>`
import type { Component } from "./architecture.js";

export const COMPONENT_PREFIX: Record<Component, string> = {
  text_encoder: "te.",
  unet: "unet.",
  vae: "vae.",
  safety_checker: "sc.",
};

/** The vision tower's prefixes in the checker's state dict, longest first (a CLIPVisionModel named `vision_model`). */
const VISION_TOWER = ["vision_model.vision_model.", "vision_model."];

function withoutTowerPrefix(name: string): string {
  const prefix = VISION_TOWER.find((p) => name.startsWith(p));
  return prefix ? name.slice(prefix.length) : name;
}

const VAE_OLD_ATTENTION: Record<string, string> = {
  query: "to_q",
  key: "to_k",
  value: "to_v",
  proj_attn: "to_out.0",
};

/** The internal name of a checkpoint tensor, or undefined when the name does not belong to the component. */
export function internalName(component: Component, name: string): string | undefined {
  switch (component) {
    case "text_encoder":
      if (!name.startsWith("text_model.")) return undefined;
      return COMPONENT_PREFIX.text_encoder + name.slice("text_model.".length);
    case "unet":
      return COMPONENT_PREFIX.unet + name.replace(/(^|\.)transformer_blocks\./g, "$1blocks.");
    case "vae":
      return (
        COMPONENT_PREFIX.vae +
        name.replace(/^((?:encoder|decoder)\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\./, (_m, block: string, old: string) => `${block}.${VAE_OLD_ATTENTION[old]}.`)
      );
    case "safety_checker":
      return COMPONENT_PREFIX.safety_checker + withoutTowerPrefix(name);
  }
}

/** Tensors that are buffers, not weights, and are not stored (positions are 0, 1, 2, …). */
export function isDroppedBuffer(component: Component, name: string): boolean {
  if (component === "text_encoder") return name === "text_model.embeddings.position_ids";
  if (component === "safety_checker") return name !== withoutTowerPrefix(name) && withoutTowerPrefix(name) === "embeddings.position_ids";
  return false;
}
