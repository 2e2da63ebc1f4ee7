#include "networks/vae.h"

#include <cmath>

namespace jsd {

namespace {
// The VAE's resnets, attention and output norms use this epsilon (diffusers hard-codes it).
constexpr float kVaeEps = 1e-6f;
}  // namespace

Vae::Mid Vae::load_mid(WeightStore& w, const std::string& p, int channels) {
  Mid m;
  m.resnet_0 = load_resnet(w, p + "resnets.0.", channels, channels, 0);
  m.resnet_1 = load_resnet(w, p + "resnets.1.", channels, channels, 0);
  const std::string a = p + "attentions.0.";
  m.attention.group_norm = w.norm(a + "group_norm", channels);
  m.attention.to_q = w.linear(a + "to_q", channels, channels);
  m.attention.to_k = w.linear(a + "to_k", channels, channels);
  m.attention.to_v = w.linear(a + "to_v", channels, channels);
  m.attention.to_out = w.linear(a + "to_out.0", channels, channels);
  return m;
}

Vae::Vae(WeightStore& w, const VaeConfig& c, bool with_encoder, bool with_decoder)
    : config_(c), has_encoder_(with_encoder), has_decoder_(with_decoder) {
  const auto& ch = c.block_out_channels;
  const int levels = static_cast<int>(ch.size());
  if (with_encoder) {
    enc_conv_in_ = w.conv("encoder.conv_in", 3, c.in_channels, ch[0]);
    int in = ch[0];
    for (int i = 0; i < levels; ++i) {
      const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
      Level level;
      for (int j = 0; j < c.layers_per_block; ++j) {
        level.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? in : ch[i], ch[i], 0));
      }
      if (i + 1 < levels) level.sampler = w.conv(p + "downsamplers.0.conv", 3, ch[i], ch[i]);
      enc_levels_.push_back(std::move(level));
      in = ch[i];
    }
    enc_mid_ = load_mid(w, "encoder.mid_block.", ch.back());
    enc_norm_out_ = w.norm("encoder.conv_norm_out", ch.back());
    enc_conv_out_ = w.conv("encoder.conv_out", 3, ch.back(), 2 * c.latent_channels);
    quant_conv_ = w.conv("quant_conv", 1, 2 * c.latent_channels, 2 * c.latent_channels);
  }
  if (with_decoder) {
    post_quant_conv_ = w.conv("post_quant_conv", 1, c.latent_channels, c.latent_channels);
    dec_conv_in_ = w.conv("decoder.conv_in", 3, c.latent_channels, ch.back());
    dec_mid_ = load_mid(w, "decoder.mid_block.", ch.back());
    int prev = ch.back();
    for (int i = 0; i < levels; ++i) {
      const int out = ch[levels - 1 - i];
      const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
      Level level;
      for (int j = 0; j <= c.layers_per_block; ++j) {
        level.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? prev : out, out, 0));
      }
      if (i + 1 < levels) level.sampler = w.conv(p + "upsamplers.0.conv", 3, out, out);
      dec_levels_.push_back(std::move(level));
      prev = out;
    }
    dec_norm_out_ = w.norm("decoder.conv_norm_out", ch[0]);
    dec_conv_out_ = w.conv("decoder.conv_out", 3, ch[0], c.out_channels);
  }
  if (with_encoder && with_decoder) w.check_all_used();
}

ggml_tensor* Vae::attention_forward(ggml_context* ctx, ggml_tensor* x, const Attention& a, const nn::Options& options) const {
  const int64_t w = x->ne[0];
  const int64_t h = x->ne[1];
  const float scale = 1.0f / std::sqrt(static_cast<float>(x->ne[2]));
  ggml_tensor* s = nn::image_to_sequence(ctx, nn::group_norm(ctx, x, a.group_norm, config_.norm_num_groups, kVaeEps));
  ggml_tensor* out = nn::attention(ctx, nn::linear(ctx, s, a.to_q), nn::linear(ctx, s, a.to_k), nn::linear(ctx, s, a.to_v), 1, scale, false, options);
  out = nn::linear(ctx, out, a.to_out);
  return ggml_add(ctx, nn::sequence_to_image(ctx, out, w, h), x);
}

ggml_tensor* Vae::mid_forward(ggml_context* ctx, ggml_tensor* x, const Mid& mid, const nn::Options& options) const {
  x = resnet_forward(ctx, x, nullptr, mid.resnet_0, config_.norm_num_groups, kVaeEps);
  x = attention_forward(ctx, x, mid.attention, options);
  return resnet_forward(ctx, x, nullptr, mid.resnet_1, config_.norm_num_groups, kVaeEps);
}

ggml_tensor* Vae::decode(ggml_context* ctx, ggml_tensor* z, const nn::Options& options) const {
  const int groups = config_.norm_num_groups;
  ggml_tensor* x = nn::conv2d(ctx, z, post_quant_conv_, 1, 0);
  x = nn::conv2d(ctx, x, dec_conv_in_, 1, 1);
  x = mid_forward(ctx, x, dec_mid_, options);
  for (const Level& level : dec_levels_) {
    for (const ResnetBlock& r : level.resnets) x = resnet_forward(ctx, x, nullptr, r, groups, kVaeEps);
    if (level.sampler.weight != nullptr) {
      x = ggml_upscale(ctx, x, 2, GGML_SCALE_MODE_NEAREST);
      x = nn::conv2d(ctx, x, level.sampler, 1, 1);
    }
  }
  x = ggml_silu(ctx, nn::group_norm(ctx, x, dec_norm_out_, groups, kVaeEps));
  return nn::conv2d(ctx, x, dec_conv_out_, 1, 1);
}

ggml_tensor* Vae::encode(ggml_context* ctx, ggml_tensor* image, const nn::Options& options) const {
  const int groups = config_.norm_num_groups;
  ggml_tensor* x = nn::conv2d(ctx, image, enc_conv_in_, 1, 1);
  for (const Level& level : enc_levels_) {
    for (const ResnetBlock& r : level.resnets) x = resnet_forward(ctx, x, nullptr, r, groups, kVaeEps);
    if (level.sampler.weight != nullptr) {
      // diffusers pads only right and bottom, then convolves with stride 2 and no padding.
      x = ggml_pad_ext(ctx, x, 0, 1, 0, 1, 0, 0, 0, 0);
      x = nn::conv2d(ctx, x, level.sampler, 2, 0);
    }
  }
  x = mid_forward(ctx, x, enc_mid_, options);
  x = ggml_silu(ctx, nn::group_norm(ctx, x, enc_norm_out_, groups, kVaeEps));
  x = nn::conv2d(ctx, x, enc_conv_out_, 1, 1);
  return nn::conv2d(ctx, x, quant_conv_, 1, 0);
}

}  // namespace jsd
