// The instruction-set kernels behind cpu_conv.h: each ISA file (cpu_conv_avx512.cpp,
// cpu_conv_avx2.cpp) provides one ConvKernels table, compiled with its own target attributes from
// one template (cpu_conv_tile.h), and reports it only where the CPU can run it. cpu_conv.cpp owns
// the ggml ops, the weight packing and the split into tasks. The tables see plain pointers only.
#pragma once

#include <cstdint>

namespace jsd {

// The most input channels a convolution may have: a tap outside the image reads that many zeros.
inline constexpr int64_t kConvMaxInChannels = 4096;

// One convolution as a kernel sees it. Images are channels-last: x [c_in, w, h, n], out and
// residual [c_out, out_w, out_h, n], f32, contiguous.
struct ConvProblem {
  const float* x;
  // Per output block of ConvKernels::block channels: the weights [kernel * kernel][c_in][block]
  // (block-wide rows, zero beyond c_out), then the block's biases [block] (cpu_conv.cpp's pack).
  const float* packed;
  const float* residual;  // added to the output, or null
  const float* zeros;     // kConvMaxInChannels zeros
  float* out;
  int64_t c_in, c_out, w, h, n, out_w, out_h;
  int kernel, stride, pad;  // pad: zero rows and columns before the first (the output size sets the rest)
  bool upsample;            // the input is x repeated 2x (nearest) along w and h, i.e. 2w x 2h
};

// The most 2x2 tiles a Winograd task takes (ConvKernels::winograd).
inline constexpr int64_t kMaxWinogradTiles = 96;

// The floats of a Winograd task's scratch: its tiles' transformed inputs and one block's products.
inline int64_t winograd_scratch_floats(int64_t tiles, int64_t c_in, int64_t block) { return 16 * tiles * (c_in + block); }

// The packed floats of one output block (a Winograd convolution's: kernel 4, its 4x4 transformed
// weights).
inline int64_t conv_block_floats(int64_t block, int64_t kernel, int64_t c_in) { return (kernel * kernel * c_in + 1) * block; }

struct ConvKernels {
  const char* name;  // "conv-avx512", "conv-avx2": what JSD_CONV_KERNEL selects
  int block;         // output channels per packed block (the register tile's width)
  int chunk;         // output pixels per task, at most
  // Computes output pixels [p0, p1) (flattened over n, out_h, out_w; p1 - p0 <= chunk) of output
  // block b, residual included.
  void (*run)(const ConvProblem& p, int64_t b, int64_t p0, int64_t p1);
  // A 3x3 convolution of stride 1, padding 1 by Winograd F(2x2, 3x3) (cpu_conv_winograd_tile.h):
  // 2x2 output tiles [t0, t1) (flattened over n, tile rows, tile columns; at most
  // kMaxWinogradTiles) of every block, in scratch of winograd_scratch_floats(t1 - t0, ...). packed
  // holds the transformed weights; c_in is a multiple of 16.
  void (*winograd)(const ConvProblem& p, int64_t t0, int64_t t1, float* scratch);
};

// Each returns its table where this build and this CPU have the instructions, else null.
const ConvKernels* conv_kernels_avx512();  // AVX-512F (cpu_conv_avx512.cpp)
const ConvKernels* conv_kernels_avx2();    // AVX2 + FMA (cpu_conv_avx2.cpp)

}  // namespace jsd
