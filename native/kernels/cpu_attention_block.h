// The AVX-512 kernel behind cpu_attention.h's op: one head's attention for one block of queries,
// flash-attention style. The block's 64 queries sit across the vector lanes (one lane per query),
// so that any head width uses whole vectors, and each row's softmax needs no sums across lanes:
// per tile of keys, the scores go to a small buffer that stays in L1, their softmax is taken
// against a running maximum, and the weighted values are added to the block's output after
// rescaling it to that maximum.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsd {

struct AttentionHead {
  const float* q;  // query i at q + i * ldq, d values
  const float* k;  // key j at k + j * ldk, d values
  const float* v;  // value j at v + j * ldv, d values
  float* out;      // row i at out + i * ldo
  int64_t ldq, ldk, ldv, ldo;
  int64_t d, lk;
  float scale;  // multiplies the scores before the softmax
};

// Queries per block (a task of the op): four vectors of 16 lanes.
constexpr int64_t kAttentionQueryBlock = 64;

// Floats of scratch one thread needs for heads d wide (64-byte aligned inside by the kernel).
int64_t attention_scratch_floats(int64_t d);

// softmax(scale q k^T) v for queries [i0, i0 + rows) of one head, rows <= kAttentionQueryBlock.
// Needs AVX-512F and AVX-512DQ.
void attend_block(const AttentionHead& h, int64_t i0, int64_t rows, float* scratch);

}  // namespace jsd
