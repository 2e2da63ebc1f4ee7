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
  const float* k;  // key j at k + j * ldk, d values (a packing kernel: its packed head)
  const float* v;  // value j at v + j * ldv, d values (a packing kernel: unused)
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
  // A kernel that reads keys and values in a layout of its own has these (else null): floats per
  // packed head, and the packing of one head's keys and values (row j of each at k + j * ldk,
  // v + j * ldv).
  int64_t (*packed_floats)(int64_t d, int64_t lk);
  void (*pack)(const float* k, const float* v, int64_t ldk, int64_t ldv, int64_t d, int64_t lk, float* out);
};

// Null where this build or this CPU lacks the instructions.
const AttentionKernel* attention_kernel_avx512();
const AttentionKernel* attention_kernel_avx2();
// bf16 products on AMX tiles (Sapphire Rapids on, Linux): it rounds queries, keys, values and
// weights to bf16 (see cpu_attention_amx.cpp), so it runs only the ops that allow it (a quantized
// UNet's, whose weights' rounding is far larger) or every op when named.
const AttentionKernel* attention_kernel_amx_bf16();

}  // namespace jsd
