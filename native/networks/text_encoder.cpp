#include "networks/text_encoder.h"

namespace jsd {

TextEncoder::TextEncoder(WeightStore& w, const TextEncoderConfig& c) : config_(c) {
  const int64_t h = c.hidden_size;
  token_embedding = w.rows("embeddings.token_embedding.weight", {h, c.vocab_size}, false);
  position_embedding = w.rows("embeddings.position_embedding.weight", {h, c.max_position_embeddings}, true);
  encoder_ = ClipEncoder::bind(w, "encoder.layers.", c.num_hidden_layers, h, c.intermediate_size);
  encoder_.heads = c.num_attention_heads;
  encoder_.layer_norm_eps = c.layer_norm_eps;
  encoder_.quick_gelu = c.quick_gelu;
  encoder_.causal = true;
  final_layer_norm_ = w.norm("final_layer_norm", h);
  w.check_all_used();
}

ggml_tensor* TextEncoder::build(ggml_context* ctx, ggml_tensor* input_ids, const nn::Options& options) const {
  const int64_t length = input_ids->ne[0];
  const int64_t batch = input_ids->ne[1];
  ggml_tensor* ids = ggml_reshape_1d(ctx, input_ids, length * batch);
  ggml_tensor* x = ggml_get_rows(ctx, token_embedding, ids);  // [hidden, L*N]
  x = ggml_reshape_3d(ctx, x, config_.hidden_size, length, batch);
  ggml_tensor* positions = ggml_view_2d(ctx, position_embedding, config_.hidden_size, length, position_embedding->nb[1], 0);
  x = ggml_add(ctx, x, positions);
  x = encoder_.build(ctx, x, options);
  return nn::layer_norm(ctx, x, final_layer_norm_, config_.layer_norm_eps);
}

}  // namespace jsd
