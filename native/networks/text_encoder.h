// transformers' CLIPTextModel as JSD uses it: token + position embeddings, pre-LN
// transformer layers with causal self-attention, final layer norm. Output [hidden, L, N].
#pragma once

#include "model/config.h"
#include "model/weights.h"
#include "networks/clip_encoder.h"
#include "networks/nn.h"

namespace jsd {

class TextEncoder {
 public:
  TextEncoder(WeightStore& weights, const TextEncoderConfig& config);
  // input_ids: I32 [L, N]; returns the last hidden state [hidden, L, N].
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* input_ids, const nn::Options& options) const;
  const TextEncoderConfig& config() const { return config_; }

 private:
  TextEncoderConfig config_;
  ggml_tensor* token_embedding = nullptr;     // [hidden, vocab]
  ggml_tensor* position_embedding = nullptr;  // [hidden, positions]
  ClipEncoder encoder_;
  Norm final_layer_norm_;
};

}  // namespace jsd
