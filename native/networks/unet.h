// diffusers' UNet2DConditionModel with the SD v1 block pattern: CrossAttnDownBlock2D /
// DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D. Weight structs are
// named after the checkpoint's own names.
#pragma once

#include <vector>

#include "model/config.h"
#include "networks/nn.h"
#include "model/weights.h"

namespace jsd {

struct ResnetBlock {
  Norm norm1, norm2;
  Conv2d conv1, conv2;
  Linear time_emb_proj;  // weight null in the VAE (no time embedding)
  Conv2d conv_shortcut;  // weight null when in == out
};

struct TransformerBlock {
  Norm norm1, norm2, norm3;
  Linear attn1_q, attn1_k, attn1_v, attn1_out;
  Linear attn2_q, attn2_k, attn2_v, attn2_out;
  Linear ff_proj, ff_out;  // GEGLU: ff.net.0.proj, ff.net.2
};

struct SpatialTransformer {  // Transformer2DModel
  Norm norm;
  Linear proj_in, proj_out;
  std::vector<TransformerBlock> blocks;
  int heads = 8;
};

// Shared with the VAE (which passes no options: ggml's ops only).
ResnetBlock load_resnet(WeightStore& w, const std::string& prefix, int in, int out, int temb_channels);
ggml_tensor* resnet_forward(ggml_context* ctx, ggml_tensor* x, ggml_tensor* temb_silu, const ResnetBlock& r, int groups, float eps,
                            const nn::Options& options = {});

class UNet {
 public:
  UNet(WeightStore& weights, const UNetConfig& config);
  // sample [W, H, C, N]; timestep_embedding [flip/shifted sinusoid, N]; context [D, L, N].
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* sample, ggml_tensor* timestep_embedding, ggml_tensor* context,
                     const nn::Options& options) const;
  // diffusers' get_timestep_embedding in float32, on the host.
  std::vector<float> timestep_embedding(const std::vector<float>& timesteps) const;
  const UNetConfig& config() const { return config_; }
  // Whether its matrices are quantized (those of its attention blocks, as the file stores them).
  bool quantized() const;

 private:
  struct Level {
    std::vector<ResnetBlock> resnets;
    std::vector<SpatialTransformer> attentions;
    Conv2d sampler;  // downsamplers.0.conv / upsamplers.0.conv; weight null when absent
  };
  ggml_tensor* transformer_forward(ggml_context* ctx, ggml_tensor* x, ggml_tensor* context, const SpatialTransformer& t,
                                   const nn::Options& options) const;

  UNetConfig config_;
  Conv2d conv_in_, conv_out_;
  Linear time_linear_1_, time_linear_2_;
  std::vector<Level> down_, up_;
  ResnetBlock mid_resnet_0_, mid_resnet_1_;
  SpatialTransformer mid_attention_;
  Norm conv_norm_out_;
};

}  // namespace jsd
