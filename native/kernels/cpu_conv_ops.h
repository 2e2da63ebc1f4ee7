// What the two convolution ops of cpu_conv.h share (cpu_conv.cpp: the direct one and the choice
// between them; cpu_conv_winograd.cpp: Winograd's): the kernel table in use, the ops' parameters,
// the problem a kernel sees, and a weight's rows as f32.
#pragma once

#include <cstdint>

#include "ggml.h"
#include "kernels/cpu_conv.h"
#include "kernels/cpu_conv_isa.h"

namespace jsd::conv_ops {

// The table chosen for this process (cpu_conv_available() says whether there is one).
const ConvKernels& kernels();

// The ops' parameters, kept in the node (custom_op_params.h).
struct Params {
  int kernel, stride, pad;
  bool upsample;
};
void set_params(ggml_tensor* op, const Params& p);
Params params_of(const ggml_tensor* op);

// The problem of a convolution op: x = src[0], packed = src[1], residual = src[2] if not null.
ConvProblem problem(const ggml_tensor* dst, const Params& params);

// Row o of the weight ([k, k, in, out]: o's k * k * in values are contiguous) as f32.
void weight_row(const ggml_tensor* w, int64_t o, int64_t length, float* out);

// Whether a 3x3 convolution of stride 1 and padding 1 goes through Winograd (cpu_conv_winograd.cpp).
bool winograd_fits(int64_t c_in, const ConvGeometry& g, int kernel);
// That convolution (upsampled first if g.upsample), with scratch for `threads` threads.
ggml_tensor* winograd_conv3x3(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, bool upsample,
                              ggml_tensor* residual, int threads);

}  // namespace jsd::conv_ops
