// transformers' CLIPTextModel as JSD uses it: token + position embeddings, pre-LN
// transformer layers with causal self-attention, final layer norm. Output [hidden, L, N].
#pragma once

#include <vector>

#include "model/config.h"
#include "networks/nn.h"
#include "model/weights.h"

namespace jsd {

class TextEncoder {
 public:
  TextEncoder(WeightStore& weights, const TextEncoderConfig& config);
  // input_ids: I32 [L, N]; returns the last hidden state [hidden, L, N].
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* input_ids, const nn::Options& options) const;
  const TextEncoderConfig& config() const { return config_; }

 private:
  struct Layer {
    Norm layer_norm1, layer_norm2;
    Linear q_proj, k_proj, v_proj, out_proj;
    Linear fc1, fc2;
  };
  TextEncoderConfig config_;
  ggml_tensor* token_embedding = nullptr;     // [hidden, vocab]
  ggml_tensor* position_embedding = nullptr;  // [hidden, positions]
  std::vector<Layer> layers_;
  Norm final_layer_norm_;
};

}  // namespace jsd
