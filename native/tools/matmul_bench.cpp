#include "tools/matmul_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "tools/cpu_graph.h"
#include "runtime/error.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "kernels/q8_gemm.h"
#include "model/quantize.h"
#include "kernels/repack.h"

namespace jsd {

namespace {

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One product c = a x b on the CPU backend: a [k, m] of a weight type, b [k, n] f32. With
// layout = true the weight is stored as the engine stores it: interleaved for q8_gemm.h's kernel
// (q8_0, and q4_0 where the table has q4 tiles) or in ggml's repacking buffer (q4_0/q4_K/iq4_nl).
class Product {
 public:
  Product(const TypeTraits& type, const std::vector<uint8_t>& weight, int64_t m, int64_t n, int64_t k, bool layout, int threads)
      : graph_(8, threads) {
    wctx_ = ggml_init(ggml_init_params{ggml_tensor_overhead() * 2, nullptr, true});
    if (wctx_ == nullptr) throw Error(ErrorCode::OutOfMemory, "matmul: cannot set up ggml");
    a_ = ggml_new_tensor_2d(wctx_, static_cast<ggml_type>(type.ggml_type), k, m);
    const bool repackable = a_->type == GGML_TYPE_Q4_0 || a_->type == GGML_TYPE_Q4_K || a_->type == GGML_TYPE_IQ4_NL;
    ggml_backend_buffer_type_t buft = ggml_backend_cpu_buffer_type();
    if (layout && q4_gemm_available() && q4_interleavable(a_)) {
      kernel_ = q8_gemm_kernel_name();  // the table whose q4 tiles run it
      interleaved_ = q4_ = true;
    } else if (layout && repackable && cpu_repack_buffer_type() != nullptr) {
      buft = cpu_repack_buffer_type();
      kernel_ = "ggml-repack";
    } else if (layout && q8_gemm_available() && q8_interleavable(a_)) {
      kernel_ = q8_gemm_kernel_name();
      interleaved_ = true;
    }
    weight_buffer_ = ggml_backend_alloc_ctx_tensors_from_buft(wctx_, buft);
    if (weight_buffer_ == nullptr) {
      ggml_free(wctx_);
      throw Error(ErrorCode::OutOfMemory, "matmul: cannot allocate the weight");
    }
    if (interleaved_) {
      (q4_ ? q4_interleave : q8_interleave)(weight.data(), a_->data, m, k);
    } else {
      ggml_backend_tensor_set(a_, weight.data(), 0, weight.size());  // repacks in the repacking buffer
    }
    b_ = ggml_new_tensor_2d(graph_.ctx(), GGML_TYPE_F32, k, n);
    ggml_set_input(b_);
    c_ = !interleaved_ ? ggml_mul_mat(graph_.ctx(), a_, b_) : q4_ ? q4_mul_mat(graph_.ctx(), a_, b_) : q8_mul_mat(graph_.ctx(), a_, b_);
    try {
      graph_.build({c_});
    } catch (...) {
      release_weight();
      throw;
    }
  }
  ~Product() { release_weight(); }
  Product(const Product&) = delete;
  Product& operator=(const Product&) = delete;

  void set_input(const std::vector<float>& x) { graph_.write(b_, x); }
  void run() { graph_.compute(); }
  std::vector<float> output() const { return graph_.read(c_); }
  const char* kernel() const { return kernel_; }

 private:
  void release_weight() {
    ggml_backend_buffer_free(weight_buffer_);
    ggml_free(wctx_);
  }

  CpuGraph graph_;
  ggml_context* wctx_ = nullptr;  // the weight's tensor, in a buffer of its own
  ggml_backend_buffer_t weight_buffer_ = nullptr;
  ggml_tensor* a_ = nullptr;
  ggml_tensor* b_ = nullptr;
  ggml_tensor* c_ = nullptr;
  const char* kernel_ = "ggml";
  bool interleaved_ = false;
  bool q4_ = false;  // interleaved q4_0 (q8_gemm.h)
};

std::string fnv1a_hex(const std::vector<float>& values) {
  uint64_t h = 14695981039346656037ull;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) h = (h ^ ((bits >> (8 * i)) & 0xff)) * 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void check_sizes(int64_t m, int64_t n, int64_t k, int threads) {
  if (m < 1 || n < 1 || k < 1 || m * k > (int64_t{1} << 28) || n * k > (int64_t{1} << 28)) {
    throw Error(ErrorCode::InvalidArgument, "matmul: sizes out of range");
  }
  if (threads < 1 || threads > 512) throw Error(ErrorCode::InvalidArgument, "matmul: threads out of range");
}

}  // namespace

MatmulBenchResult bench_matmul(const std::string& type_name, int64_t m, int64_t n, int64_t k, int threads, int runs, bool repack) {
  check_sizes(m, n, k, threads);
  if (runs < 1 || runs > 1000) throw Error(ErrorCode::InvalidArgument, "benchMatmul: runs out of range");
  const TypeTraits type = type_traits(type_name);
  const std::vector<float> w = normal_values(m * k, 42);
  Product product(type, convert_rows(w.data(), w.size(), k, type), m, n, k, repack, threads);
  product.set_input(normal_values(n * k, 43));
  product.run();  // warm-up
  std::vector<double> wall, cpu;
  for (int i = 0; i < runs; ++i) {
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    product.run();
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(process_cpu_seconds() - c0);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  MatmulBenchResult result;
  result.flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  result.seconds_per_run = wall[wall.size() / 2];
  result.cpu_seconds_per_run = cpu[cpu.size() / 2];
  result.kernel = product.kernel();
  return result;
}

MatmulCompareResult compare_matmul(const std::string& type_name, int64_t m, int64_t n, int64_t k, int threads) {
  check_sizes(m, n, k, threads);
  const TypeTraits type = type_traits(type_name);
  const std::vector<float> w = normal_values(m * k, 7);
  const std::vector<uint8_t> weight = convert_rows(w.data(), w.size(), k, type);
  const std::vector<float> x = normal_values(n * k, 8);
  Product engine(type, weight, m, n, k, true, threads);
  Product plain(type, weight, m, n, k, false, 1);
  engine.set_input(x);
  plain.set_input(x);
  engine.run();
  plain.run();
  const std::vector<float> out = engine.output();
  const Difference d = difference(out, plain.output());
  MatmulCompareResult result;
  result.checksum = fnv1a_hex(out);
  result.kernel = engine.kernel();
  result.max_abs_diff = d.max_abs_diff;
  result.max_abs = d.max_abs;
  return result;
}

}  // namespace jsd
