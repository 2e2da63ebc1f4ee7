#include "networks/unet.h"

#include <cmath>

#include "runtime/error.h"

namespace jsd {

namespace {

// diffusers' Transformer2DModel normalizes its input with this epsilon, whatever the config says.
constexpr float kTransformerGroupNormEps = 1e-6f;
constexpr float kLayerNormEps = 1e-5f;

SpatialTransformer load_transformer(WeightStore& w, const std::string& p, int channels, int heads, int context_dim) {
  SpatialTransformer t;
  t.heads = heads;
  t.norm = w.norm(p + "norm", channels);
  t.proj_in = w.linear(p + "proj_in", channels, channels);
  t.proj_out = w.linear(p + "proj_out", channels, channels);
  const std::string b = p + "blocks.0.";
  TransformerBlock blk;
  blk.norm1 = w.norm(b + "norm1", channels);
  blk.norm2 = w.norm(b + "norm2", channels);
  blk.norm3 = w.norm(b + "norm3", channels);
  blk.attn1_q = w.linear(b + "attn1.to_q", channels, channels, false);
  blk.attn1_k = w.linear(b + "attn1.to_k", channels, channels, false);
  blk.attn1_v = w.linear(b + "attn1.to_v", channels, channels, false);
  blk.attn1_out = w.linear(b + "attn1.to_out.0", channels, channels);
  blk.attn2_q = w.linear(b + "attn2.to_q", channels, channels, false);
  blk.attn2_k = w.linear(b + "attn2.to_k", context_dim, channels, false);
  blk.attn2_v = w.linear(b + "attn2.to_v", context_dim, channels, false);
  blk.attn2_out = w.linear(b + "attn2.to_out.0", channels, channels);
  blk.ff_proj = w.linear(b + "ff.net.0.proj", channels, channels * 8);
  blk.ff_out = w.linear(b + "ff.net.2", channels * 4, channels);
  t.blocks.push_back(blk);
  return t;
}

}  // namespace

ResnetBlock load_resnet(WeightStore& w, const std::string& p, int in, int out, int temb_channels) {
  ResnetBlock r;
  r.norm1 = w.norm(p + "norm1", in);
  r.conv1 = w.conv(p + "conv1", 3, in, out);
  if (temb_channels > 0) r.time_emb_proj = w.linear(p + "time_emb_proj", temb_channels, out);
  r.norm2 = w.norm(p + "norm2", out);
  r.conv2 = w.conv(p + "conv2", 3, out, out);
  if (in != out) r.conv_shortcut = w.conv(p + "conv_shortcut", 1, in, out);
  return r;
}

ggml_tensor* resnet_forward(ggml_context* ctx, ggml_tensor* x, ggml_tensor* temb_silu, const ResnetBlock& r, int groups, float eps,
                            const nn::Options& options) {
  ggml_tensor* h = nn::group_norm(ctx, x, r.norm1, groups, eps, true, options);
  // The time embedding's projection [out, N] is added to conv1's output per image, the shortcut to conv2's.
  const bool timed = r.time_emb_proj.weight != nullptr && temb_silu != nullptr;
  h = nn::conv2d(ctx, h, r.conv1, 1, 1, timed ? nn::linear(ctx, temb_silu, r.time_emb_proj) : nullptr);
  h = nn::group_norm(ctx, h, r.norm2, groups, eps, true, options);
  ggml_tensor* shortcut = r.conv_shortcut.weight != nullptr ? nn::conv2d(ctx, x, r.conv_shortcut, 1, 0) : x;
  return nn::conv2d(ctx, h, r.conv2, 1, 1, nullptr, shortcut);
}

UNet::UNet(WeightStore& w, const UNetConfig& c) : config_(c) {
  const auto& ch = c.block_out_channels;
  const int levels = static_cast<int>(ch.size());
  const int temb = c.time_embed_dim();
  conv_in_ = w.conv("conv_in", 3, c.in_channels, ch[0]);
  time_linear_1_ = w.linear("time_embedding.linear_1", ch[0], temb);
  time_linear_2_ = w.linear("time_embedding.linear_2", temb, temb);

  int in = ch[0];
  for (int i = 0; i < levels; ++i) {
    const std::string p = "down_blocks." + std::to_string(i) + ".";
    Level level;
    for (int j = 0; j < c.layers_per_block; ++j) {
      level.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? in : ch[i], ch[i], temb));
      if (c.down_has_attention[i]) {
        level.attentions.push_back(load_transformer(w, p + "attentions." + std::to_string(j) + ".", ch[i], c.attention_heads[i], c.cross_attention_dim));
      }
    }
    if (i + 1 < levels) level.sampler = w.conv(p + "downsamplers.0.conv", 3, ch[i], ch[i]);
    down_.push_back(std::move(level));
    in = ch[i];
  }

  const int top = ch.back();
  mid_resnet_0_ = load_resnet(w, "mid_block.resnets.0.", top, top, temb);
  mid_attention_ = load_transformer(w, "mid_block.attentions.0.", top, c.attention_heads.back(), c.cross_attention_dim);
  mid_resnet_1_ = load_resnet(w, "mid_block.resnets.1.", top, top, temb);

  // Up blocks walk the levels in reverse; each resnet takes the previous output concatenated
  // with one skip connection from the down path.
  int prev = top;
  for (int i = 0; i < levels; ++i) {
    const int level_index = levels - 1 - i;
    const int out = ch[level_index];
    const std::string p = "up_blocks." + std::to_string(i) + ".";
    Level level;
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int skip = j == c.layers_per_block ? ch[std::max(level_index - 1, 0)] : out;
      const int res_in = (j == 0 ? prev : out) + skip;
      level.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j) + ".", res_in, out, temb));
      if (c.up_has_attention[i]) {
        level.attentions.push_back(
            load_transformer(w, p + "attentions." + std::to_string(j) + ".", out, c.attention_heads[level_index], c.cross_attention_dim));
      }
    }
    if (i + 1 < levels) level.sampler = w.conv(p + "upsamplers.0.conv", 3, out, out);
    up_.push_back(std::move(level));
    prev = out;
  }

  conv_norm_out_ = w.norm("conv_norm_out", ch[0]);
  conv_out_ = w.conv("conv_out", 3, ch[0], c.out_channels);
  w.check_all_used();
}

bool UNet::quantized() const {
  return !mid_attention_.blocks.empty() && ggml_is_quantized(mid_attention_.blocks.front().attn1_q.weight->type);
}

std::vector<float> UNet::timestep_embedding(const std::vector<float>& timesteps) const {
  // Mirrors diffusers' float32 arithmetic: exponent = -ln(10000) * arange(half) / (half - shift),
  // emb = t * exp(exponent), then [sin, cos] (or [cos, sin] with flip_sin_to_cos).
  const int dim = config_.block_out_channels[0];
  const int half = dim / 2;
  const float neg_log = static_cast<float>(-std::log(10000.0));
  const float denom = static_cast<float>(half - config_.freq_shift);
  std::vector<float> freqs(half);
  for (int j = 0; j < half; ++j) freqs[j] = std::exp(neg_log * static_cast<float>(j) / denom);
  std::vector<float> out(static_cast<size_t>(dim) * timesteps.size(), 0.0f);
  for (size_t n = 0; n < timesteps.size(); ++n) {
    float* row = out.data() + n * dim;
    for (int j = 0; j < half; ++j) {
      const float arg = timesteps[n] * freqs[j];
      const float s = std::sin(arg);
      const float c = std::cos(arg);
      row[j] = config_.flip_sin_to_cos ? c : s;
      row[half + j] = config_.flip_sin_to_cos ? s : c;
    }
  }
  return out;
}

ggml_tensor* UNet::transformer_forward(ggml_context* ctx, ggml_tensor* x, ggml_tensor* context, const SpatialTransformer& t,
                                       const nn::Options& options) const {
  const int64_t w = x->ne[0];
  const int64_t h = x->ne[1];
  const int64_t channels = x->ne[2];
  const float scale = 1.0f / std::sqrt(static_cast<float>(channels / t.heads));
  ggml_tensor* residual = x;
  ggml_tensor* s = nn::group_norm(ctx, x, t.norm, config_.norm_num_groups, kTransformerGroupNormEps, false, options);
  s = nn::linear_from_image(ctx, s, t.proj_in);  // [C, W*H, N]
  // Each sublayer's output projection adds the residual stream s.
  for (const TransformerBlock& b : t.blocks) {
    std::vector<ggml_tensor*> qkv = nn::norm_linears(ctx, s, b.norm1, kLayerNormEps, {&b.attn1_q, &b.attn1_k, &b.attn1_v});
    ggml_tensor* a = nn::attention(ctx, qkv[0], qkv[1], qkv[2], t.heads, scale, false, options);
    s = nn::linear(ctx, a, b.attn1_out, s);

    ggml_tensor* q = nn::norm_linears(ctx, s, b.norm2, kLayerNormEps, {&b.attn2_q})[0];
    std::vector<ggml_tensor*> kv = nn::linears(ctx, context, {&b.attn2_k, &b.attn2_v});
    a = nn::attention(ctx, q, kv[0], kv[1], t.heads, scale, false, options);
    s = nn::linear(ctx, a, b.attn2_out, s);

    // GEGLU: the projection's first half is the value, the second half the gate ([8C, L, N] -> [4C, L, N]).
    ggml_tensor* proj = nn::norm_linears(ctx, s, b.norm3, kLayerNormEps, {&b.ff_proj})[0];
    s = nn::geglu_linear(ctx, proj, b.ff_out, s, options);
  }
  return nn::linear_to_image(ctx, s, t.proj_out, w, h, residual);
}

ggml_tensor* UNet::build(ggml_context* ctx, ggml_tensor* sample, ggml_tensor* timestep_embedding, ggml_tensor* context,
                         const nn::Options& options) const {
  const int groups = config_.norm_num_groups;
  const float eps = config_.norm_eps;
  ggml_tensor* temb = nn::linear(ctx, timestep_embedding, time_linear_1_);
  temb = nn::linear(ctx, ggml_silu(ctx, temb), time_linear_2_);
  ggml_tensor* temb_silu = ggml_silu(ctx, temb);  // every resnet applies SiLU before its projection

  ggml_tensor* x = nn::conv2d(ctx, sample, conv_in_, 1, 1);
  std::vector<ggml_tensor*> skips{x};
  for (const Level& level : down_) {
    for (size_t j = 0; j < level.resnets.size(); ++j) {
      x = resnet_forward(ctx, x, temb_silu, level.resnets[j], groups, eps, options);
      if (!level.attentions.empty()) x = transformer_forward(ctx, x, context, level.attentions[j], options);
      skips.push_back(x);
    }
    if (level.sampler.weight != nullptr) {
      x = nn::conv2d(ctx, x, level.sampler, 2, 1);
      skips.push_back(x);
    }
  }

  x = resnet_forward(ctx, x, temb_silu, mid_resnet_0_, groups, eps, options);
  x = transformer_forward(ctx, x, context, mid_attention_, options);
  x = resnet_forward(ctx, x, temb_silu, mid_resnet_1_, groups, eps, options);

  for (const Level& level : up_) {
    for (size_t j = 0; j < level.resnets.size(); ++j) {
      ggml_tensor* skip = skips.back();
      skips.pop_back();
      x = resnet_forward(ctx, ggml_concat(ctx, x, skip, 2), temb_silu, level.resnets[j], groups, eps, options);
      if (!level.attentions.empty()) x = transformer_forward(ctx, x, context, level.attentions[j], options);
    }
    if (level.sampler.weight != nullptr) {
      // Nearest upsampling to the size of the next skip connection (2x, except where an odd
      // size was halved on the way down).
      ggml_tensor* next = skips.back();
      x = ggml_interpolate(ctx, x, next->ne[0], next->ne[1], x->ne[2], x->ne[3], GGML_SCALE_MODE_NEAREST);
      x = nn::conv2d(ctx, x, level.sampler, 1, 1);
    }
  }

  x = nn::group_norm(ctx, x, conv_norm_out_, groups, eps, true, options);
  return nn::conv2d(ctx, x, conv_out_, 1, 1);
}

}  // namespace jsd
