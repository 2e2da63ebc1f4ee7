// The image operations the VAE's blocks are built from, over one of two layouts of its images:
// ggml's [W, H, C, N] (PyTorch's NCHW), which every backend runs with ggml's own ops (nn.h), or
// channels-last [C, W, H, N] (PyTorch's NHWC), for the CPU's direct convolution and group norm
// (kernels/cpu_conv.h, kernels/cpu_group_norm.h): there convolutions, norms and the attention's
// sequences chain without im2col, transposes or concatenated bands. A network's blocks are written
// once against ImageOps; the layout is chosen per graph (Vae::image_ops).
#pragma once

#include "ggml.h"
#include "kernels/cpu_conv.h"
#include "model/weights.h"

namespace jsd::nn {

class ImageOps {
 public:
  // threads: the most the graph will be computed with (the channels-last ops' scratch).
  ImageOps(bool channels_last, int threads) : channels_last_(channels_last), threads_(threads) {}
  bool channels_last() const { return channels_last_; }

  // A [W, H, C, N] image into this layout, and back.
  ggml_tensor* input(ggml_context* ctx, ggml_tensor* x) const;
  ggml_tensor* output(ggml_context* ctx, ggml_tensor* x) const;
  int64_t width(const ggml_tensor* x) const { return x->ne[channels_last_ ? 1 : 0]; }
  int64_t height(const ggml_tensor* x) const { return x->ne[channels_last_ ? 2 : 1]; }

  // c's convolution of x with geometry g (ConvGeometry: stride, padding, a nearest 2x upsampling
  // of x first), plus residual if not null.
  ggml_tensor* conv(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, const ConvGeometry& g, ggml_tensor* residual = nullptr) const;
  ggml_tensor* group_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, int groups, float eps) const;
  // The image as a sequence [C, W*H, N], and a sequence back as an image of width w, height h.
  ggml_tensor* to_sequence(ggml_context* ctx, ggml_tensor* x) const;
  ggml_tensor* from_sequence(ggml_context* ctx, ggml_tensor* s, int64_t w, int64_t h) const;

  // Whether the channels-last kernels take this convolution's weight.
  static bool supports(const Conv2d& c);

 private:
  bool channels_last_;
  int threads_;
};

}  // namespace jsd::nn
