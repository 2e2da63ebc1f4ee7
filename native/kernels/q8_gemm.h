// A q8_0 matrix product on the CPU, as two ggml custom ops (quantize the activations, multiply).
// ggml has no interleaved ("repacked") q8_0 kernels on x86, and its per-row dot products reach
// about 90 GFLOP/s per core on a Zen 5 core that does 1.2 int8 TOP/s. The kernels here read the
// weights in groups of 16 interleaved rows, so that one weight load feeds a whole tile of
// activation rows: on AVX-512 VNNI (q8_gemm_avx512.cpp, "q8-vnni") 16 rows in each 512-bit
// register by 12 activation rows, about 450 GFLOP/s per core in the bench's mat-mul table; on
// AVX2 (q8_gemm_avx2.cpp) 16 rows in two 256-bit registers by 4 activation rows, with AVX-VNNI's
// vpdpbusd ("q8-avx-vnni", about 235 GFLOP/s per core on a Sapphire Rapids-class core) or with
// vpmaddubsw on weights flipped to signed ("q8-avx2", about 100), where ggml's AVX2 build of its
// q8_0 product does about 60 on that core (docs/benchmark.md's kernel variants). Each
// instruction set is one table of kernels (q8_gemm_isa.h), chosen at run time, best first; all
// give the same bits.
//
// The weight is interleaved once at load (q8_interleave) into groups of 16 rows; per group, all
// blocks' quants, then all blocks' scales:
//   quants: for each 32-wide block b, for i in 0..7, for row r in 0..15: w[r][32b + 4i .. 4i+3] + 128
//   scales: for each block b, the 16 rows' f16 scales
// which is exactly as many bytes as the q8_0 rows it came from. Quants are stored unsigned
// (w + 128) because x86's VNNI multiplies unsigned by signed bytes; the activations' block sums
// undo the offset (a kernel that multiplies signed bytes flips the top bit back on load).
//
// q4_0 matrices (q4_interleave) go the same way through the tables' q4 tiles (every table has
// them: the same tile templated on the weight step): per group of 16 rows, all blocks' nibbles, then all blocks' scales:
//   quants: for each block b, for i in 0..3, for row r in 0..15: ggml's qs[r][b][4i .. 4i+3]
//   scales: for each block b, the 16 rows' f16 scales
// as many bytes as the q4_0 rows. ggml's byte j holds value j in its low nibble and value j + 16
// in its high one, so one 64-byte load i gives, after & 0x0F, the quants of q8 step i (values
// 4i .. 4i+3 of each row) and, after >> 4 & 0x0F, those of step i + 4: the same activation bytes
// as the q8 tile's. The quants are unsigned 0..15 (value = d * (q - 8)); the zero point comes
// out through the records' offsets: the accumulator starts at offset / 16 = -8 * (block sum).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "kernels/q8_layout.h"

namespace jsd {

// True when this CPU can run one of the kernels (q8_gemm_isa.h) and JSD_NO_REPACK is unset.
bool q8_gemm_available();
// The kernel in use ("q8-vnni", "q8-avx-vnni", "q8-avx2"; JSD_Q8_KERNEL=<name> forces one), or "none".
const char* q8_gemm_kernel_name();
// Every kernel this build and this CPU can run, best first (what JSD_Q8_KERNEL may name).
std::vector<std::string> q8_gemm_kernel_names();

// Whether a q8_0 matrix [k, n] can be interleaved (n a multiple of 16).
bool q8_interleavable(const ggml_tensor* weight);

// The same for q4_0: true when the chosen table has q4 tiles (q4_gemm_available) and the matrix
// is a q4_0 [k, n] with n a multiple of 16. JSD_Q4_GGML=1 turns q4_gemm_available off.
bool q4_gemm_available();
bool q4_interleavable(const ggml_tensor* weight);

// q8_interleave and q8_deinterleave (q8_layout.h, which has no ggml) change between the layouts.

// Model files may store q8_0 matrices interleaved already (`jsd convert --cpu-layout`), listing
// them under the key keys::kQ8Interleaved (model/model_keys.h); the CPU then reads them in place
// from the mapped file.

// weight [k, n] (interleaved q8_0) times x [k, ...] -> [n, ...] f32, like ggml_mul_mat. Only the
// CPU backend runs it.
ggml_tensor* q8_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x);
// The same for an interleaved q4_0 weight (q4_interleave).
ggml_tensor* q4_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x);

// The two steps of those products, for callers that make the activation records another way
// (q8_records.h) or share them between products:
// the activation records (q8_gemm_isa.h) of x's rows, x [k, ...] (any float type and layout);
ggml_tensor* q8_records(ggml_context* ctx, ggml_tensor* x);
// and weight [k, n] (interleaved q8_0 or q4_0, by its type) times records of d1 * d2 * d3 rows
// (rows = {d1, d2, d3}) -> [n, d1, d2, d3] f32, or with as_image [d1, d2, n, d3]: an image
// [W, H, C, N] whose pixels were the rows (written channel-planar by the product itself). Then,
// in this order, the addends that are not null: bias [n] to every row; image_bias [n, d3] to the
// rows of each of the d3 images; residual (the output's shape) to each value. The same sums as
// ggml_add after ggml_mul_mat, in the same order.
struct Q8Addends {
  ggml_tensor* bias = nullptr;
  ggml_tensor* image_bias = nullptr;
  ggml_tensor* residual = nullptr;
};
ggml_tensor* q8_product(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* records, std::array<int64_t, 3> rows, bool as_image,
                        const Q8Addends& addends = {});
// Quantizes one row of k floats (k a multiple of 32) into its activation record, with the kernel
// table in use (for ops that make records, q8_records.h).
void q8_quantize_row(const float* x, int64_t k, uint8_t* record);

}  // namespace jsd
