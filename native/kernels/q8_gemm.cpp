#include "kernels/q8_gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/custom_op_params.h"
#include "kernels/kernel_choice.h"
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
  return first_table(candidates, forced_name("JSD_Q8_KERNEL"));
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

// Where a product's tiles go and what is added to them (q8_product's addends and as_image).
struct Output {
  float* out;
  int64_t n;             // output channels
  bool as_image;         // [W, H, n, N]: value (row m, channel c) at image * n * plane + c * plane + pixel
  int64_t plane;         // pixels per image (rows / images), for as_image and image_bias
  const float* bias;     // [n] or null
  const float* image_bias;  // [n, images] or null
  const float* residual;    // the output's shape, contiguous, or null
  bool plain() const { return !as_image && bias == nullptr && image_bias == nullptr && residual == nullptr; }
};

// t[i] += a[i] for i < count (restrict: vectorized).
inline void add_to(float* __restrict t, const float* __restrict a, int64_t count) {
  for (int64_t i = 0; i < count; ++i) t[i] += a[i];
}

// Adds the addends to a task's block of rows [m0, m1) by channels [c0, c1), row i's values at
// block + i * ld (in the output already, or in a buffer for as_image), and stores an as_image
// block channel by channel. Once per block, not per register tile: the rows of the residual and
// of an image's channel planes are then read and written in runs.
void finish_block(const Output& o, float* block, int64_t ld, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
  const int64_t width = c1 - c0;
  for (int64_t m = m0; m < m1; ++m) {
    float* t = block + (m - m0) * ld;
    if (o.bias != nullptr) add_to(t, o.bias + c0, width);
    if (o.image_bias != nullptr) add_to(t, o.image_bias + m / o.plane * o.n + c0, width);
    if (o.residual != nullptr && !o.as_image) add_to(t, o.residual + m * o.n + c0, width);
  }
  if (!o.as_image) return;
  // Rows of one image at a time: within an image, the rows are consecutive pixels, so each
  // channel's values are a contiguous run of its plane.
  for (int64_t m = m0; m < m1;) {
    const int64_t image = m / o.plane;
    const int64_t p0 = m % o.plane;
    const int64_t count = std::min(m1 - m, o.plane - p0);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t at = (image * o.n + c) * o.plane + p0;
      float* dst = o.out + at;
      const float* t = block + (m - m0) * ld + (c - c0);
      if (o.residual != nullptr) {
        const float* res = o.residual + at;
        for (int64_t i = 0; i < count; ++i) dst[i] = t[i * ld] + res[i];
      } else {
        for (int64_t i = 0; i < count; ++i) dst[i] = t[i * ld];
      }
    }
    m += count;
  }
}

// The product in tasks of kTaskGroups weight groups by a few register tiles of activation rows,
// spread over ggml's threads; each tile is the ISA kernel's. src: weight, records, then the
// addends present (custom params: as_image, has bias, has image_bias, has residual).
void gemm(ggml_tensor* dst, int ith, int nth, void*) {
  const Q8Kernels& isa = *kernels();
  const ggml_tensor* w = dst->src[0];
  const Format& format = w->type == GGML_TYPE_Q4_0 ? kQ4Format : kQ8Format;
  const Q8TileFn* tiles = format.tiles(isa);
  const int tile_rows = isa.tile_rows;
  const int64_t task_rows = 8 * tile_rows;
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

  Output o{static_cast<float*>(dst->data), n, custom_param(dst, 0) != 0, rows, nullptr, nullptr, nullptr};
  int src = 2;
  if (custom_param(dst, 1)) o.bias = static_cast<const float*>(dst->src[src++]->data);
  if (custom_param(dst, 2)) {
    const ggml_tensor* ib = dst->src[src++];
    o.image_bias = static_cast<const float*>(ib->data);
    o.plane = rows / ib->ne[1];
  }
  if (custom_param(dst, 3)) o.residual = static_cast<const float*>(dst->src[src++]->data);
  if (o.as_image) o.plane = dst->ne[0] * dst->ne[1];
  const bool plain = o.plain();

  // An as_image task's block, until finish_block stores it channel by channel.
  thread_local std::vector<float> image_block;
  if (o.as_image) image_block.resize(task_rows * kTaskGroups * kGroup);
  for (int64_t task = ith; task < n_tasks * m_tasks; task += nth) {
    const int64_t g0 = (task % n_tasks) * kTaskGroups;
    const int64_t m0 = (task / n_tasks) * task_rows;
    const int64_t g1 = std::min(groups, g0 + kTaskGroups);
    const int64_t m1 = std::min(rows, m0 + task_rows);
    float* block = o.as_image ? image_block.data() : o.out + m0 * n + g0 * kGroup;
    const int64_t ld = o.as_image ? kTaskGroups * kGroup : n;
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* quants = wdata + g * group_bytes;
      const auto* scales = reinterpret_cast<const uint16_t*>(quants + nb * kGroup * (format.block_bytes - 2));
      for (int64_t m = m0; m < m1; m += tile_rows) {
        const int64_t mt = std::min<int64_t>(tile_rows, m1 - m);
        tiles[mt - 1](quants, scales, nb, xdata + m * row_bytes, k, row_bytes, block + (m - m0) * ld + (g - g0) * kGroup, ld);
      }
    }
    if (!plain) finish_block(o, block, ld, m0, m1, g0 * kGroup, g1 * kGroup);
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

ggml_tensor* q8_records(ggml_context* ctx, ggml_tensor* x) {
  if (x->type != GGML_TYPE_F32) x = ggml_cast(ctx, x, GGML_TYPE_F32);
  if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
  ggml_tensor* records = ggml_custom_4d(ctx, GGML_TYPE_I8, q8_activation_row_bytes(x->ne[0]), ggml_nrows(x), 1, 1, &x, 1, quantize_rows,
                                        GGML_N_TASKS_MAX, nullptr);
  return ggml_set_name(records, "q8 quantize");
}

ggml_tensor* q8_product(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* records, std::array<int64_t, 3> rows, bool as_image,
                        const Q8Addends& addends) {
  GGML_ASSERT(weight->type == GGML_TYPE_Q8_0 || weight->type == GGML_TYPE_Q4_0);
  GGML_ASSERT(records->ne[0] == q8_activation_row_bytes(weight->ne[0]) && ggml_nrows(records) == rows[0] * rows[1] * rows[2]);
  const int64_t n = weight->ne[1];
  std::vector<ggml_tensor*> args{weight, records};
  for (ggml_tensor* t : {addends.bias, addends.image_bias, addends.residual}) {
    if (t != nullptr) GGML_ASSERT(t->type == GGML_TYPE_F32 && ggml_is_contiguous(t));
    if (t != nullptr) args.push_back(t);
  }
  if (addends.bias != nullptr) GGML_ASSERT(ggml_nelements(addends.bias) == n);
  if (addends.image_bias != nullptr) GGML_ASSERT(addends.image_bias->ne[0] == n && ggml_nelements(addends.image_bias) == n * rows[2]);
  ggml_tensor* out = as_image ? ggml_custom_4d(ctx, GGML_TYPE_F32, rows[0], rows[1], n, rows[2], args.data(), static_cast<int>(args.size()), gemm,
                                               GGML_N_TASKS_MAX, nullptr)
                              : ggml_custom_4d(ctx, GGML_TYPE_F32, n, rows[0], rows[1], rows[2], args.data(), static_cast<int>(args.size()), gemm,
                                               GGML_N_TASKS_MAX, nullptr);
  if (addends.residual != nullptr) GGML_ASSERT(ggml_are_same_shape(addends.residual, out));
  set_custom_params(out, {as_image ? 1 : 0, addends.bias != nullptr, addends.image_bias != nullptr, addends.residual != nullptr});
  return ggml_format_name(out, "%s gemm", weight->type == GGML_TYPE_Q8_0 ? "q8" : "q4");
}

void q8_quantize_row(const float* x, int64_t k, uint8_t* record) { kernels()->quantize_rows(x, 1, k, 0, record, 0, 1); }

ggml_tensor* q8_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) {
  GGML_ASSERT(weight->type == GGML_TYPE_Q8_0);
  return q8_product(ctx, weight, q8_records(ctx, x), {x->ne[1], x->ne[2], x->ne[3]}, false);
}

ggml_tensor* q4_mul_mat(ggml_context* ctx, ggml_tensor* weight, ggml_tensor* x) {
  GGML_ASSERT(weight->type == GGML_TYPE_Q4_0);
  return q8_product(ctx, weight, q8_records(ctx, x), {x->ne[1], x->ne[2], x->ne[3]}, false);
}

}  // namespace jsd
