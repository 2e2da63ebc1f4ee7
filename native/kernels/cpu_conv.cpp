#include "kernels/cpu_conv.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/cpu_conv_isa.h"
#include "kernels/cpu_conv_ops.h"
#include "kernels/custom_op_params.h"
#include "kernels/kernel_choice.h"

namespace jsd {

namespace conv_ops {

namespace {

// The ISA tables this build has, best first; each reports null where the CPU lacks its instructions.
const ConvKernels* (*const candidates[])() = {conv_kernels_avx512, conv_kernels_avx2};

// The first table this CPU runs; JSD_CONV_KERNEL=<name> picks one by name (a switch for same-run
// comparisons), JSD_NO_CPU_CONV=1 none (the networks then keep ggml's convolutions).
const ConvKernels* choose_kernels() {
  if (std::getenv("JSD_NO_CPU_CONV") != nullptr) return nullptr;
  return first_table(candidates, forced_name("JSD_CONV_KERNEL"));
}

const ConvKernels* chosen() {
  static const ConvKernels* table = choose_kernels();
  return table;
}

alignas(64) const float kZeros[kConvMaxInChannels] = {};

}  // namespace

const ConvKernels& kernels() { return *chosen(); }

void set_params(ggml_tensor* op, const Params& p) { set_custom_params(op, {p.kernel, p.stride, p.pad, p.upsample ? 1 : 0}); }

Params params_of(const ggml_tensor* op) { return {custom_param(op, 0), custom_param(op, 1), custom_param(op, 2), custom_param(op, 3) != 0}; }

ConvProblem problem(const ggml_tensor* dst, const Params& params) {
  const ggml_tensor* x = dst->src[0];
  ConvProblem p;
  p.x = static_cast<const float*>(x->data);
  p.packed = static_cast<const float*>(dst->src[1]->data);
  p.residual = dst->src[2] != nullptr ? static_cast<const float*>(dst->src[2]->data) : nullptr;
  p.zeros = kZeros;
  p.out = static_cast<float*>(dst->data);
  p.c_in = x->ne[0];
  p.w = x->ne[1];
  p.h = x->ne[2];
  p.n = x->ne[3];
  p.c_out = dst->ne[0];
  p.out_w = dst->ne[1];
  p.out_h = dst->ne[2];
  p.kernel = params.kernel;
  p.stride = params.stride;
  p.pad = params.pad;
  p.upsample = params.upsample;
  return p;
}

void weight_row(const ggml_tensor* w, int64_t o, int64_t length, float* out) {
  const int64_t first = o * length;
  switch (w->type) {
    case GGML_TYPE_F16:
      ggml_fp16_to_fp32_row(static_cast<const ggml_fp16_t*>(w->data) + first, out, length);
      break;
    case GGML_TYPE_BF16:
      ggml_bf16_to_fp32_row(static_cast<const ggml_bf16_t*>(w->data) + first, out, length);
      break;
    default:
      std::copy_n(static_cast<const float*>(w->data) + first, length, out);
  }
}

}  // namespace conv_ops

namespace {

using namespace conv_ops;

// Packed weights up to this size stay in a core's L2 cache while its tasks go through them all.
constexpr size_t kCachedWeightBytes = size_t{1} << 20;

constexpr int64_t kPackLanes = 16;  // output channels converted at once: one cache line per packed row

// The weights and biases in the kernels' blocks (ConvProblem::packed), blocks ith, ith + nth, ...
void pack(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* w = dst->src[0];
  const auto* bias = static_cast<const float*>(dst->src[1]->data);
  const int kernel = params_of(dst).kernel;
  const int64_t taps = int64_t{kernel} * kernel;
  const int64_t c_out = w->ne[ggml_n_dims(w) > 2 ? 3 : 1];
  const int64_t c_in = ggml_nelements(w) / (taps * c_out);
  const int64_t length = taps * c_in;
  const int64_t block = kernels().block;
  const int64_t blocks = (c_out + block - 1) / block;
  std::vector<float> rows(kPackLanes * length);
  for (int64_t b = ith; b < blocks; b += nth) {
    float* out = static_cast<float*>(dst->data) + b * conv_block_floats(block, kernel, c_in);
    for (int64_t l0 = 0; l0 < block; l0 += kPackLanes) {
      // Output channels o = b * block + l0 + lane: their rows (zeros beyond c_out), then each
      // (channel, tap)'s kPackLanes weights into one packed row.
      for (int64_t lane = 0; lane < kPackLanes; ++lane) {
        const int64_t o = b * block + l0 + lane;
        if (o < c_out) weight_row(w, o, length, rows.data() + lane * length);
        else std::fill_n(rows.data() + lane * length, length, 0.0f);
        out[length * block + l0 + lane] = o < c_out ? bias[o] : 0.0f;
      }
      for (int64_t c = 0; c < c_in; ++c) {
        for (int64_t t = 0; t < taps; ++t) {
          float* row = out + (t * c_in + c) * block + l0;
          for (int64_t lane = 0; lane < kPackLanes; ++lane) row[lane] = rows[lane * length + c * taps + t];
        }
      }
    }
  }
}

// Tasks of at most `chunk` output pixels of one output block, spread over ggml's threads.
void conv(ggml_tensor* dst, int ith, int nth, void*) {
  const ConvKernels& isa = kernels();
  const ConvProblem p = problem(dst, params_of(dst));
  const int64_t pixels = p.out_w * p.out_h * p.n;
  const int64_t chunks = (pixels + isa.chunk - 1) / isa.chunk;
  const int64_t blocks = (p.c_out + isa.block - 1) / isa.block;
  // Consecutive tasks share a block, so that a thread's tasks reuse the block's weights from its
  // cache; unless all the weights fit there, and then they share a chunk of pixels, which is read
  // from memory once rather than once per block (a 1x1 convolution uses each input value once per
  // block: measured 0.15 vs 0.22 s for the VAE's 256 -> 128 at 512x512 on one core).
  const bool chunk_major = ggml_nbytes(dst->src[1]) <= kCachedWeightBytes;
  for (int64_t task = ith; task < chunks * blocks; task += nth) {
    const int64_t b = chunk_major ? task % blocks : task / chunks;
    const int64_t p0 = (chunk_major ? task / blocks : task % chunks) * isa.chunk;
    isa.run(p, b, p0, std::min(pixels, p0 + isa.chunk));
  }
}

}  // namespace

bool cpu_conv_available() { return conv_ops::chosen() != nullptr; }

const char* cpu_conv_kernel_name() { return cpu_conv_available() ? kernels().name : "none"; }

bool cpu_conv_supports(const ggml_tensor* weight, int kernel, int64_t in) {
  const bool type = weight->type == GGML_TYPE_F32 || weight->type == GGML_TYPE_F16 || weight->type == GGML_TYPE_BF16;
  const bool shape = ggml_n_dims(weight) > 2 || kernel == 1;
  return type && shape && ggml_is_contiguous(weight) && kernel >= 1 && kernel <= 3 && in <= kConvMaxInChannels;
}

ggml_tensor* cpu_conv2d(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int kernel, const ConvGeometry& g,
                        int threads, ggml_tensor* residual) {
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  if (residual != nullptr && !ggml_is_contiguous(residual)) residual = ggml_cont(ctx, residual);
  const int64_t c_in = x->ne[0];
  if (winograd_fits(c_in, g, kernel)) return winograd_conv3x3(ctx, x, weight, bias, g.upsample, residual, threads);
  const int64_t c_out = ggml_nelements(weight) / (int64_t{kernel} * kernel * c_in);
  const int64_t block = kernels().block;
  const int64_t blocks = (c_out + block - 1) / block;
  const Params params{kernel, g.stride, g.pad, g.upsample};
  ggml_tensor* pack_args[2] = {weight, bias};
  ggml_tensor* packed = ggml_custom_4d(ctx, GGML_TYPE_F32, blocks * conv_block_floats(block, kernel, c_in), 1, 1, 1, pack_args, 2, pack,
                                       GGML_N_TASKS_MAX, nullptr);
  set_params(packed, params);
  ggml_set_name(packed, "conv weights");
  const int up = g.upsample ? 2 : 1;
  const int64_t out_w = (x->ne[1] * up + g.pad + g.pad_after - kernel) / g.stride + 1;
  const int64_t out_h = (x->ne[2] * up + g.pad + g.pad_after - kernel) / g.stride + 1;
  ggml_tensor* args[3] = {x, packed, residual};
  ggml_tensor* out = ggml_custom_4d(ctx, GGML_TYPE_F32, c_out, out_w, out_h, x->ne[3], args, residual != nullptr ? 3 : 2, conv,
                                    GGML_N_TASKS_MAX, nullptr);
  set_params(out, params);
  return ggml_format_name(out, "conv %dx%d", kernel, kernel);
}

}  // namespace jsd
