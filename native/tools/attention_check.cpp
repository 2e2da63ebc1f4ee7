#include "tools/attention_check.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <string>
#include <vector>

#include "kernels/cpu_attention.h"
#include "tools/cpu_graph.h"
#include "runtime/error.h"
#include "networks/nn.h"

namespace jsd {

namespace {

// q [C, Lq, N], k and v [C, Lk, N] as graph inputs, after checking the sizes (`what` names the
// call in the error).
struct AttentionInputs {
  ggml_tensor* in[3];
  float scale;
};

AttentionInputs attention_inputs(CpuGraph& graph, const char* what, int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads) {
  const int64_t c = heads * head_dim;
  if (heads < 1 || head_dim < 1 || lq < 1 || lk < 1 || batch < 1 || threads < 1 || threads > 512 || c * (lq + 2 * lk) * batch > (int64_t{1} << 26)) {
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": sizes out of range");
  }
  ggml_context* ctx = graph.ctx();
  AttentionInputs r{{ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lq, batch), ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lk, batch),
                     ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c, lk, batch)},
                    1.0f / std::sqrt(static_cast<float>(head_dim))};
  for (ggml_tensor* t : r.in) ggml_set_input(t);
  return r;
}

void write_inputs(CpuGraph& graph, const AttentionInputs& inputs) {
  for (int i = 0; i < 3; ++i) graph.write(inputs.in[i], normal_values(ggml_nelements(inputs.in[i]), 11 + i, 1.5f));
}

nn::Options fused_options(int threads) {
  nn::Options fused;
  fused.cpu_attention = cpu_attention_available();
  fused.threads = threads;
  return fused;
}

}  // namespace

AttentionCheck compare_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads, bool bf16) {
  CpuGraph graph(256, threads);
  const AttentionInputs inputs = attention_inputs(graph, "compareAttention", heads, head_dim, lq, lk, batch, threads);
  nn::Options fused = fused_options(threads);
  fused.cpu_attention_bf16 = bf16;
  ggml_tensor* a = nn::attention(graph.ctx(), inputs.in[0], inputs.in[1], inputs.in[2], heads, inputs.scale, false, fused);
  ggml_tensor* b = nn::attention(graph.ctx(), inputs.in[0], inputs.in[1], inputs.in[2], heads, inputs.scale, false, nn::Options{});
  graph.build({a, b});
  write_inputs(graph, inputs);
  graph.compute();
  const Difference d = difference(graph.read(a), graph.read(b));
  AttentionCheck result;
  result.fused = fused.cpu_attention;
  result.kernel = cpu_attention_kernel(bf16);
  result.max_abs_diff = d.max_abs_diff;
  result.max_abs = d.max_abs;
  return result;
}

AttentionBench bench_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads, int runs) {
  if (runs < 1 || runs > 1000) throw Error(ErrorCode::InvalidArgument, "benchAttention: runs out of range");
  CpuGraph graph(256, threads);
  const AttentionInputs inputs = attention_inputs(graph, "benchAttention", heads, head_dim, lq, lk, batch, threads);
  const nn::Options fused = fused_options(threads);
  ggml_tensor* out = nn::attention(graph.ctx(), inputs.in[0], inputs.in[1], inputs.in[2], heads, inputs.scale, false, fused);
  graph.build({out});
  write_inputs(graph, inputs);
  graph.compute();  // first touch of the compute buffer, outside the timing
  std::vector<double> seconds;
  for (int i = 0; i < runs; ++i) {
    const std::clock_t c0 = std::clock();  // process CPU time, all threads
    graph.compute();
    seconds.push_back(static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
  }
  std::sort(seconds.begin(), seconds.end());
  AttentionBench result;
  result.kernel = fused.cpu_attention ? cpu_attention_kernel() : "ggml";
  result.cpu_seconds_per_run = seconds[seconds.size() / 2];
  result.flops = 4.0 * static_cast<double>(batch) * heads * static_cast<double>(lq) * static_cast<double>(lk) * static_cast<double>(head_dim);
  return result;
}

}  // namespace jsd
