#include "kernels/q8_gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/q8_gemm_isa.h"

namespace jsd {

namespace {

constexpr int kBlock = kQ8Block;
constexpr int kGroup = kQ8Group;

// What gemm() multiplies by: a layout's bytes per row and block, and its tiles in a table.
struct Format {
  int block_bytes;
  const Q8TileFn* (*tiles)(const Q8Kernels&);
};
constexpr Format kQ8Format{kQ8BlockBytes, [](const Q8Kernels& k) -> const Q8TileFn* { return k.tiles; }};
constexpr Format kQ4Format{kQ4BlockBytes, [](const Q8Kernels& k) -> const Q8TileFn* { return k.q4_tiles; }};

bool groupable(const ggml_tensor* weight, ggml_type type) {
  return weight->type == type && ggml_n_dims(weight) == 2 && weight->ne[1] % kGroup == 0 && weight->ne[0] % kBlock == 0;
}
}  // namespace

bool q8_interleavable(const ggml_tensor* weight) { return groupable(weight, GGML_TYPE_Q8_0); }

bool q4_interleavable(const ggml_tensor* weight) { return groupable(weight, GGML_TYPE_Q4_0); }

namespace {

// The ISA kernels this build has, best first. Each reports null where the CPU lacks its
// instructions.
const Q8Kernels* (*const candidates[])() = {q8_kernels_avx512, q8_kernels_avx_vnni, q8_kernels_avx2, q8_kernels_neon};

// The first table this CPU runs; JSD_Q8_KERNEL=<name> picks one by name (a switch for same-run
// comparisons).
const Q8Kernels* choose_kernels() {
  if (std::getenv("JSD_NO_REPACK") != nullptr) return nullptr;
  const char* forced = std::getenv("JSD_Q8_KERNEL");
  for (auto candidate : candidates) {
    const Q8Kernels* k = candidate();
    if (k == nullptr) continue;
    if (forced == nullptr || *forced == 0 || std::string(forced) == k->name) return k;
  }
  return nullptr;
}

const Q8Kernels* kernels() {
  static const Q8Kernels* chosen = choose_kernels();
  return chosen;
}


void quantize_rows(ggml_tensor* dst, int ith, int nth, void*) {
  const ggml_tensor* x = dst->src[0];
  kernels()->quantize_rows(static_cast<const float*>(x->data), ggml_nrows(x), x->ne[0], x->nb[1], static_cast<uint8_t*>(dst->data), ith, nth);
}

constexpr int kTaskGroups = 4;  // weight groups per task (64 rows: ~200 KB of a 3x3 conv's weights)

// The product in tasks of kTaskGroups weight groups by a few register tiles of activation rows,
// spread over ggml's threads; each tile is the ISA kernel's.
void gemm(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const Q8Kernels& isa = *kernels();
  const Format& format = *static_cast<const Format*>(userdata);
  const Q8TileFn* tiles = format.tiles(isa);
  const int tile_rows = isa.tile_rows;
  const int64_t task_rows = 8 * tile_rows;
  const ggml_tensor* w = dst->src[0];
  const ggml_tensor* xq = dst->src[1];
  const int64_t k = w->ne[0];
  const int64_t n = w->ne[1];
  const int64_t nb = k / kBlock;
  const int64_t rows = ggml_nrows(xq);
  const int64_t row_bytes = q8_activation_row_bytes(k);
  const int64_t groups = n / kGroup;
  const int64_t group_bytes = kGroup * nb * format.block_bytes;
  const int64_t n_tasks = (groups + kTaskGroups - 1) / kTaskGroups;
  const int64_t m_tasks = (rows + task_rows - 1) / task_rows;
  const auto* wdata = static_cast<const uint8_t*>(w->data);
  const auto* xdata = static_cast<const uint8_t*>(xq->data);
  auto* out = static_cast<float*>(dst->data);
  for (int64_t task = ith; task < n_tasks * m_tasks; task += nth) {
    const int64_t g0 = (task % n_tasks) * kTaskGroups;
    const int64_t m0 = (task / n_tasks) * task_rows;
    const int64_t g1 = std::min(groups, g0 + kTaskGroups);
    const int64_t m1 = std::min(rows, m0 + task_rows);
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* quants = wdata + g * group_bytes;
      const auto* scales = reinterpret_cast<const uint16_t*>(quants + nb * kGroup * (format.block_bytes - 2));
      for (int64_t m = m0; m < m1; m += tile_rows) {
        const int64_t mt = std::min<int64_t>(tile_rows, m1 - m);
        tiles[mt - 1](quants, scales, nb, xdata + m * row_bytes, k, row_bytes, out + m * n + g * kGroup, n);
      }
    }
  }
}

}  // namespace

bool q8_gemm_available() { return kernels() != nullptr; }

// JSD_Q4_GGML=1 leaves q4_0 to ggml's repacked kernels (a switch for same-build comparisons).
bool q4_gemm_available() {
  static const bool ggml = std::getenv("JSD_Q4_GGML") != nullptr;
  return !ggml && kernels() != nullptr && kernels()->q4_tiles[0] != nullptr;
}

const char* q8_gemm_kernel_name() { return kernels() != nullptr ? kernels()->name : "none"; }

std::vector<std::string> q8_gemm_kernel_names() {
  std::vector<std::string> names;
  for (auto candidate : candidates) {
    if (const Q8Kernels* k = candidate()) names.emplace_back(k->name);
  }
  return names;
}

namespace {

ggml_tensor* mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x, const Format& format) {
  if (x->type != GGML_TYPE_F32) x = ggml_cast(ctx, x, GGML_TYPE_F32);
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  const int64_t k = weight->ne[0];
  ggml_tensor* xq = ggml_custom_4d(ctx, GGML_TYPE_I8, q8_activation_row_bytes(k), ggml_nrows(x), 1, 1, &x, 1, quantize_rows,
                                   GGML_N_TASKS_MAX, nullptr);
  ggml_set_name(xq, "q8 quantize");
  ggml_tensor* args[2] = {weight, xq};
  ggml_tensor* out = ggml_custom_4d(ctx, GGML_TYPE_F32, weight->ne[1], x->ne[1], x->ne[2], x->ne[3], args, 2, gemm, GGML_N_TASKS_MAX,
                                    const_cast<Format*>(&format));
  return ggml_format_name(out, "%s gemm", &format == &kQ8Format ? "q8" : "q4");
}

}  // namespace

ggml_tensor* q8_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) { return mul_mat(ctx, weight, x, kQ8Format); }

ggml_tensor* q4_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) { return mul_mat(ctx, weight, x, kQ4Format); }

}  // namespace jsd
