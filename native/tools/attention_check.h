// A correctness check of cpu_attention.h's fused op against the ggml ops it replaces, on random
// data of a given shape (for tests), and its benchmark.
#pragma once

#include <cstdint>

namespace jsd {

struct AttentionCheck {
  bool fused = false;       // whether this CPU ran the fused op
  const char* kernel = "";  // which of its kernels (cpu_attention_kernel())
  double max_abs_diff = 0;  // between the fused op's output and ggml's
  double max_abs = 0;       // largest magnitude in ggml's output
};

AttentionCheck compare_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads, bool bf16 = false);

struct AttentionBench {
  const char* kernel = "";         // the fused op's kernel, or "ggml" (mul_mat + soft_max + mul_mat)
  double cpu_seconds_per_run = 0;  // median process CPU time of one attention (copies included)
  double flops = 0;                // 4 N heads Lq Lk d: the two products
};

// The engine's attention (as nn::attention builds it for the CPU) on random data of a given
// shape, timed `runs` times after one untimed run (for scripts/bench/attention.mjs).
AttentionBench bench_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads, int runs);

}  // namespace jsd
