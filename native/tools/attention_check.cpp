#include "tools/attention_check.h"

#include <cmath>

#include "kernels/cpu_attention.h"
#include "tools/cpu_graph.h"
#include "runtime/error.h"
#include "networks/nn.h"

namespace jsd {

AttentionCheck compare_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads) {
  const int64_t c = heads * head_dim;
  if (heads < 1 || head_dim < 1 || lq < 1 || lk < 1 || batch < 1 || threads < 1 || threads > 512 || c * (lq + 2 * lk) * batch > (int64_t{1} << 26)) {
    throw Error(ErrorCode::InvalidArgument, "compareAttention: sizes out of range");
  }
  CpuGraph graph(256, threads);
  ggml_context* ctx = graph.ctx();
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
  graph.build({a, b});
  for (int i = 0; i < 3; ++i) graph.write(in[i], normal_values(ggml_nelements(in[i]), 11 + i, 1.5f));
  graph.compute();
  const Difference d = difference(graph.read(a), graph.read(b));
  AttentionCheck result;
  result.fused = fused.cpu_attention;
  result.kernel = cpu_attention_kernel();
  result.max_abs_diff = d.max_abs_diff;
  result.max_abs = d.max_abs;
  return result;
}

}  // namespace jsd
