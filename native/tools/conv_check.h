// Correctness checks of the channels-last image ops (networks/image_ops.h over kernels/cpu_conv.h
// and kernels/cpu_group_norm.h) against ggml's own ops on [W, H, C, N] images, on random data of
// a given shape (for tests).
#pragma once

#include <cstdint>
#include <string>

namespace jsd {

struct ConvCheckShape {
  std::string type = "f32";  // the weight's: f32, f16 or bf16
  int64_t in = 1, out = 1, width = 1, height = 1, batch = 1;
  int kernel = 3, stride = 1, pad = 1, pad_after = 1;
  bool upsample = false;
  bool residual = false;
};

struct ImageOpCheck {
  std::string kernel;       // the convolution kernel that ran ("none": ggml's ops on both sides)
  double max_abs_diff = 0;  // between the channels-last output and ggml's
  double max_abs = 0;       // largest magnitude in ggml's output
};

// The convolution with the weight rounded to `type`; ggml's side multiplies that weight as f32, so
// that only the order of the f32 sums differs.
ImageOpCheck compare_conv(const ConvCheckShape& shape, int threads);

// Group norm (weight and bias) of channels x width x height x batch values around `mean`.
ImageOpCheck compare_group_norm(int64_t channels, int64_t width, int64_t height, int64_t batch, int groups, float mean, int threads);

}  // namespace jsd
