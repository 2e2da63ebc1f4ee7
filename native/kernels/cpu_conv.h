// A 2-D convolution on the CPU over channels-last images, as ggml custom ops. ggml's own path for a
// [W, H, C, N] image is im2col (9 floats per input value for a 3x3 kernel, built in bands to bound
// its size, the bands joined by concat), a matrix product that first rounds every im2col value to
// f16 when the weight is f16, and a transpose of the [C, pixels] product back to [W, H, C, N]: at a
// VAE decode's 512x512 the copies took a third of the time and the f16 product ran at about
// 80 GFLOP/s per core. Here the image is channels-last ([C, W, H, N] in ggml's order, PyTorch's
// channels_last): each output pixel's taps read their input pixels' channels in place, the weights
// are packed once per graph into f32 rows of output channels, and the sums stay f32 throughout
// (cpu_conv_tile.h). The output is channels-last too, with the bias (and a residual) added, so
// that a network's convolutions, norms and attention chain without copies.
#pragma once

#include "ggml.h"

namespace jsd {

// True on x86-64 CPUs with AVX-512F or AVX2 + FMA (cpu_conv_isa.h), unless JSD_NO_CPU_CONV is set.
bool cpu_conv_available();
// The kernel in use ("conv-avx512", "conv-avx2"; JSD_CONV_KERNEL=<name> forces one), or "none".
const char* cpu_conv_kernel_name();

// Whether cpu_conv2d takes this weight: f32, f16 or bf16, [k, k, in, out] or, for k = 1, [in,
// out]; k <= 3 and in <= kConvMaxInChannels.
bool cpu_conv_supports(const ggml_tensor* weight, int kernel, int64_t in);

// Where a convolution reads its input: stride, zero padding before the first row and column and
// after the last (the output size follows), and whether the input is first repeated 2x (nearest)
// along W and H, the way diffusers' Upsample2D does it, without making that larger image.
struct ConvGeometry {
  int stride = 1;
  int pad = 0;
  int pad_after = 0;
  bool upsample = false;
};

// x [C_in, W, H, N] f32 (channels-last) convolved with weight [k, k, C_in, C_out] plus bias
// [C_out] f32, plus residual [C_out, W', H', N] if not null -> [C_out, W', H', N] f32. Only the
// CPU backend runs it, on up to `threads` threads (3x3 convolutions of stride 1 and padding 1 go
// through Winograd F(2x2, 3x3), with scratch for that many in the compute buffer).
ggml_tensor* cpu_conv2d(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, int kernel, const ConvGeometry& geometry,
                        int threads, ggml_tensor* residual = nullptr);

}  // namespace jsd
