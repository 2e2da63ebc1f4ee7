// The instruction-set kernels behind cpu_attention.h's op: one head's attention for one block
// of queries, flash-attention style. Each ISA file (cpu_attention_avx512.cpp,
// cpu_attention_avx2.cpp) instantiates the one algorithm of cpu_attention_tiles.h with its own
// vector type and reports its kernel only where the CPU can run it; cpu_attention.cpp owns the
// ggml op, the split into tasks and the choice. The kernels see plain pointers only.
#pragma once

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

struct AttentionKernel {
  const char* name;  // what JSD_ATTENTION_KERNEL names it by
  int64_t block;     // queries per block (a task of the op)
  // Floats of scratch one thread needs for heads d wide (aligned inside by the kernel).
  int64_t (*scratch_floats)(int64_t d);
  // softmax(scale q k^T) v for queries [i0, i0 + rows) of one head, rows <= block.
  void (*attend)(const AttentionHead& h, int64_t i0, int64_t rows, float* scratch);
};

// Null where this build or this CPU lacks the instructions.
const AttentionKernel* attention_kernel_avx512();
const AttentionKernel* attention_kernel_avx2();

}  // namespace jsd
