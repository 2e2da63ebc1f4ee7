// The Winograd F(2x2, 3x3) task of cpu_conv.h's kernels (cpu_conv_winograd.cpp has the op and the
// weights' transform). Deliberately no include guard: each ISA file includes it after
// cpu_conv_tile.h, in the same namespace, whose Simd (plus sub), kTileVecs, kBlock, conv_tile and
// kTiles it uses.
//
// A 3x3 convolution of stride 1 and padding 1, per 2x2 block of output pixels (a "tile"): the 4x4
// input pixels around it are transformed (V = Bt d B, adds only), multiplied with the transformed
// weights (U = G g Gt) as 16 independent products over the input channels, M[xi] = sum_c V[xi] U[xi],
// and transformed back (Y = At M A, adds only): 16 products per 4 output values where the direct
// convolution has 36, i.e. 2.25x fewer multiplications. The products are conv_tile's, one tap
// wide, over the tiles' transformed inputs. Everything is vectorized over channels, so the
// transforms are a few vector adds per 16 channels.
//   Bt = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], At = [1 1 1 0; 0 1 -1 -1].

// The 4 values x[0], x[s], x[2s], x[3s] through Bt, in place.
JSD_CONV_TARGET inline void input_transform4(typename Simd::F* x, int s) {
  const typename Simd::F d0 = x[0], d1 = x[s], d2 = x[2 * s], d3 = x[3 * s];
  x[0] = Simd::sub(d0, d2);
  x[s] = Simd::add(d1, d2);
  x[2 * s] = Simd::sub(d2, d1);
  x[3 * s] = Simd::sub(d1, d3);
}

// Tiles [t0, t1) (flattened over n, tile rows, tile columns) of every output block. scratch holds
// the tiles' transformed inputs, [16][tiles][c_in], then one block's products, [16][tiles][kBlock]
// (winograd_scratch_floats). c_in is a multiple of Simd::kLanes.
JSD_CONV_TARGET void run_winograd(const ConvProblem& p, int64_t t0, int64_t t1, float* scratch) {
  using Vec = typename Simd::F;
  constexpr int kLanes = Simd::kLanes;
  const int64_t tiles = t1 - t0;
  const int64_t tiles_w = (p.out_w + 1) / 2;
  const int64_t tiles_h = (p.out_h + 1) / 2;
  const int up = p.upsample ? 1 : 0;
  const int64_t in_w = p.w << up;
  const int64_t in_h = p.h << up;
  float* v = scratch;
  float* m = v + 16 * tiles * p.c_in;
  // Each tile's 4x4 input pixels (zeros outside the image), transformed 16 channels at a time.
  for (int64_t i = 0; i < tiles; ++i) {
    const int64_t t = t0 + i;
    const int64_t tx = t % tiles_w;
    const int64_t ty = (t / tiles_w) % tiles_h;
    const int64_t n = t / (tiles_w * tiles_h);
    const float* d[16];
    for (int r = 0; r < 4; ++r) {
      const int64_t iy = 2 * ty - 1 + r;
      for (int s = 0; s < 4; ++s) {
        const int64_t ix = 2 * tx - 1 + s;
        const bool inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
        d[r * 4 + s] = inside ? p.x + ((n * p.h + (iy >> up)) * p.w + (ix >> up)) * p.c_in : p.zeros;
      }
    }
    for (int64_t c = 0; c < p.c_in; c += kLanes) {
      Vec x[16];
      for (int k = 0; k < 16; ++k) x[k] = Simd::load(d[k] + c);
      for (int s = 0; s < 4; ++s) input_transform4(x + s, 4);  // columns: along the rows r
      for (int r = 0; r < 4; ++r) input_transform4(x + 4 * r, 1);
      for (int k = 0; k < 16; ++k) Simd::store(v + (k * tiles + i) * p.c_in + c, x[k]);
    }
  }
  const float* rows[kMaxWinogradTiles];
  const int64_t blocks = (p.c_out + kBlock - 1) / kBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* u = p.packed + b * conv_block_floats(kBlock, 4, p.c_in);
    const float* bias = u + 16 * p.c_in * kBlock;
    for (int k = 0; k < 16; ++k) {
      for (int64_t i = 0; i < tiles; ++i) rows[i] = v + (k * tiles + i) * p.c_in;
      for (int64_t i = 0; i < tiles; i += kTilePixels) {
        const int mt = static_cast<int>(std::min<int64_t>(kTilePixels, tiles - i));
        kTiles[mt - 1](rows + i, 1, p.c_in, u + k * p.c_in * kBlock, p.zeros, nullptr, m + (k * tiles + i) * kBlock, kBlock);
      }
    }
    // Back to 2x2 output pixels, plus the biases (and the residual); a tile past the image's right
    // or bottom edge (odd sizes) stores only its pixels inside.
    for (int64_t i = 0; i < tiles; ++i) {
      const int64_t t = t0 + i;
      const int64_t tx = t % tiles_w;
      const int64_t ty = (t / tiles_w) % tiles_h;
      const int64_t n = t / (tiles_w * tiles_h);
      for (int j = 0; j < kTileVecs; ++j) {
        Vec x[16];
        for (int k = 0; k < 16; ++k) x[k] = Simd::load(m + (k * tiles + i) * kBlock + j * kLanes);
        Vec a[8];  // At along the rows r: a[0..3] = row 0 of At M, a[4..7] = row 1
        for (int s = 0; s < 4; ++s) {
          a[s] = Simd::add(Simd::add(x[s], x[4 + s]), x[8 + s]);
          a[4 + s] = Simd::sub(Simd::sub(x[4 + s], x[8 + s]), x[12 + s]);
        }
        const Vec bias_j = Simd::load(bias + j * kLanes);
        Vec y[4];  // (row, column) = (0, 0), (0, 1), (1, 0), (1, 1)
        for (int r = 0; r < 2; ++r) {
          const Vec* ar = a + 4 * r;
          y[2 * r] = Simd::add(Simd::add(Simd::add(ar[0], ar[1]), ar[2]), bias_j);
          y[2 * r + 1] = Simd::add(Simd::sub(Simd::sub(ar[1], ar[2]), ar[3]), bias_j);
        }
        for (int k = 0; k < 4; ++k) {
          const int64_t oy = 2 * ty + k / 2;
          const int64_t ox = 2 * tx + k % 2;
          if (oy >= p.out_h || ox >= p.out_w) continue;
          const int64_t pixel = (n * p.out_h + oy) * p.out_w + ox;
          const int64_t lane0 = b * kBlock + j * kLanes;
          if (lane0 >= p.c_out) continue;
          float* out = p.out + pixel * p.c_out + lane0;
          const float* residual = p.residual != nullptr ? p.residual + pixel * p.c_out + lane0 : nullptr;
          if (lane0 + kLanes <= p.c_out) {
            Simd::store(out, residual != nullptr ? Simd::add(y[k], Simd::load(residual)) : y[k]);
          } else {
            alignas(64) float lanes[kLanes];
            Simd::store(lanes, y[k]);
            for (int64_t l = 0; l < p.c_out - lane0; ++l) out[l] = lanes[l] + (residual != nullptr ? residual[l] : 0.0f);
          }
        }
      }
    }
  }
}
