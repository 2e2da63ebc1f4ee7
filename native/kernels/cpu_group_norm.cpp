#include "kernels/cpu_group_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/custom_op_params.h"

namespace jsd {

namespace {

// Pixels whose sums are taken in f32 before they are added to the f64 totals.
constexpr int64_t kSumRun = 256;

// Thread ith of nth takes whole groups, groups [g0, g1) of every image, so that no other thread
// needs its sums: per image, one pass for the sums of each channel (of x minus its group's first
// value, which keeps the variance's sums small where the mean is large), one to write.
void group_norm(ggml_tensor* dst, int ith, int nth, void*) {
  const int groups = custom_param(dst, 0);
  const float eps = param_float(custom_param(dst, 1));
  const ggml_tensor* x = dst->src[0];
  const auto* gamma = static_cast<const float*>(dst->src[1]->data);
  const auto* beta = static_cast<const float*>(dst->src[2]->data);
  const int64_t c = x->ne[0];
  const int64_t pixels = x->ne[1] * x->ne[2];
  const int64_t n = x->ne[3];
  const int64_t per_group = c / groups;
  const int64_t g0 = groups * ith / nth;
  const int64_t g1 = groups * (ith + 1) / nth;
  if (g0 == g1) return;
  const int64_t ca = g0 * per_group;
  const int64_t width = (g1 - g0) * per_group;
  std::vector<float> shift(width), s1(width), s2(width), center(width), scale(width);
  std::vector<double> t1(width), t2(width);
  for (int64_t b = 0; b < n; ++b) {
    const float* in = static_cast<const float*>(x->data) + b * pixels * c + ca;
    float* out = static_cast<float*>(dst->data) + b * pixels * c + ca;
    for (int64_t j = 0; j < width; ++j) shift[j] = in[j / per_group * per_group];
    std::fill(t1.begin(), t1.end(), 0.0);
    std::fill(t2.begin(), t2.end(), 0.0);
    for (int64_t p0 = 0; p0 < pixels; p0 += kSumRun) {
      std::fill(s1.begin(), s1.end(), 0.0f);
      std::fill(s2.begin(), s2.end(), 0.0f);
      const int64_t p1 = std::min(pixels, p0 + kSumRun);
      for (int64_t p = p0; p < p1; ++p) {
        const float* row = in + p * c;
        for (int64_t j = 0; j < width; ++j) {
          const float d = row[j] - shift[j];
          s1[j] += d;
          s2[j] += d * d;
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        t1[j] += s1[j];
        t2[j] += s2[j];
      }
    }
    for (int64_t g = 0; g < g1 - g0; ++g) {
      double sum = 0, squares = 0;
      for (int64_t j = g * per_group; j < (g + 1) * per_group; ++j) {
        sum += t1[j];
        squares += t2[j];
      }
      const double count = static_cast<double>(pixels * per_group);
      const double mean = sum / count;  // of x - shift
      const double variance = std::max(0.0, squares / count - mean * mean);
      const double inv = 1.0 / std::sqrt(variance + eps);
      for (int64_t j = g * per_group; j < (g + 1) * per_group; ++j) {
        center[j] = static_cast<float>(mean + shift[j]);
        scale[j] = static_cast<float>(inv * gamma[ca + j]);
      }
    }
    for (int64_t p = 0; p < pixels; ++p) {
      const float* row = in + p * c;
      float* o = out + p * c;
      const float* shift_out = beta + ca;
      for (int64_t j = 0; j < width; ++j) o[j] = (row[j] - center[j]) * scale[j] + shift_out[j];
    }
  }
}

}  // namespace

ggml_tensor* cpu_group_norm_channels_last(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int groups, float eps) {
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  ggml_tensor* args[3] = {x, weight, bias};
  ggml_tensor* out = ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 3, group_norm, GGML_N_TASKS_MAX, nullptr);
  set_custom_params(out, {groups, float_param(eps)});
  return ggml_set_name(out, "group norm");
}

}  // namespace jsd
