#include "kernels/cpu_fused.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu_activations.h"
#include "kernels/custom_op_params.h"

namespace jsd {

namespace {

// Contiguous ranges of `count` items per thread.
int64_t share(int64_t count, int ith, int nth) { return count * ith / nth; }

void geglu_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* proj = dst->src[0];
  const int64_t f = dst->ne[0];
  const int64_t rows = ggml_nrows(dst);
  for (int64_t r = share(rows, ith, nth); r < share(rows, ith + 1, nth); ++r) {
    const float* in = static_cast<const float*>(proj->data) + r * 2 * f;
    geglu_row(in, in + f, static_cast<float*>(dst->data) + r * f, f);
  }
}

// One task per image and group: the group's mean and variance over its channels' planes, then
// each channel's plane as x * (rstd * w) + (b - mean * rstd * w), SiLU'd where asked.
void group_norm_op(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* x = dst->src[0];
  const auto* weight = static_cast<const float*>(dst->src[1]->data);
  const auto* bias = static_cast<const float*>(dst->src[2]->data);
  const int groups = custom_param(dst, 0);
  const float eps = param_float(custom_param(dst, 1));
  const bool silu = custom_param(dst, 2) != 0;
  const int64_t plane = x->ne[0] * x->ne[1];
  const int64_t channels = x->ne[2];
  const int64_t per_group = (channels + groups - 1) / groups;  // ggml's split: the last group may be smaller
  const int64_t tasks = x->ne[3] * groups;
  for (int64_t task = ith; task < tasks; task += nth) {
    const int64_t n = task / groups;
    const int64_t c0 = (task % groups) * per_group;
    const int64_t c1 = std::min(channels, c0 + per_group);
    if (c0 >= c1) continue;
    const float* in = static_cast<const float*>(x->data) + (n * channels + c0) * plane;
    float* out = static_cast<float*>(dst->data) + (n * channels + c0) * plane;
    const int64_t count = (c1 - c0) * plane;
    double sum = 0;
    for (int64_t c = 0; c < c1 - c0; ++c) sum += sum_row(in + c * plane, plane);
    const float mean = static_cast<float>(sum / count);
    double dev = 0;
    for (int64_t c = 0; c < c1 - c0; ++c) dev += squared_deviations_row(in + c * plane, plane, mean);
    const float rstd = 1.0f / std::sqrt(static_cast<float>(dev / count) + eps);
    for (int64_t c = 0; c < c1 - c0; ++c) {
      const float scale = rstd * weight[c0 + c];
      affine_row(in + c * plane, scale, bias[c0 + c] - mean * scale, silu, out + c * plane, plane);
    }
  }
}

}  // namespace

ggml_tensor* cpu_geglu(ggml_context* ctx, ggml_tensor* proj) {
  GGML_ASSERT(proj->type == GGML_TYPE_F32 && ggml_is_contiguous(proj) && proj->ne[0] % 2 == 0);
  return ggml_custom_4d(ctx, GGML_TYPE_F32, proj->ne[0] / 2, proj->ne[1], proj->ne[2], proj->ne[3], &proj, 1, geglu_op, GGML_N_TASKS_MAX,
                        nullptr);
}

ggml_tensor* cpu_group_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int groups, float eps, bool silu) {
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  GGML_ASSERT(x->type == GGML_TYPE_F32 && weight->type == GGML_TYPE_F32 && bias->type == GGML_TYPE_F32);
  GGML_ASSERT(ggml_nelements(weight) == x->ne[2] && ggml_nelements(bias) == x->ne[2] && groups > 0);
  ggml_tensor* args[3] = {x, weight, bias};
  ggml_tensor* y = ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1], x->ne[2], x->ne[3], args, 3, group_norm_op, GGML_N_TASKS_MAX, nullptr);
  set_custom_params(y, {groups, float_param(eps), silu ? 1 : 0});
  return y;
}

}  // namespace jsd
