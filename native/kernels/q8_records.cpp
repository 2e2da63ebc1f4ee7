#include "kernels/q8_records.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu_activations.h"
#include "kernels/custom_op_params.h"
#include "kernels/q8_gemm.h"
#include "kernels/q8_gemm_isa.h"

namespace jsd {

namespace {

// A thread's buffer of at least n floats (ggml's threads live as long as the process's pool).
float* scratch(int64_t n) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

// Contiguous ranges of `count` rows per thread (neighbouring pixels share input rows).
int64_t share(int64_t count, int ith, int nth) { return count * ith / nth; }

// Staging buffer per thread for a block of patches: up to about 512 KB (in L2).
constexpr int64_t kStageFloats = int64_t{1} << 17;

struct Conv {
  const float* image;  // the image's first channel plane
  int64_t w, h, channels;
  int kernel, stride, padding;
};

// The patches of output pixels ox0 .. ox0 + count - 1 of output row oy, into patches (patch i at
// patches + i * ld, ld >= kernel * kernel * channels + 1). Channel by channel and kernel row by
// kernel row: each input row is read once for the whole block. (Pixel by pixel, a patch touches
// a cache line in every channel plane, planes a power of two apart: the lines fight over the
// same cache sets and pages, 4 ns per value at 640 channels of 64x64.)
void gather_block(const Conv& cv, int64_t oy, int64_t ox0, int64_t count, float* patches, int64_t ld) {
  const int64_t plane = cv.w * cv.h;
  const int k = cv.kernel;
  const int64_t x_begin = ox0 * cv.stride - cv.padding;  // first input column of the block
  // Pixels [i0, i1) read their k columns (and, for k = 3, one more) inside the row.
  const int64_t i0 = std::min(count, x_begin >= 0 ? 0 : (-x_begin + cv.stride - 1) / cv.stride);
  const int64_t last = cv.w - (k == 3 ? 4 : k) - x_begin;  // the largest first column offset allowed
  const int64_t i1 = std::max(i0, std::min(count, last < 0 ? 0 : last / cv.stride + 1));
  for (int64_t c = 0; c < cv.channels; ++c) {
    for (int ky = 0; ky < k; ++ky) {
      const int64_t y = oy * cv.stride - cv.padding + ky;
      float* dst = patches + (c * k + ky) * k;
      if (y < 0 || y >= cv.h) {
        for (int64_t i = 0; i < count; ++i) std::fill(dst + i * ld, dst + i * ld + k, 0.0f);
        continue;
      }
      const float* row = cv.image + c * plane + y * cv.w;
      // Pixels whose window crosses the row's ends, value by value.
      const auto edge = [&](int64_t i) {
        for (int kx = 0; kx < k; ++kx) {
          const int64_t x = x_begin + i * cv.stride + kx;
          dst[i * ld + kx] = x >= 0 && x < cv.w ? row[x] : 0.0f;
        }
      };
      for (int64_t i = 0; i < i0; ++i) edge(i);
      const float* src = row + x_begin;
      if (k == 3) {
        // 4 values copied for 3: the extra one is overwritten by the next copy into this patch
        // (or lands in the patch's spare float).
        for (int64_t i = i0; i < i1; ++i) std::memcpy(dst + i * ld, src + i * cv.stride, 16);
      } else {
        for (int64_t i = i0; i < i1; ++i) {
          for (int kx = 0; kx < k; ++kx) dst[i * ld + kx] = src[i * cv.stride + kx];
        }
      }
      for (int64_t i = i1; i < count; ++i) edge(i);
    }
  }
}

void im2col_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* x = dst->src[0];
  const Conv cv{static_cast<const float*>(x->data), x->ne[0], x->ne[1], x->ne[2], custom_param(dst, 0), custom_param(dst, 1), custom_param(dst, 2)};
  const int64_t y0 = custom_param(dst, 3);
  const int64_t ow = dst->ne[1];
  const int64_t band = dst->ne[2];
  const int64_t k = int64_t{cv.kernel} * cv.kernel * cv.channels;
  const int64_t row_bytes = dst->ne[0];
  // Blocks of up to `block` pixels of one output row.
  const int64_t ld = k + 1;
  const int64_t block = std::max<int64_t>(1, std::min(ow, kStageFloats / ld));
  const int64_t per_row = (ow + block - 1) / block;
  const int64_t blocks = per_row * band * x->ne[3];
  float* patches = scratch(block * ld);
  auto* records = static_cast<uint8_t*>(dst->data);
  for (int64_t b = share(blocks, ith, nth); b < share(blocks, ith + 1, nth); ++b) {
    const int64_t ox0 = b % per_row * block;
    const int64_t row = b / per_row;  // (image, band row)
    const int64_t image = row / band;
    const int64_t count = std::min(block, ow - ox0);
    Conv in = cv;
    in.image += image * cv.channels * cv.h * cv.w;
    gather_block(in, y0 + row % band, ox0, count, patches, ld);
    for (int64_t i = 0; i < count; ++i) q8_quantize_row(patches + i * ld, k, records + (row * ow + ox0 + i) * row_bytes);
  }
}

void geglu_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* proj = dst->src[0];
  const int64_t f = proj->ne[0] / 2;
  const int64_t rows = ggml_nrows(dst);
  float* values = scratch(f);
  for (int64_t r = share(rows, ith, nth); r < share(rows, ith + 1, nth); ++r) {
    const float* in = static_cast<const float*>(proj->data) + r * 2 * f;
    geglu_row(in, in + f, values, f);
    q8_quantize_row(values, f, static_cast<uint8_t*>(dst->data) + r * dst->ne[0]);
  }
}

void layer_norm_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* x = dst->src[0];
  const auto* weight = static_cast<const float*>(dst->src[1]->data);
  const auto* bias = static_cast<const float*>(dst->src[2]->data);
  const float eps = param_float(custom_param(dst, 0));
  const int64_t c = x->ne[0];
  const int64_t rows = ggml_nrows(dst);
  float* values = scratch(c);
  for (int64_t r = share(rows, ith, nth); r < share(rows, ith + 1, nth); ++r) {
    const float* in = static_cast<const float*>(x->data) + r * c;
    const float mean = static_cast<float>(sum_row(in, c) / c);
    const float variance = static_cast<float>(squared_deviations_row(in, c, mean) / c);
    layer_norm_row(in, mean, 1.0f / std::sqrt(variance + eps), weight, bias, values, c);
    q8_quantize_row(values, c, static_cast<uint8_t*>(dst->data) + r * dst->ne[0]);
  }
}

}  // namespace

ggml_tensor* q8_records_im2col(ggml_context* ctx, ggml_tensor* x, int kernel, int stride, int padding, int64_t y0, int64_t y1) {
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  GGML_ASSERT(x->type == GGML_TYPE_F32 && kernel >= 1 && stride >= 1 && padding >= 0);
  const int64_t k = int64_t{kernel} * kernel * x->ne[2];
  const int64_t ow = (x->ne[0] + 2 * padding - kernel) / stride + 1;
  const int64_t oh = (x->ne[1] + 2 * padding - kernel) / stride + 1;
  GGML_ASSERT(k % kQ8Block == 0 && ow >= 1 && 0 <= y0 && y0 < y1 && y1 <= oh);
  ggml_tensor* records =
      ggml_custom_4d(ctx, GGML_TYPE_I8, q8_activation_row_bytes(k), ow, y1 - y0, x->ne[3], &x, 1, im2col_op, GGML_N_TASKS_MAX, nullptr);
  set_custom_params(records, {kernel, stride, padding, static_cast<int32_t>(y0)});
  return records;
}

ggml_tensor* q8_records_layer_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, float eps) {
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  GGML_ASSERT(x->type == GGML_TYPE_F32 && x->ne[0] % kQ8Block == 0 && ggml_nelements(weight) == x->ne[0] && ggml_nelements(bias) == x->ne[0]);
  ggml_tensor* args[3] = {x, weight, bias};
  ggml_tensor* records = ggml_custom_4d(ctx, GGML_TYPE_I8, q8_activation_row_bytes(x->ne[0]), x->ne[1], x->ne[2], x->ne[3], args, 3, layer_norm_op,
                                        GGML_N_TASKS_MAX, nullptr);
  set_custom_params(records, {float_param(eps)});
  return records;
}

ggml_tensor* q8_records_geglu(ggml_context* ctx, ggml_tensor* proj) {
  GGML_ASSERT(proj->type == GGML_TYPE_F32 && ggml_is_contiguous(proj) && proj->ne[0] % (2 * kQ8Block) == 0);
  return ggml_custom_4d(ctx, GGML_TYPE_I8, q8_activation_row_bytes(proj->ne[0] / 2), proj->ne[1], proj->ne[2], proj->ne[3], &proj, 1, geglu_op,
                        GGML_N_TASKS_MAX, nullptr);
}

}  // namespace jsd
