// Elementwise activations for the CPU's fused ops (GEGLU, group norm + SiLU), vectorized with
// AVX-512 or AVX2 + FMA where the CPU has them (chosen once at run time), else plain C++.
// ggml's exact GELU calls the C library's erff once per value (about 7 ns each, 6 % of a UNet step
// at 512x512); the polynomial erf here is accurate to about 1e-7 relative to erf.
#pragma once

#include <cstdint>

namespace jsd {

// out[i] = value[i] * gelu(gate[i]) for i < n, PyTorch's exact GELU x * (1 + erf(x / sqrt 2)) / 2.
// out may be value.
void geglu_row(const float* value, const float* gate, float* out, int64_t n);

// y[i] = x[i] * scale + shift for i < n, then SiLU (y / (1 + e^-y)) where silu. y may be x.
void affine_row(const float* x, float scale, float shift, bool silu, float* y, int64_t n);

// The sum of n values, and the sum of their squared deviations from mean, in 16 float partial
// sums (vectorized by the compiler) added in double: the statistics of the norms.
double sum_row(const float* x, int64_t n);
double squared_deviations_row(const float* x, int64_t n, float mean);

// y[i] = (x[i] - mean) * rstd * weight[i] + bias[i] for i < n (layer norm's last steps, in the
// order of ggml's norm, mul and add).
void layer_norm_row(const float* x, float mean, float rstd, const float* weight, const float* bias, float* y, int64_t n);

// gelu(x[i]) alone, for the accuracy check (tools/).
void gelu_row(const float* x, float* y, int64_t n);

// The instruction set these run on: "avx512", "avx2" or "generic".
const char* activations_isa();

}  // namespace jsd
