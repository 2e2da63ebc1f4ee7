#include "networks/image_ops.h"

#include "kernels/cpu_group_norm.h"
#include "networks/nn.h"

namespace jsd::nn {

ggml_tensor* ImageOps::input(ggml_context* ctx, ggml_tensor* x) const {
  return channels_last_ ? ggml_cont(ctx, ggml_permute(ctx, x, 1, 2, 0, 3)) : x;  // [W, H, C, N] -> [C, W, H, N]
}

ggml_tensor* ImageOps::output(ggml_context* ctx, ggml_tensor* x) const {
  return channels_last_ ? ggml_cont(ctx, ggml_permute(ctx, x, 2, 0, 1, 3)) : x;  // [C, W, H, N] -> [W, H, C, N]
}

ggml_tensor* ImageOps::conv(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, const ConvGeometry& g, ggml_tensor* residual) const {
  if (channels_last_) return cpu_conv2d(ctx, x, c.weight, c.bias, c.kernel, g, threads_, residual);
  if (g.upsample) x = ggml_upscale(ctx, x, 2, GGML_SCALE_MODE_NEAREST);
  int padding = g.pad;
  if (g.pad_after != g.pad) {
    x = ggml_pad_ext(ctx, x, g.pad, g.pad_after, g.pad, g.pad_after, 0, 0, 0, 0);
    padding = 0;
  }
  ggml_tensor* out = nn::conv2d(ctx, x, c, g.stride, padding);
  return residual != nullptr ? ggml_add(ctx, residual, out) : out;
}

ggml_tensor* ImageOps::group_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, int groups, float eps) const {
  return channels_last_ ? cpu_group_norm_channels_last(ctx, x, n.weight, n.bias, groups, eps) : nn::group_norm(ctx, x, n, groups, eps);
}

ggml_tensor* ImageOps::to_sequence(ggml_context* ctx, ggml_tensor* x) const {
  return channels_last_ ? ggml_reshape_3d(ctx, x, x->ne[0], x->ne[1] * x->ne[2], x->ne[3]) : image_to_sequence(ctx, x);
}

ggml_tensor* ImageOps::from_sequence(ggml_context* ctx, ggml_tensor* s, int64_t w, int64_t h) const {
  if (!channels_last_) return sequence_to_image(ctx, s, w, h);
  if (!ggml_is_contiguous(s)) s = ggml_cont(ctx, s);
  return ggml_reshape_4d(ctx, s, s->ne[0], w, h, s->ne[2]);
}

bool ImageOps::supports(const Conv2d& c) { return cpu_conv_supports(c.weight, c.kernel, c.in); }

}  // namespace jsd::nn
