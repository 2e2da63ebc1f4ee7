// A correctness check of cpu_attention.h's fused op against the ggml ops it replaces, on random
// data of a given shape (for tests).
#pragma once

#include <cstdint>

namespace jsd {

struct AttentionCheck {
  bool fused = false;       // whether this CPU ran the fused op
  const char* kernel = "";  // which of its kernels (cpu_attention_kernel())
  double max_abs_diff = 0;  // between the fused op's output and ggml's
  double max_abs = 0;       // largest magnitude in ggml's output
};

AttentionCheck compare_attention(int heads, int64_t head_dim, int64_t lq, int64_t lk, int64_t batch, int threads);

}  // namespace jsd
