#include "attention_check.h"

#include <cmath>
#include <random>
#include <vector>

#include "cpu_attention.h"
#include "error.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "nn.h"

namespace jsd {

AttentionCheck compare_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads) {
  const int64_t c = heads * head_dim;
  if (heads < 1 || head_dim < 1 || lq < 1 || lk < 1 || batch < 1 || threads < 1 || threads > 512 || c * (lq + 2 * lk) * batch > (int64_t{1} << 26)) {
    throw Error(ErrorCode::InvalidArgument, "compareAttention: sizes out of range");
  }
  ggml_context* ctx = ggml_init(ggml_init_params{ggml_tensor_overhead() * 256 + ggml_graph_overhead(), nullptr, true});
  ggml_backend_t backend = ggml_backend_cpu_init();
  ggml_gallocr_t allocr = backend ? ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend)) : nullptr;
  auto release = [&]() {
    if (allocr) ggml_gallocr_free(allocr);
    if (backend) ggml_backend_free(backend);
    if (ctx) ggml_free(ctx);
  };
  if (ctx == nullptr || allocr == nullptr) {
    release();
    throw Error(ErrorCode::OutOfMemory, "compareAttention: cannot set up ggml");
  }
  ggml_tensor* in[3] = {ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lq, batch), ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lk, batch),
                        ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lk, batch)};
  for (ggml_tensor* t : in) ggml_set_input(t);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  nn::Options plain;
  nn::Options fused;
  fused.cpu_attention = cpu_attention_available();
  fused.threads = threads;
  ggml_tensor* a = nn::attention(ctx, in[0], in[1], in[2], heads, scale, false, fused);
  ggml_tensor* b = nn::attention(ctx, in[0], in[1], in[2], heads, scale, false, plain);
  ggml_set_output(a);
  ggml_set_output(b);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, a);
  ggml_build_forward_expand(graph, b);
  ggml_backend_cpu_set_n_threads(backend, threads);
  AttentionCheck result;
  result.fused = fused.cpu_attention;
  if (!ggml_gallocr_alloc_graph(allocr, graph)) {
    release();
    throw Error(ErrorCode::OutOfMemory, "compareAttention: cannot allocate the buffers");
  }
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  for (ggml_tensor* t : in) {
    std::vector<float> values(static_cast<size_t>(ggml_nelements(t)));
    for (float& v : values) v = normal(rng);
    ggml_backend_tensor_set(t, values.data(), 0, ggml_nbytes(t));
  }
  if (ggml_backend_graph_compute(backend, graph) != GGML_STATUS_SUCCESS) {
    release();
    throw Error(ErrorCode::Internal, "compareAttention: compute failed");
  }
  std::vector<float> fa(static_cast<size_t>(ggml_nelements(a))), fb(static_cast<size_t>(ggml_nelements(b)));
  ggml_backend_tensor_get(a, fa.data(), 0, ggml_nbytes(a));
  ggml_backend_tensor_get(b, fb.data(), 0, ggml_nbytes(b));
  release();
  for (size_t i = 0; i < fa.size(); ++i) {
    const double d = std::fabs(static_cast<double>(fa[i]) - fb[i]);
    result.max_abs_diff = std::isfinite(fa[i]) ? std::max(result.max_abs_diff, d) : INFINITY;
    result.max_abs = std::max(result.max_abs, static_cast<double>(std::fabs(fb[i])));
  }
  return result;
}

}  // namespace jsd
