// A standalone check of the Arm q8_0 kernel and its q4_0 tiles (q8_gemm_neon.cpp) against a scalar reference written
// here from the published formats, not from ggml's code: it runs under qemu-aarch64 on an x86
// machine (scripts/check-arm-kernel.sh builds it with aarch64-linux-gnu-g++ and runs it) and needs
// no ggml, only q8_gemm_isa.h's table and q8_layout.cpp. Not part of the addon: CMake globs
// native/kernels/*.cpp, not this folder.
//
//   q8_neon_check name:m:k ...   m output rows (weight rows), k the inner size, per shape
//
// For each shape: random q8_0 weight rows (ggml's block_q8_0: an f16 scale d = amax / 127, then 32
// int8 quants round(x / d); a few blocks zero and a few holding -128 and 127), interleaved with
// q8_interleave (and back with q8_deinterleave, which must give the rows again); random activations
// quantized by the table's quantize_rows, whose records must equal a scalar quantizer's byte for
// byte; then the tiles over n activation rows (two full tiles and a partial one) against a double
// sum of the exact int32 block dots of the same quantized values, within 1e-5 of the largest
// |reference| (the kernel sums floats: only their rounding differs). A small shape runs every tile
// size. The same for random q4_0 rows (q4_interleave) through the q4 tiles. Prints one line per
// shape and type; exits 1 on any failure.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/q8_gemm_isa.h"
#include "kernels/q8_layout.h"

namespace {

using jsd::kQ8Block;
using jsd::kQ8BlockBytes;
using jsd::kQ8Group;

constexpr double kTolerance = 1e-5;

// IEEE 754 binary16, round to nearest even (q8_0's scales); no infinities or NaNs occur here.
uint16_t to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  float a;
  std::memcpy(&a, &x, 4);
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < 6.103515625e-05f) return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // subnormal: units of 2^-24
  uint32_t h = ((((x >> 23) & 0xff) - 127 + 15) << 10) | ((x >> 13) & 0x3ff);
  const uint32_t rest = x & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float from_half(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  const float v = exp == 0 ? std::ldexp(static_cast<float>(mant), -24) : std::ldexp(static_cast<float>(1024 + mant), exp - 25);
  return (h & 0x8000) ? -v : v;
}

// n rows of k values as q8_0 blocks (34 bytes: f16 d, 32 int8).
std::vector<uint8_t> random_q8_0_rows(std::mt19937& rng, int64_t n, int64_t k) {
  const int64_t nb = k / kQ8Block;
  std::vector<uint8_t> rows(n * nb * kQ8BlockBytes);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> octave(-6, 2);
  std::uniform_int_distribution<int> special(0, 63);
  float x[kQ8Block];
  for (int64_t blk = 0; blk < n * nb; ++blk) {
    uint8_t* block = rows.data() + blk * kQ8BlockBytes;
    const int kind = special(rng);
    const float mag = kind == 0 ? 0.0f : std::ldexp(1.0f, octave(rng));
    float amax = 0;
    for (float& v : x) {
      v = mag * unit(rng);
      amax = std::max(amax, std::fabs(v));
    }
    const uint16_t d16 = to_half(amax / 127.0f);
    const float d = from_half(d16);
    std::memcpy(block, &d16, 2);
    for (int j = 0; j < kQ8Block; ++j) {
      const long q = d != 0.0f ? std::lround(x[j] / d) : 0;
      const int8_t qs = static_cast<int8_t>(std::clamp<long>(q, -128, 127));
      std::memcpy(block + 2 + j, &qs, 1);
    }
    if (kind == 1) {  // the int8 extremes: the layout's +128 and the kernel's flip back
      block[2] = 0x80;
      block[3] = 0x7f;
      block[2 + kQ8Block - 1] = 0x80;
    }
  }
  return rows;
}

// n rows of k values as q4_0 blocks (18 bytes: f16 d, 16 bytes of nibbles, value j in byte j % 16's
// low nibble for j < 16, high nibble for j >= 16, standing for d * (nibble - 8)): random nibbles,
// a few blocks all 0 or all 15 (the extremes -8 and 7).
std::vector<uint8_t> random_q4_0_rows(std::mt19937& rng, int64_t n, int64_t k) {
  const int64_t nb = k / kQ8Block;
  std::vector<uint8_t> rows(n * nb * jsd::kQ4BlockBytes);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::uniform_int_distribution<int> octave(-6, 2);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> special(0, 63);
  for (int64_t blk = 0; blk < n * nb; ++blk) {
    uint8_t* block = rows.data() + blk * jsd::kQ4BlockBytes;
    const uint16_t d16 = to_half(std::ldexp(unit(rng), octave(rng)) / 8.0f);
    std::memcpy(block, &d16, 2);
    const int kind = special(rng);
    for (int j = 0; j < kQ8Block / 2; ++j) block[2 + j] = static_cast<uint8_t>(kind == 0 ? 0x00 : kind == 1 ? 0xff : byte(rng));
  }
  return rows;
}

// Weight j of a row's block (q8_0 or q4_0), as the signed value its quants stand for.
int weight_value(const uint8_t* block, int j, bool q4) {
  if (!q4) return static_cast<int8_t>(block[2 + j]);
  return (j < kQ8Block / 2 ? block[2 + j] & 0x0f : block[2 + j - kQ8Block / 2] >> 4) - 8;
}

// Random activations, rows `stride` floats apart: per block a random magnitude, some blocks zero,
// and in row 0 a block of halves (x * 127 / amax = k + 0.5 exactly) for round-to-even.
std::vector<float> random_activations(std::mt19937& rng, int64_t n, int64_t k, int64_t stride) {
  std::vector<float> x(n * stride, 1e30f);  // the padding must not be read
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> octave(-8, 8);
  std::uniform_int_distribution<int> special(0, 31);
  for (int64_t m = 0; m < n; ++m) {
    for (int64_t b = 0; b < k / kQ8Block; ++b) {
      float* v = x.data() + m * stride + b * kQ8Block;
      const int kind = special(rng);
      const float mag = kind == 0 ? 0.0f : std::ldexp(1.0f, octave(rng));
      for (int j = 0; j < kQ8Block; ++j) v[j] = mag * normal(rng);
      if (m == 0 && b == 0) {
        for (int j = 0; j < kQ8Block; ++j) v[j] = static_cast<float>(j % 2 ? j : -j) - 0.5f * static_cast<float>(j % 3 == 0);
        v[kQ8Block - 1] = 127.0f;  // amax 127: the multiplier is exactly 1
      }
    }
  }
  return x;
}

// The activation record (q8_gemm_isa.h) of one row, by scalar code.
void scalar_record(const float* in, int64_t k, uint8_t* out) {
  const int64_t nb = k / kQ8Block;
  for (int64_t b = 0; b < nb; ++b) {
    float amax = 0;
    for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(in[b * kQ8Block + j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQ8Block; ++j) {
      const float scaled = in[b * kQ8Block + j] * id;
      const int32_t q = static_cast<int32_t>(std::nearbyint(scaled));  // the default mode: nearest, ties to even
      const int8_t qs = static_cast<int8_t>(std::clamp(q, -128, 127));
      std::memcpy(out + b * kQ8Block + j, &qs, 1);
      sum += q;
    }
    const int32_t offset = -128 * sum;
    std::memcpy(out + k + 4 * b, &d, 4);
    std::memcpy(out + k + 4 * nb + 4 * b, &offset, 4);
  }
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One shape; prints its line and returns whether it passed.
// q4: q4_0 weights through the q4 tiles, else q8_0 through the q8 tiles.
bool check_shape(const jsd::Q8Kernels& isa, const std::string& name, int64_t m, int64_t k, int64_t n, uint32_t seed, bool q4) {
  std::mt19937 rng(seed);
  const int64_t nb = k / kQ8Block;
  const int block_bytes = q4 ? jsd::kQ4BlockBytes : kQ8BlockBytes;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<uint8_t> plain = q4 ? random_q4_0_rows(rng, m, k) : random_q8_0_rows(rng, m, k);
  std::vector<uint8_t> packed(plain.size());
  std::vector<uint8_t> back(plain.size());
  (q4 ? jsd::q4_interleave : jsd::q8_interleave)(plain.data(), packed.data(), m, k);
  (q4 ? jsd::q4_deinterleave : jsd::q8_deinterleave)(packed.data(), back.data(), m, k);
  const bool layout_ok = back == plain;

  const int64_t stride = k + 8;
  const std::vector<float> x = random_activations(rng, n, k, stride);
  const int64_t row_bytes = jsd::q8_activation_row_bytes(k);
  std::vector<uint8_t> records(n * row_bytes, 0xcd);
  std::vector<uint8_t> expected(n * row_bytes);
  const int nth = 3;
  for (int ith = 0; ith < nth; ++ith) isa.quantize_rows(x.data(), n, k, stride * sizeof(float), records.data(), ith, nth);
  for (int64_t a = 0; a < n; ++a) scalar_record(x.data() + a * stride, k, expected.data() + a * row_bytes);
  int64_t record_diff = -1;
  for (int64_t i = 0; i < n * row_bytes && record_diff < 0; ++i) {
    if (records[i] != expected[i]) record_diff = i;
  }

  // The tiles, as q8_gemm.cpp's gemm() calls them: per group of 16 weight rows, tiles of
  // tile_rows activation rows and a last partial one; out is [n][m].
  std::vector<float> out(n * m, NAN);
  const int64_t group_bytes = kQ8Group * nb * block_bytes;
  const jsd::Q8TileFn* tiles = q4 ? isa.q4_tiles : isa.tiles;
  const auto t1 = std::chrono::steady_clock::now();
  for (int64_t g = 0; g < m / kQ8Group; ++g) {
    const uint8_t* quants = packed.data() + g * group_bytes;
    const auto* scales = reinterpret_cast<const uint16_t*>(quants + nb * kQ8Group * (block_bytes - 2));
    for (int64_t a = 0; a < n; a += isa.tile_rows) {
      const int64_t mt = std::min<int64_t>(isa.tile_rows, n - a);
      tiles[mt - 1](quants, scales, nb, records.data() + a * row_bytes, k, row_bytes, out.data() + a * m + g * kQ8Group, m);
    }
  }
  const double kernel_ms = ms_since(t1);

  // The reference from the plain rows and the expected records: exact int32 dot per block, in double.
  double max_ref = 0;
  double max_diff = 0;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t a = 0; a < n; ++a) {
      const uint8_t* rec = expected.data() + a * row_bytes;
      double ref = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* block = plain.data() + (r * nb + b) * block_bytes;
        int32_t dot = 0;
        for (int j = 0; j < kQ8Block; ++j) dot += weight_value(block, j, q4) * static_cast<int8_t>(rec[b * kQ8Block + j]);
        uint16_t dw;
        float dx;
        std::memcpy(&dw, block, 2);
        std::memcpy(&dx, rec + k + 4 * b, 4);
        ref += static_cast<double>(from_half(dw)) * static_cast<double>(dx) * static_cast<double>(dot);
      }
      max_ref = std::max(max_ref, std::fabs(ref));
      const double got = out[a * m + r];
      max_diff = std::isfinite(got) ? std::max(max_diff, std::fabs(got - ref)) : INFINITY;
    }
  }
  const double rel = max_ref > 0 ? max_diff / max_ref : INFINITY;
  const bool ok = layout_ok && record_diff < 0 && rel <= kTolerance;
  std::printf("%-4s %s %-10s m=%-5lld k=%-5lld n=%-3lld layout %s, records %s, max|ref| %.4g, max diff %.3g (%.2e of max) kernel %.0f ms, all %.0f ms\n",
              ok ? "ok" : "FAIL", q4 ? "q4_0" : "q8_0", name.c_str(), static_cast<long long>(m), static_cast<long long>(k), static_cast<long long>(n),
              layout_ok ? "ok" : "WRONG", record_diff < 0 ? "equal" : ("differ at byte " + std::to_string(record_diff)).c_str(), max_ref,
              max_diff, rel, kernel_ms, ms_since(t0));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const jsd::Q8Kernels* isa = jsd::q8_kernels_neon();
  if (isa == nullptr) {
    std::printf("FAIL q8_kernels_neon() is null: this build has no Arm kernel (q8_gemm_neon.cpp says where) or the CPU reports no dot product\n");
    return 1;
  }
  std::printf("kernel %s, %d activation rows per tile\n", isa->name, isa->tile_rows);
  const auto t0 = std::chrono::steady_clock::now();
  bool ok = true;
  uint32_t seed = 1;
  // Every tile size, and several groups, on a small shape.
  for (bool q4 : {false, true}) {
    for (int64_t n = 1; n <= 2 * isa->tile_rows + 1; ++n) ok = check_shape(*isa, "tiles", 48, 96, n, seed++, q4) && ok;
  }
  // The given shapes with two full tiles and a partial one.
  const int64_t n = 2 * isa->tile_rows + isa->tile_rows / 2 + 1;
  for (int i = 1; i < argc; ++i) {
    char name[64];
    long long m = 0;
    long long k = 0;
    if (std::sscanf(argv[i], "%63[^:]:%lld:%lld", name, &m, &k) != 3 || m <= 0 || k <= 0 || m % kQ8Group || k % kQ8Block) {
      std::printf("FAIL bad shape '%s' (want name:m:k, m a multiple of 16, k of 32)\n", argv[i]);
      return 1;
    }
    for (bool q4 : {false, true}) ok = check_shape(*isa, name, m, k, n, seed++, q4) && ok;
  }
  std::printf("%s in %.1f s\n", ok ? "all shapes ok" : "FAILED", ms_since(t0) / 1000);
  return ok ? 0 : 1;
}
