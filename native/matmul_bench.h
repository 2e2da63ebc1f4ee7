// Measures ggml's matrix-product throughput for a weight type on a given shape, the way the
// UNet uses it (weights [k, m] of that type times f32 activations [k, n]).
#pragma once

#include <cstdint>
#include <string>

namespace jsd {

struct MatmulBenchResult {
  double seconds_per_run = 0;  // median wall time of one product
  double cpu_seconds_per_run = 0;
  double flops = 0;            // 2*m*n*k
};

MatmulBenchResult bench_matmul(const std::string& type, int64_t m, int64_t n, int64_t k, int threads, int runs, bool repack = false);


}  // namespace jsd
