#include "matmul_bench.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>
#include <vector>

#include "error.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "quantize.h"
#include "repack.h"

namespace jsd {

namespace {

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

MatmulBenchResult bench_matmul(const std::string& type_name, int64_t m, int64_t n, int64_t k, int threads, int runs, bool repack) {
  if (m < 1 || n < 1 || k < 1 || m * k > (int64_t{1} << 28) || n * k > (int64_t{1} << 28) || runs < 1 || runs > 1000) {
    throw Error(ErrorCode::InvalidArgument, "benchMatmul: sizes out of range");
  }
  const TypeTraits type = type_traits(type_name);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(m * k));
  for (float& v : w) v = normal(rng);
  const std::vector<uint8_t> packed = convert_rows(w.data(), w.size(), k, type);
  std::vector<float> x(static_cast<size_t>(n * k));
  for (float& v : x) v = normal(rng);

  ggml_init_params params{ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* a = ggml_new_tensor_2d(ctx, static_cast<ggml_type>(type.ggml_type), k, m);
  ggml_backend_buffer_t weight_buffer = nullptr;
  // Only these types have x86/ARM repacked kernels; others would not be accepted by the buffer.
  const bool repackable = a->type == GGML_TYPE_Q4_0 || a->type == GGML_TYPE_Q4_K || a->type == GGML_TYPE_IQ4_NL;
  if (repack && repackable) {
    // The weight lives in ggml's repacking buffer (interleaved rows for faster int8 kernels).
    ggml_init_params wp{ggml_tensor_overhead() * 2, nullptr, true};
    ggml_context* wctx = ggml_init(wp);
    ggml_tensor* wa = ggml_new_tensor_2d(wctx, a->type, k, m);
    ggml_backend_buffer_type_t buft = cpu_repack_buffer_type();
    if (buft != nullptr) weight_buffer = ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft);
    if (weight_buffer != nullptr) {
      ggml_backend_tensor_set(wa, packed.data(), 0, packed.size());
      a = wa;
    }
    (void)wctx;  // freed with the process; benchmark only
  }
  ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, n);
  ggml_tensor* c = ggml_mul_mat(ctx, a, b);
  ggml_set_input(b);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, c);
  ggml_backend_t backend = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(backend, threads);
  ggml_gallocr_t allocr = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
  MatmulBenchResult result;
  result.flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const bool ok = ggml_gallocr_alloc_graph(allocr, graph);
  if (ok) {
    if (weight_buffer == nullptr) ggml_backend_tensor_set(a, packed.data(), 0, packed.size());
    ggml_backend_tensor_set(b, x.data(), 0, x.size() * sizeof(float));
    ggml_backend_graph_compute(backend, graph);  // warm-up
    std::vector<double> wall, cpu;
    for (int i = 0; i < runs; ++i) {
      const double c0 = process_cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      ggml_backend_graph_compute(backend, graph);
      wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      cpu.push_back(process_cpu_seconds() - c0);
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
    result.seconds_per_run = wall[wall.size() / 2];
    result.cpu_seconds_per_run = cpu[cpu.size() / 2];
  }
  ggml_gallocr_free(allocr);
  if (weight_buffer) ggml_backend_buffer_free(weight_buffer);
  ggml_backend_free(backend);
  ggml_free(ctx);
  if (!ok) throw Error(ErrorCode::OutOfMemory, "benchMatmul: cannot allocate the buffers");
  return result;
}

}  // namespace jsd
