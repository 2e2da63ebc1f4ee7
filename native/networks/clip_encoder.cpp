#include "networks/clip_encoder.h"

#include <cmath>

namespace jsd {

ClipEncoder ClipEncoder::bind(WeightStore& w, const std::string& prefix, int count, int64_t hidden, int64_t intermediate) {
  ClipEncoder e;
  for (int i = 0; i < count; ++i) {
    const std::string p = prefix + std::to_string(i) + ".";
    ClipEncoderLayer l;
    l.layer_norm1 = w.norm(p + "layer_norm1", hidden);
    l.layer_norm2 = w.norm(p + "layer_norm2", hidden);
    l.q_proj = w.linear(p + "self_attn.q_proj", hidden, hidden);
    l.k_proj = w.linear(p + "self_attn.k_proj", hidden, hidden);
    l.v_proj = w.linear(p + "self_attn.v_proj", hidden, hidden);
    l.out_proj = w.linear(p + "self_attn.out_proj", hidden, hidden);
    l.fc1 = w.linear(p + "mlp.fc1", hidden, intermediate);
    l.fc2 = w.linear(p + "mlp.fc2", intermediate, hidden);
    e.layers.push_back(l);
  }
  return e;
}

ggml_tensor* ClipEncoder::build(ggml_context* ctx, ggml_tensor* x, const nn::Options& options) const {
  const int64_t hidden = x->ne[0];
  const float scale = 1.0f / std::sqrt(static_cast<float>(hidden / heads));
  for (const ClipEncoderLayer& l : layers) {
    ggml_tensor* h = nn::layer_norm(ctx, x, l.layer_norm1, layer_norm_eps);
    // CLIP scales the projected queries, not the scores.
    ggml_tensor* q = ggml_scale(ctx, nn::linear(ctx, h, l.q_proj), scale);
    ggml_tensor* k = nn::linear(ctx, h, l.k_proj);
    ggml_tensor* v = nn::linear(ctx, h, l.v_proj);
    h = nn::attention(ctx, q, k, v, heads, 1.0f, causal, options);
    x = ggml_add(ctx, x, nn::linear(ctx, h, l.out_proj));

    h = nn::layer_norm(ctx, x, l.layer_norm2, layer_norm_eps);
    h = nn::linear(ctx, h, l.fc1);
    h = quick_gelu ? ggml_mul(ctx, h, ggml_sigmoid(ctx, ggml_scale(ctx, h, 1.702f))) : ggml_gelu_erf(ctx, h);
    x = ggml_add(ctx, x, nn::linear(ctx, h, l.fc2));
  }
  return x;
}

}  // namespace jsd
