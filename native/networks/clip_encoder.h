// transformers' CLIPEncoder, shared by the text encoder (causal) and the safety checker's vision
// tower (not): pre-LN layers of self-attention and an MLP, each with a residual. Sequences [C, L, N].
#pragma once

#include <string>
#include <vector>

#include "ggml.h"
#include "model/weights.h"
#include "networks/nn.h"

namespace jsd {

struct ClipEncoderLayer {
  Norm layer_norm1, layer_norm2;
  Linear q_proj, k_proj, v_proj, out_proj;
  Linear fc1, fc2;
};

struct ClipEncoder {
  std::vector<ClipEncoderLayer> layers;
  int heads = 1;
  float layer_norm_eps = 1e-5f;
  bool quick_gelu = true;  // "quick_gelu" (CLIP) or exact "gelu"
  bool causal = false;     // each position attends to itself and those before it (the text)

  // Takes the layers "<prefix>N.*" (N < count) from w, checking their shapes.
  static ClipEncoder bind(WeightStore& w, const std::string& prefix, int count, int64_t hidden, int64_t intermediate);
  // x [hidden, L, N] -> the last layer's output [hidden, L, N].
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* x, const nn::Options& options) const;
};

}  // namespace jsd
