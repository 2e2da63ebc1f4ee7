// Activation records (q8_gemm_isa.h) for q8_product, made straight from the tensor a product's
// input is computed from, so that the input never exists in f32 in memory: a convolution's
// patches (im2col) and a GEGLU's output. Per row, the values go to a small per-thread buffer,
// which the kernel table's quantizer turns into the row's record. Only the CPU backend runs them.
#pragma once

#include <cstdint>

#include "ggml.h"

namespace jsd {

// The records of a convolution's patches over x [W, H, C, N] (f32): per output pixel of the
// output rows [y0, y1), the kernel x kernel window at the stride, zeros past the image's edges
// (padding on every side), its values in a weight's order (channel, row, column: ggml's im2col);
// [row bytes, OW, y1 - y0, N], rows in the order (image, output row, output column). kernel *
// kernel * C must be a multiple of 32. Kernel 1 with no padding gives each pixel's channels: a
// 1x1 convolution's, or a sequence's [C, W * H, N] rows.
ggml_tensor* q8_records_im2col(ggml_context* ctx, ggml_tensor* x, int kernel, int stride, int padding, int64_t y0, int64_t y1);

// The records of layer norm's output per row of x [C, L, N] (f32), times weight plus bias ([C] f32).
ggml_tensor* q8_records_layer_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, float eps);

// The records of value * gelu(gate) per row of proj [2F, L, N] (f32; cpu_fused.h's GEGLU).
ggml_tensor* q8_records_geglu(ggml_context* ctx, ggml_tensor* proj);

}  // namespace jsd
