// Measures the matrix-product throughput for a weight type on a given shape, the way the
// UNet uses it (weights [k, m] of that type times f32 activations [k, n]).
#pragma once

#include <cstdint>
#include <string>

namespace jsd {

struct MatmulBenchResult {
  double seconds_per_run = 0;  // median wall time of one product
  double cpu_seconds_per_run = 0;
  double flops = 0;            // 2*m*n*k
  std::string kernel;          // "ggml", "ggml-repack" or q8_gemm.h's kernel ("q8-vnni", ...)
};

// repack: store the weight as the engine does (ggml's repacking buffer, or q8_gemm.h's layout).
MatmulBenchResult bench_matmul(const std::string& type, int64_t m, int64_t n, int64_t k, int threads, int runs, bool repack = false);

struct MatmulCompareResult {
  std::string kernel;        // the engine's kernel for this type and shape
  double max_abs_diff = 0;   // between the engine's product and ggml's plain mul_mat
  double max_abs = 0;        // largest magnitude in ggml's product
  std::string checksum;      // FNV-1a 64 of the engine's product's bytes, in hex: the same bits in two
                             // processes (JSD_Q8_KERNEL forcing two kernels) give the same string
};

// The engine's product of random data against ggml's plain mul_mat of the same quantized weight
// (a correctness check of the repacked and interleaved kernels).
MatmulCompareResult compare_matmul(const std::string& type, int64_t m, int64_t n, int64_t k, int threads);


}  // namespace jsd
