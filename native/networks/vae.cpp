#include "networks/vae.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

namespace jsd {

namespace {
// The VAE's resnets, attention and output norms use this epsilon (diffusers hard-codes it).
constexpr float kVaeEps = 1e-6f;
// A 3x3 convolution that keeps the image's size.
constexpr ConvGeometry kSame{1, 1, 1, false};
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
  convs_fit_channels_last_ = all_convs_fit_channels_last();
}

bool Vae::all_convs_fit_channels_last() const {
  std::vector<const Conv2d*> convs = {&enc_conv_in_, &enc_conv_out_, &quant_conv_, &post_quant_conv_, &dec_conv_in_, &dec_conv_out_};
  auto add = [&](const ResnetBlock& r) { convs.insert(convs.end(), {&r.conv1, &r.conv2, &r.conv_shortcut}); };
  for (const std::vector<Level>* levels : {&enc_levels_, &dec_levels_}) {
    for (const Level& level : *levels) {
      convs.push_back(&level.sampler);
      for (const ResnetBlock& r : level.resnets) add(r);
    }
  }
  for (const Mid* mid : {&enc_mid_, &dec_mid_}) {
    add(mid->resnet_0);
    add(mid->resnet_1);
  }
  return std::all_of(convs.begin(), convs.end(), [](const Conv2d* c) { return c->weight == nullptr || nn::ImageOps::supports(*c); });
}

nn::ImageOps Vae::image_ops(const nn::Options& options) const {
  return nn::ImageOps(options.cpu_conv && convs_fit_channels_last_, options.threads);
}

// diffusers' ResnetBlock2D without the time embedding: the shortcut is added to the second
// convolution's output (in the channels-last layout, by the convolution itself).
ggml_tensor* Vae::resnet_forward(ggml_context* ctx, ggml_tensor* x, const ResnetBlock& r, const nn::ImageOps& ops) const {
  const int groups = config_.norm_num_groups;
  ggml_tensor* h = ggml_silu(ctx, ops.group_norm(ctx, x, r.norm1, groups, kVaeEps));
  h = ops.conv(ctx, h, r.conv1, kSame);
  h = ggml_silu(ctx, ops.group_norm(ctx, h, r.norm2, groups, kVaeEps));
  ggml_tensor* shortcut = r.conv_shortcut.weight != nullptr ? ops.conv(ctx, x, r.conv_shortcut, {}) : x;
  return ops.conv(ctx, h, r.conv2, kSame, shortcut);
}

ggml_tensor* Vae::attention_forward(ggml_context* ctx, ggml_tensor* x, const Attention& a, const nn::Options& options,
                                    const nn::ImageOps& ops) const {
  const int64_t w = ops.width(x);
  const int64_t h = ops.height(x);
  const int64_t channels = a.group_norm.weight->ne[0];
  const float scale = 1.0f / std::sqrt(static_cast<float>(channels));
  ggml_tensor* s = ops.to_sequence(ctx, ops.group_norm(ctx, x, a.group_norm, config_.norm_num_groups, kVaeEps));
  ggml_tensor* out = nn::attention(ctx, nn::linear(ctx, s, a.to_q), nn::linear(ctx, s, a.to_k), nn::linear(ctx, s, a.to_v), 1, scale, false, options);
  out = nn::linear(ctx, out, a.to_out);
  return ggml_add(ctx, ops.from_sequence(ctx, out, w, h), x);
}

ggml_tensor* Vae::mid_forward(ggml_context* ctx, ggml_tensor* x, const Mid& mid, const nn::Options& options, const nn::ImageOps& ops) const {
  x = resnet_forward(ctx, x, mid.resnet_0, ops);
  x = attention_forward(ctx, x, mid.attention, options, ops);
  return resnet_forward(ctx, x, mid.resnet_1, ops);
}

ggml_tensor* Vae::decode(ggml_context* ctx, ggml_tensor* z, const nn::Options& options) const {
  const nn::ImageOps ops = image_ops(options);
  ggml_tensor* x = ops.conv(ctx, ops.input(ctx, z), post_quant_conv_, {});
  x = ops.conv(ctx, x, dec_conv_in_, kSame);
  x = mid_forward(ctx, x, dec_mid_, options, ops);
  for (const Level& level : dec_levels_) {
    for (const ResnetBlock& r : level.resnets) x = resnet_forward(ctx, x, r, ops);
    // diffusers' Upsample2D: nearest 2x, then a 3x3 convolution.
    if (level.sampler.weight != nullptr) x = ops.conv(ctx, x, level.sampler, {1, 1, 1, true});
  }
  x = ggml_silu(ctx, ops.group_norm(ctx, x, dec_norm_out_, config_.norm_num_groups, kVaeEps));
  return ops.output(ctx, ops.conv(ctx, x, dec_conv_out_, kSame));
}

ggml_tensor* Vae::encode(ggml_context* ctx, ggml_tensor* image, const nn::Options& options) const {
  const nn::ImageOps ops = image_ops(options);
  ggml_tensor* x = ops.conv(ctx, ops.input(ctx, image), enc_conv_in_, kSame);
  for (const Level& level : enc_levels_) {
    for (const ResnetBlock& r : level.resnets) x = resnet_forward(ctx, x, r, ops);
    // diffusers pads only right and bottom, then convolves with stride 2 and no padding.
    if (level.sampler.weight != nullptr) x = ops.conv(ctx, x, level.sampler, {2, 0, 1, false});
  }
  x = mid_forward(ctx, x, enc_mid_, options, ops);
  x = ggml_silu(ctx, ops.group_norm(ctx, x, enc_norm_out_, config_.norm_num_groups, kVaeEps));
  x = ops.conv(ctx, x, enc_conv_out_, kSame);
  return ops.output(ctx, ops.conv(ctx, x, quant_conv_, {}));
}

}  // namespace jsd
