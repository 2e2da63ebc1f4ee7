// The register tile and the task loop of cpu_conv.h's kernels, one template for every instruction
// set. Deliberately no include guard: each ISA file (cpu_conv_avx512.cpp, cpu_conv_avx2.cpp)
// includes it once, inside a namespace of its own, with in scope:
//   JSD_CONV_TARGET  the function target attribute of its instruction set;
//   Simd             simd_f32.h's vector: F (kLanes floats), load, store, set1, fma(a, b, c) = a * b + c, add, sub;
//   kTilePixels      output pixels per register tile;
//   kTileVecs        vectors of output channels per register tile (the block is kTileVecs * kLanes);
//   kChunkTiles      register tiles per task;
// and <algorithm>, <array>, <cstdint>, <utility>, cpu_conv_isa.h.
//
// A direct convolution: every output pixel's tap reads its input pixel's channels in place
// (channels-last, so they are contiguous), and a tap outside the image reads zeros. Each input
// value is broadcast and multiplied by a row of kTileVecs vectors of packed weights, one per
// output channel lane: no im2col matrix, and the output comes out channels-last as well.

constexpr int kBlock = Simd::kLanes * kTileVecs;
constexpr int kChunk = kTilePixels * kChunkTiles;
constexpr int kMaxTaps = 9;  // kernels up to 3x3 (cpu_conv2d checks)
constexpr int kPrefetchRows = 16;

// MT output pixels by the block's kBlock channels, over every input channel of every tap. px[t *
// kTilePixels + m]: where pixel m's input for tap t starts. w: the block's packed weights,
// [tap][channel] rows of kBlock. The sums start at init (kBlock floats: the biases, or zeros) and
// end, plus add (if not null; row m at add + m * ldo), at out + m * ldo.
template <int MT>
JSD_CONV_TARGET void conv_tile(const float* const* px, int taps, int64_t channels, const float* w, const float* init, const float* add,
                               float* out, int64_t ldo) {
  typename Simd::F acc[MT][kTileVecs];
  for (int m = 0; m < MT; ++m) {
    for (int j = 0; j < kTileVecs; ++j) acc[m][j] = Simd::load(init + j * Simd::kLanes);
  }
  for (int t = 0; t < taps; ++t) {
    const float* p[MT];
    for (int m = 0; m < MT; ++m) p[m] = px[t * kTilePixels + m];
    const float* wt = w + t * channels * kBlock;
    for (int64_t c = 0; c < channels; ++c) {
      typename Simd::F wv[kTileVecs];
      for (int j = 0; j < kTileVecs; ++j) wv[j] = Simd::load(wt + c * kBlock + j * Simd::kLanes);
      // The weights stream from L2 (a block's are 9 * c_in * kBlock floats: 1.2 MB at 512 channels);
      // fetching them 16 rows ahead measured about 5 % faster than leaving it to the hardware.
      for (int j = 0; j < kTileVecs; ++j) __builtin_prefetch(wt + (c + kPrefetchRows) * kBlock + j * Simd::kLanes);
      for (int m = 0; m < MT; ++m) {
        const typename Simd::F s = Simd::set1(p[m][c]);
        for (int j = 0; j < kTileVecs; ++j) acc[m][j] = Simd::fma(s, wv[j], acc[m][j]);
      }
    }
  }
  if (add != nullptr) {
    for (int m = 0; m < MT; ++m) {
      for (int j = 0; j < kTileVecs; ++j) acc[m][j] = Simd::add(acc[m][j], Simd::load(add + m * ldo + j * Simd::kLanes));
    }
  }
  for (int m = 0; m < MT; ++m) {
    for (int j = 0; j < kTileVecs; ++j) Simd::store(out + m * ldo + j * Simd::kLanes, acc[m][j]);
  }
}

using ConvTileFn = void (*)(const float* const*, int, int64_t, const float*, const float*, const float*, float*, int64_t);

template <int... MT>
constexpr std::array<ConvTileFn, sizeof...(MT)> make_tiles(std::integer_sequence<int, MT...>) {
  return {&conv_tile<MT + 1>...};
}
constexpr std::array<ConvTileFn, kTilePixels> kTiles = make_tiles(std::make_integer_sequence<int, kTilePixels>{});

JSD_CONV_TARGET void run(const ConvProblem& p, int64_t b, int64_t p0, int64_t p1) {
  const int taps = p.kernel * p.kernel;
  const float* w = p.packed + b * conv_block_floats(kBlock, p.kernel, p.c_in);
  const int64_t pixels = p1 - p0;
  // Where each output pixel's input starts, for each tap: tile by tile, [tap][pixel of the tile].
  const float* px[kChunkTiles * kMaxTaps * kTilePixels];
  const int up = p.upsample ? 1 : 0;
  const int64_t in_w = p.w << up;
  const int64_t in_h = p.h << up;
  for (int64_t i = 0; i < pixels; ++i) {
    const int64_t q = p0 + i;
    const int64_t ox = q % p.out_w;
    const int64_t oy = (q / p.out_w) % p.out_h;
    const int64_t n = q / (p.out_w * p.out_h);
    const float** tile = px + (i / kTilePixels) * taps * kTilePixels + i % kTilePixels;
    for (int ky = 0; ky < p.kernel; ++ky) {
      const int64_t iy = oy * p.stride + ky - p.pad;
      for (int kx = 0; kx < p.kernel; ++kx) {
        const int64_t ix = ox * p.stride + kx - p.pad;
        const bool inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
        tile[(ky * p.kernel + kx) * kTilePixels] = inside ? p.x + ((n * p.h + (iy >> up)) * p.w + (ix >> up)) * p.c_in : p.zeros;
      }
    }
  }
  // A block narrower than kBlock (c_out not a multiple of it) is summed in scratch, then copied.
  const int64_t valid = std::min<int64_t>(kBlock, p.c_out - b * kBlock);
  const bool partial = valid < kBlock;
  alignas(64) float scratch[kChunk * kBlock];
  float* target = partial ? scratch : p.out + p0 * p.c_out + b * kBlock;
  const int64_t ldo = partial ? kBlock : p.c_out;
  const float* residual = p.residual != nullptr ? p.residual + p0 * p.c_out + b * kBlock : nullptr;
  for (int64_t i = 0; i < pixels; i += kTilePixels) {
    const int mt = static_cast<int>(std::min<int64_t>(kTilePixels, pixels - i));
    const float* add = residual != nullptr && !partial ? residual + i * ldo : nullptr;
    kTiles[mt - 1](px + (i / kTilePixels) * taps * kTilePixels, taps, p.c_in, w, w + taps * p.c_in * kBlock, add, target + i * ldo, ldo);
  }
  if (partial) {
    for (int64_t i = 0; i < pixels; ++i) {
      float* o = p.out + (p0 + i) * p.c_out + b * kBlock;
      for (int64_t j = 0; j < valid; ++j) o[j] = scratch[i * kBlock + j] + (residual != nullptr ? residual[i * p.c_out + j] : 0.0f);
    }
  }
}
