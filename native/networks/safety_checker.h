// diffusers' StableDiffusionSafetyChecker, its network: transformers' CLIPVisionModel (patch
// embedding without bias, class token, position embeddings, pre_layrnorm, the CLIP encoder
// without a mask, post_layernorm of the class token: the pooled output) and visual_projection,
// pixel_values [N, C, S, S] -> image_embeds [N, projection_dim]. The concept tables the embeddings
// are compared with are host data (ConceptTables), read once from the file: the comparison and the
// decisions are the TypeScript side's.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "networks/clip_encoder.h"
#include "networks/nn.h"

namespace jsd {

class ModelFile;

// The checker's concepts and thresholds, row-major: embeds [count, projection_dim], weights [count].
struct ConceptTables {
  int64_t concepts = 0;
  int64_t special_care = 0;
  std::vector<float> concept_embeds, concept_weights;
  std::vector<float> special_care_embeds, special_care_weights;
};

class SafetyChecker {
 public:
  SafetyChecker(WeightStore& weights, const SafetyCheckerConfig& config);
  // pixel_values [S, S, C, N] (ggml's order of NCHW) -> image_embeds [projection_dim, N].
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* pixel_values, const nn::Options& options) const;
  // Host copies of the concept tables, read from the file.
  ConceptTables read_concepts(const ModelFile& file) const;
  const SafetyCheckerConfig& config() const { return config_; }

 private:
  SafetyCheckerConfig config_;
  ggml_tensor* class_embedding_ = nullptr;     // [hidden]
  Conv2d patch_embedding_;                     // patch x patch, stride patch, no bias
  ggml_tensor* position_embedding_ = nullptr;  // [hidden, positions]
  Norm pre_layrnorm_;                          // (sic: transformers' name)
  ClipEncoder encoder_;
  Norm post_layernorm_;
  Linear visual_projection_;                   // [hidden -> projection_dim], no bias
  // f32 [projection_dim, count] and [count]: read at load, never part of a graph.
  ggml_tensor* concept_embeds_ = nullptr;
  ggml_tensor* concept_weights_ = nullptr;
  ggml_tensor* special_care_embeds_ = nullptr;
  ggml_tensor* special_care_weights_ = nullptr;
};

}  // namespace jsd
