// The Winograd F(2x2, 3x3) convolution of cpu_conv.h (the kernels' side: cpu_conv_winograd_tile.h):
// its ggml ops, the weights' transform and the split into tasks.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cpu_conv_ops.h"

namespace jsd::conv_ops {

namespace {

constexpr int64_t kPackLanes = 16;  // output channels transformed at once: one cache line per packed row

// A task's tiles, a multiple of the register tiles' 6. Each task reads all the transformed weights
// once (16 MB at 512 x 512 channels, from L3), so more tiles per task need less bandwidth; their
// transformed inputs (16 floats per tile and input channel) take up to about 2 MB. Measured on one
// core (eq-GFLOP/s: the direct convolution's FLOPs per second): 512 KB 229, 1 MB 267, 2 MB 281,
// 4 MB 265.
int64_t tiles_per_task(int64_t c_in) {
  const int64_t fit = (int64_t{2} << 20) / (16 * 4 * c_in);
  return std::max<int64_t>(6, std::min(kMaxWinogradTiles, fit) / 6 * 6);
}

// U = G g Gt of kPackLanes 3x3 kernels g[ky * 3 + kx][lane] into u[r * 4 + s][lane], G = [1 0 0;
// 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (lane by lane: loops the compiler vectorizes).
void transform_weights(const float (&g)[9][kPackLanes], float (&u)[16][kPackLanes]) {
  float gg[4][3][kPackLanes];  // G g
  for (int kx = 0; kx < 3; ++kx) {
    for (int64_t l = 0; l < kPackLanes; ++l) {
      gg[0][kx][l] = g[kx][l];
      gg[1][kx][l] = 0.5f * (g[kx][l] + g[3 + kx][l] + g[6 + kx][l]);
      gg[2][kx][l] = 0.5f * (g[kx][l] - g[3 + kx][l] + g[6 + kx][l]);
      gg[3][kx][l] = g[6 + kx][l];
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int64_t l = 0; l < kPackLanes; ++l) {
      u[4 * r][l] = gg[r][0][l];
      u[4 * r + 1][l] = 0.5f * (gg[r][0][l] + gg[r][1][l] + gg[r][2][l]);
      u[4 * r + 2][l] = 0.5f * (gg[r][0][l] - gg[r][1][l] + gg[r][2][l]);
      u[4 * r + 3][l] = gg[r][2][l];
    }
  }
}

// The transformed weights and the biases in the kernels' blocks: per block [16][c_in][block],
// then [block] biases; blocks ith, ith + nth, ...
void pack(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* w = dst->src[0];
  const auto* bias = static_cast<const float*>(dst->src[1]->data);
  const int64_t c_out = w->ne[3];
  const int64_t c_in = w->ne[2];
  const int64_t block = kernels().block;
  const int64_t blocks = (c_out + block - 1) / block;
  std::vector<float> rows(kPackLanes * 9 * c_in);
  for (int64_t b = ith; b < blocks; b += nth) {
    float* out = static_cast<float*>(dst->data) + b * conv_block_floats(block, 4, c_in);
    for (int64_t l0 = 0; l0 < block; l0 += kPackLanes) {
      for (int64_t lane = 0; lane < kPackLanes; ++lane) {
        const int64_t o = b * block + l0 + lane;
        if (o < c_out) weight_row(w, o, 9 * c_in, rows.data() + lane * 9 * c_in);
        else std::fill_n(rows.data() + lane * 9 * c_in, 9 * c_in, 0.0f);
        out[16 * c_in * block + l0 + lane] = o < c_out ? bias[o] : 0.0f;
      }
      for (int64_t c = 0; c < c_in; ++c) {
        float g[9][kPackLanes];
        for (int64_t lane = 0; lane < kPackLanes; ++lane) {
          for (int t = 0; t < 9; ++t) g[t][lane] = rows[(lane * c_in + c) * 9 + t];
        }
        float u[16][kPackLanes];
        transform_weights(g, u);
        for (int k = 0; k < 16; ++k) std::copy_n(u[k], kPackLanes, out + (k * c_in + c) * block + l0);
      }
    }
  }
}

// Tasks of tiles_per_task tiles, all blocks each (the tiles' inputs are transformed once), spread
// over ggml's threads; each thread's scratch is its slot of src[3].
void winograd(ggml_tensor* dst, int ith, int nth, void*) {
  const ConvKernels& isa = kernels();
  const ConvProblem p = problem(dst, params_of(dst));
  const ggml_tensor* scratch = dst->src[3];
  const int64_t tiles = ((p.out_w + 1) / 2) * ((p.out_h + 1) / 2) * p.n;
  const int64_t per_task = tiles_per_task(p.c_in);
  const int64_t slot = winograd_scratch_floats(per_task, p.c_in, isa.block);
  // Threads beyond the scratch's slots (a thread count above the one the graph was built for)
  // leave the work to the others.
  const int64_t workers = std::min<int64_t>(nth, ggml_nelements(scratch) / slot);
  if (ith >= workers) return;
  float* mine = static_cast<float*>(scratch->data) + ith * slot;
  const int64_t tasks = (tiles + per_task - 1) / per_task;
  for (int64_t task = ith; task < tasks; task += workers) {
    const int64_t t0 = task * per_task;
    isa.winograd(p, t0, std::min(tiles, t0 + per_task), mine);
  }
}

}  // namespace

bool winograd_fits(int64_t c_in, const ConvGeometry& g, int kernel) {
  static const bool off = std::getenv("JSD_CONV_WINOGRAD") != nullptr && std::strcmp(std::getenv("JSD_CONV_WINOGRAD"), "0") == 0;
  return !off && kernel == 3 && g.stride == 1 && g.pad == 1 && g.pad_after == 1 && c_in >= 32 && c_in % 16 == 0;
}

ggml_tensor* winograd_conv3x3(ggml_context* ctx, ggml_tensor* x, ggml_tensor* weight, ggml_tensor* bias, bool upsample,
                              ggml_tensor* residual, int threads) {
  const int64_t c_in = x->ne[0];
  const int64_t c_out = weight->ne[3];
  const int64_t block = kernels().block;
  const int64_t blocks = (c_out + block - 1) / block;
  ggml_tensor* pack_args[2] = {weight, bias};
  ggml_tensor* packed =
      ggml_custom_4d(ctx, GGML_TYPE_F32, blocks * conv_block_floats(block, 4, c_in), 1, 1, 1, pack_args, 2, pack, GGML_N_TASKS_MAX, nullptr);
  ggml_set_name(packed, "winograd weights");
  const int64_t per_task = tiles_per_task(c_in);
  ggml_tensor* scratch = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, std::max(1, threads) * winograd_scratch_floats(per_task, c_in, block));
  const int up = upsample ? 2 : 1;
  ggml_tensor* args[4] = {x, packed, residual, scratch};
  ggml_tensor* out = ggml_custom_4d(ctx, GGML_TYPE_F32, c_out, x->ne[1] * up, x->ne[2] * up, x->ne[3], args, 4, winograd, GGML_N_TASKS_MAX, nullptr);
  set_params(out, {3, 1, 1, upsample});
  return ggml_set_name(out, "conv 3x3 winograd");
}

}  // namespace jsd::conv_ops
