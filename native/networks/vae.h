// diffusers' AutoencoderKL: Encoder (DownEncoderBlock2D x levels, mid block with one
// attention, quant_conv) and Decoder (post_quant_conv, mid block, UpDecoderBlock2D x levels).
#pragma once

#include <vector>

#include "model/config.h"
#include "networks/image_ops.h"
#include "networks/nn.h"
#include "networks/unet.h"
#include "model/weights.h"

namespace jsd {

class Vae {
 public:
  Vae(WeightStore& weights, const VaeConfig& config, bool with_encoder, bool with_decoder);
  // z [w, h, latent, N] (already divided by the scaling factor) -> image [8w, 8h, 3, N] in about [-1, 1].
  ggml_tensor* decode(ggml_context* ctx, ggml_tensor* z, const nn::Options& options) const;
  // image [W, H, 3, N] in [-1, 1] -> moments [W/8, H/8, 2*latent, N] (mean, then log-variance).
  ggml_tensor* encode(ggml_context* ctx, ggml_tensor* image, const nn::Options& options) const;
  const VaeConfig& config() const { return config_; }
  bool has_encoder() const { return has_encoder_; }
  bool has_decoder() const { return has_decoder_; }

 private:
  struct Attention {  // AttentionBlock: one head over all channels
    Norm group_norm;
    Linear to_q, to_k, to_v, to_out;
  };
  struct Mid {
    ResnetBlock resnet_0, resnet_1;
    Attention attention;
  };
  struct Level {
    std::vector<ResnetBlock> resnets;
    Conv2d sampler;
  };
  Mid load_mid(WeightStore& w, const std::string& prefix, int channels);
  // The layout a graph's images take: channels-last where the CPU's kernels run every convolution.
  nn::ImageOps image_ops(const nn::Options& options) const;
  bool all_convs_fit_channels_last() const;
  ggml_tensor* resnet_forward(ggml_context* ctx, ggml_tensor* x, const ResnetBlock& r, const nn::ImageOps& ops) const;
  ggml_tensor* mid_forward(ggml_context* ctx, ggml_tensor* x, const Mid& mid, const nn::Options& options, const nn::ImageOps& ops) const;
  ggml_tensor* attention_forward(ggml_context* ctx, ggml_tensor* x, const Attention& a, const nn::Options& options,
                                 const nn::ImageOps& ops) const;

  VaeConfig config_;
  bool has_encoder_ = false;
  bool has_decoder_ = false;
  bool convs_fit_channels_last_ = false;  // every convolution's weight is one the CPU's kernels take
  // encoder
  Conv2d enc_conv_in_, enc_conv_out_, quant_conv_;
  std::vector<Level> enc_levels_;
  Mid enc_mid_;
  Norm enc_norm_out_;
  // decoder
  Conv2d post_quant_conv_, dec_conv_in_, dec_conv_out_;
  std::vector<Level> dec_levels_;
  Mid dec_mid_;
  Norm dec_norm_out_;
};

}  // namespace jsd
