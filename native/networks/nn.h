// Building blocks shared by the three networks, as ggml graph functions. Layouts:
// images are [W, H, C, N] (ggml order, i.e. PyTorch's NCHW), sequences are [C, L, N].
#pragma once

#include "ggml.h"
#include "model/weights.h"

namespace jsd::nn {

struct Options {
  bool flash_attention = false;  // ggml_flash_attn_ext instead of softmax(QK^T)V
  bool cpu_attention = false;    // cpu_attention.h's fused op (the network runs on the CPU backend)
  bool cpu_fused = false;        // the network runs on the CPU backend: cpu_fused.h's ops replace chains of ggml's
  int threads = 1;               // the most threads a graph will be computed with
};

// weight [in, out] times x [in, ...]: ggml_mul_mat, or q8_gemm.h's kernel for interleaved q8_0,
// as the weight's layout says.
ggml_tensor* matmul(ggml_context* ctx, ggml_tensor* weight, WeightLayout layout, ggml_tensor* x);
ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const Linear& l);
ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, float eps);
// Group norm of [W, H, C, N], then SiLU where silu: one fused op with options.cpu_fused.
ggml_tensor* group_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, int groups, float eps, bool silu = false, const Options& options = {});
// diffusers' GEGLU activation of its projection proj [2F, L, N] (value, then gate): value * gelu(gate).
ggml_tensor* geglu(ggml_context* ctx, ggml_tensor* proj, const Options& options);
ggml_tensor* conv2d(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding);

// [W, H, C, N] <-> [C, W*H, N]
ggml_tensor* image_to_sequence(ggml_context* ctx, ggml_tensor* x);
ggml_tensor* sequence_to_image(ggml_context* ctx, ggml_tensor* x, int64_t w, int64_t h);

// Multi-head attention of q [C, Lq, N] over k, v [C, Lk, N] (already projected).
// scale multiplies QK^T; causal masks keys after each query.
ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, bool causal,
                       const Options& options);

}  // namespace jsd::nn
