// Building blocks shared by the three networks, as ggml graph functions. Layouts:
// images are [W, H, C, N] (ggml order, i.e. PyTorch's NCHW), sequences are [C, L, N].
#pragma once

#include <initializer_list>
#include <vector>

#include "ggml.h"
#include "model/weights.h"

namespace jsd::nn {

struct Options {
  bool flash_attention = false;  // ggml_flash_attn_ext instead of softmax(QK^T)V
  bool cpu_attention = false;    // cpu_attention.h's fused op (the network runs on the CPU backend)
  bool cpu_attention_bf16 = false;  // that op may round to bf16 (the network's matrices are quantized)
  bool cpu_conv = false;         // cpu_conv.h's channels-last convolutions (the network runs on the CPU backend)
  bool cpu_fused = false;        // the network runs on the CPU backend: cpu_fused.h's ops replace chains of ggml's
  int threads = 1;               // the most threads a graph will be computed with
};

// weight [in, out] times x [in, ...]: ggml_mul_mat, or q8_gemm.h's kernel for interleaved q8_0,
// as the weight's layout says.
ggml_tensor* matmul(ggml_context* ctx, ggml_tensor* weight, WeightLayout layout, ggml_tensor* x);
// x [in, ...] times l, plus l's bias, plus residual (the product's shape) where given. With an
// interleaved weight the int8 kernel adds both to its output tiles (q8_product), else ggml_add
// does, in the same order.
ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const Linear& l, ggml_tensor* residual = nullptr);
// Several linears of one input, whose activations are quantized once for all those the int8
// kernels multiply.
std::vector<ggml_tensor*> linears(ggml_context* ctx, ggml_tensor* x, std::initializer_list<const Linear*> layers);
// Several linears of layer_norm(x, n, eps): with interleaved weights, the norm's values go straight
// into the int8 kernels' activation records.
std::vector<ggml_tensor*> norm_linears(ggml_context* ctx, ggml_tensor* x, const Norm& n, float eps, std::initializer_list<const Linear*> layers);
// l on each pixel of an image [W, H, C, N] -> a sequence [C', W*H, N] (image_to_sequence, then
// linear); and l on a sequence [C, W*H, N] -> an image [W, H, C', N] plus residual (an image)
// where given. The int8 kernels read and write the image layout themselves: no transposed copy.
ggml_tensor* linear_from_image(ggml_context* ctx, ggml_tensor* image, const Linear& l);
ggml_tensor* linear_to_image(ggml_context* ctx, ggml_tensor* x, const Linear& l, int64_t w, int64_t h, ggml_tensor* residual);
// l(geglu(proj)) + residual: with an interleaved weight the GEGLU's values go straight into the
// int8 kernel's activation records.
ggml_tensor* geglu_linear(ggml_context* ctx, ggml_tensor* proj, const Linear& l, ggml_tensor* residual, const Options& options);
ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, float eps);
// Group norm of [W, H, C, N], then SiLU where silu: one fused op with options.cpu_fused.
ggml_tensor* group_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, int groups, float eps, bool silu = false, const Options& options = {});
// diffusers' GEGLU activation of its projection proj [2F, L, N] (value, then gate): value * gelu(gate).
ggml_tensor* geglu(ggml_context* ctx, ggml_tensor* proj, const Options& options);
// A 2-D convolution of x [W, H, C, N], plus its bias, plus image_bias [out, N] (one bias per image:
// a resnet's time embedding) and residual (the output's shape) where given.
ggml_tensor* conv2d(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding, ggml_tensor* image_bias = nullptr,
                    ggml_tensor* residual = nullptr);

// [W, H, C, N] <-> [C, W*H, N]
ggml_tensor* image_to_sequence(ggml_context* ctx, ggml_tensor* x);
ggml_tensor* sequence_to_image(ggml_context* ctx, ggml_tensor* x, int64_t w, int64_t h);

// Multi-head attention of q [C, Lq, N] over k, v [C, Lk, N] (already projected).
// scale multiplies QK^T; causal masks keys after each query.
ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, bool causal,
                       const Options& options);

}  // namespace jsd::nn
