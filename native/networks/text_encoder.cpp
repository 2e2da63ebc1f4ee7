#include "networks/text_encoder.h"

#include <cmath>

namespace jsd {

TextEncoder::TextEncoder(WeightStore& w, const TextEncoderConfig& c) : config_(c) {
  const int64_t h = c.hidden_size;
  token_embedding = w.rows("embeddings.token_embedding.weight", {h, c.vocab_size}, false);
  position_embedding = w.rows("embeddings.position_embedding.weight", {h, c.max_position_embeddings}, true);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "encoder.layers." + std::to_string(i) + ".";
    Layer l;
    l.layer_norm1 = w.norm(p + "layer_norm1", h);
    l.layer_norm2 = w.norm(p + "layer_norm2", h);
    l.q_proj = w.linear(p + "self_attn.q_proj", h, h);
    l.k_proj = w.linear(p + "self_attn.k_proj", h, h);
    l.v_proj = w.linear(p + "self_attn.v_proj", h, h);
    l.out_proj = w.linear(p + "self_attn.out_proj", h, h);
    l.fc1 = w.linear(p + "mlp.fc1", h, c.intermediate_size);
    l.fc2 = w.linear(p + "mlp.fc2", c.intermediate_size, h);
    layers_.push_back(l);
  }
  final_layer_norm_ = w.norm("final_layer_norm", h);
  w.check_all_used();
}

ggml_tensor* TextEncoder::build(ggml_context* ctx, ggml_tensor* input_ids, const nn::Options& options) const {
  const int64_t length = input_ids->ne[0];
  const int64_t batch = input_ids->ne[1];
  const int heads = config_.num_attention_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(config_.hidden_size / heads));

  ggml_tensor* ids = ggml_reshape_1d(ctx, input_ids, length * batch);
  ggml_tensor* x = ggml_get_rows(ctx, token_embedding, ids);  // [hidden, L*N]
  x = ggml_reshape_3d(ctx, x, config_.hidden_size, length, batch);
  ggml_tensor* positions = ggml_view_2d(ctx, position_embedding, config_.hidden_size, length, position_embedding->nb[1], 0);
  x = ggml_add(ctx, x, positions);

  for (const Layer& l : layers_) {
    ggml_tensor* h = nn::layer_norm(ctx, x, l.layer_norm1, config_.layer_norm_eps);
    // CLIP scales the projected queries, not the scores.
    ggml_tensor* q = ggml_scale(ctx, nn::linear(ctx, h, l.q_proj), scale);
    ggml_tensor* k = nn::linear(ctx, h, l.k_proj);
    ggml_tensor* v = nn::linear(ctx, h, l.v_proj);
    h = nn::attention(ctx, q, k, v, heads, 1.0f, /*causal=*/true, options);
    x = ggml_add(ctx, x, nn::linear(ctx, h, l.out_proj));

    h = nn::layer_norm(ctx, x, l.layer_norm2, config_.layer_norm_eps);
    h = nn::linear(ctx, h, l.fc1);
    h = config_.quick_gelu ? ggml_mul(ctx, h, ggml_sigmoid(ctx, ggml_scale(ctx, h, 1.702f))) : ggml_gelu_erf(ctx, h);
    x = ggml_add(ctx, x, nn::linear(ctx, h, l.fc2));
  }
  return nn::layer_norm(ctx, x, final_layer_norm_, config_.layer_norm_eps);
}

}  // namespace jsd
