#include "networks/nn.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "kernels/cpu_attention.h"
#include "kernels/cpu_fused.h"
#include "kernels/q8_gemm.h"
#include "kernels/q8_gemm_isa.h"
#include "kernels/q8_records.h"

namespace jsd::nn {

namespace {
// Above this im2col size a convolution is computed in bands or directly (see conv2d). JSD_DIRECT_CONV_MB
// overrides it for measurements.
// Largest block of attention scores computed at once: 64 MB.
constexpr int64_t kMaxScoreFloats = int64_t{16} << 20;

int64_t direct_conv_bytes() {
  static const int64_t bytes = std::getenv("JSD_DIRECT_CONV_MB") ? std::atoll(std::getenv("JSD_DIRECT_CONV_MB")) << 20 : int64_t{64} << 20;
  return bytes;
}
}  // namespace

ggml_tensor* matmul(ggml_context* ctx, ggml_tensor* weight, WeightLayout layout, ggml_tensor* x) {
  switch (layout) {
    case WeightLayout::Q8Interleaved:
      return q8_mul_mat(ctx, weight, x);
    case WeightLayout::Q4Interleaved:
      return q4_mul_mat(ctx, weight, x);
    default:
      return ggml_mul_mat(ctx, weight, x);
  }
}

namespace {

bool interleaved(WeightLayout layout) { return layout == WeightLayout::Q8Interleaved || layout == WeightLayout::Q4Interleaved; }

ggml_tensor* contiguous(ggml_context* ctx, ggml_tensor* t) { return t != nullptr && !ggml_is_contiguous(t) ? ggml_cont(ctx, t) : t; }

// y + bias + residual, ggml's way (the sums q8_product's addends make, in the same order).
ggml_tensor* add_to(ggml_context* ctx, ggml_tensor* y, ggml_tensor* bias, ggml_tensor* residual) {
  if (bias != nullptr) y = ggml_add(ctx, y, bias);
  return residual != nullptr ? ggml_add(ctx, y, residual) : y;
}

// The rows of x [k, d1, d2, d3], for q8_product.
std::array<int64_t, 3> rows_of(const ggml_tensor* x) { return {x->ne[1], x->ne[2], x->ne[3]}; }

}  // namespace

ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const Linear& l, ggml_tensor* residual) {
  if (interleaved(l.layout)) return q8_product(ctx, l.weight, q8_records(ctx, x), rows_of(x), false, {l.bias, nullptr, contiguous(ctx, residual)});
  return add_to(ctx, ggml_mul_mat(ctx, l.weight, x), l.bias, residual);
}

std::vector<ggml_tensor*> linears(ggml_context* ctx, ggml_tensor* x, std::initializer_list<const Linear*> layers) {
  ggml_tensor* records = nullptr;
  std::vector<ggml_tensor*> out;
  for (const Linear* l : layers) {
    if (!interleaved(l->layout)) {
      out.push_back(linear(ctx, x, *l));
      continue;
    }
    if (records == nullptr) records = q8_records(ctx, x);
    out.push_back(q8_product(ctx, l->weight, records, rows_of(x), false, {l->bias}));
  }
  return out;
}

std::vector<ggml_tensor*> norm_linears(ggml_context* ctx, ggml_tensor* x, const Norm& n, float eps, std::initializer_list<const Linear*> layers) {
  const bool all_interleaved = std::all_of(layers.begin(), layers.end(), [](const Linear* l) { return interleaved(l->layout); });
  if (!all_interleaved) return linears(ctx, layer_norm(ctx, x, n, eps), layers);
  ggml_tensor* records = q8_records_layer_norm(ctx, x, n.weight, n.bias, eps);
  std::vector<ggml_tensor*> out;
  for (const Linear* l : layers) out.push_back(q8_product(ctx, l->weight, records, rows_of(x), false, {l->bias}));
  return out;
}

ggml_tensor* linear_from_image(ggml_context* ctx, ggml_tensor* image, const Linear& l) {
  if (!interleaved(l.layout)) return linear(ctx, image_to_sequence(ctx, image), l);
  ggml_tensor* records = q8_records_im2col(ctx, image, 1, 1, 0, 0, image->ne[1]);
  return q8_product(ctx, l.weight, records, {image->ne[0] * image->ne[1], image->ne[3], 1}, false, {l.bias});
}

ggml_tensor* linear_to_image(ggml_context* ctx, ggml_tensor* x, const Linear& l, int64_t w, int64_t h, ggml_tensor* residual) {
  if (!interleaved(l.layout)) return add_to(ctx, sequence_to_image(ctx, linear(ctx, x, l), w, h), nullptr, residual);
  return q8_product(ctx, l.weight, q8_records(ctx, x), {w, h, x->ne[2]}, true, {l.bias, nullptr, contiguous(ctx, residual)});
}

ggml_tensor* geglu_linear(ggml_context* ctx, ggml_tensor* proj, const Linear& l, ggml_tensor* residual, const Options& options) {
  if (!interleaved(l.layout)) return linear(ctx, geglu(ctx, proj, options), l, residual);
  return q8_product(ctx, l.weight, q8_records_geglu(ctx, proj), rows_of(proj), false, {l.bias, nullptr, contiguous(ctx, residual)});
}

ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, float eps) {
  return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), n.weight), n.bias);
}

ggml_tensor* group_norm(ggml_context* ctx, ggml_tensor* x, const Norm& n, int groups, float eps, bool silu, const Options& options) {
  if (options.cpu_fused) return cpu_group_norm(ctx, x, n.weight, n.bias, groups, eps, silu);
  const int64_t c = n.weight->ne[0];
  ggml_tensor* y = ggml_group_norm(ctx, x, groups, eps);
  y = ggml_mul(ctx, y, ggml_reshape_4d(ctx, n.weight, 1, 1, c, 1));
  y = ggml_add(ctx, y, ggml_reshape_4d(ctx, n.bias, 1, 1, c, 1));
  return silu ? ggml_silu(ctx, y) : y;
}

ggml_tensor* geglu(ggml_context* ctx, ggml_tensor* proj, const Options& options) {
  if (options.cpu_fused) return cpu_geglu(ctx, proj);
  const int64_t inner = proj->ne[0] / 2;
  ggml_tensor* value = ggml_view_3d(ctx, proj, inner, proj->ne[1], proj->ne[2], proj->nb[1], proj->nb[2], 0);
  ggml_tensor* gate = ggml_view_3d(ctx, proj, inner, proj->ne[1], proj->ne[2], proj->nb[1], proj->nb[2], inner * proj->nb[0]);
  return ggml_mul(ctx, ggml_cont(ctx, value), ggml_gelu_erf(ctx, ggml_cont(ctx, gate)));
}

namespace {

// A convolution's product [out, pixels] plus its bias, where it has one.
ggml_tensor* add_bias(ggml_context* ctx, ggml_tensor* y, const Conv2d& c) { return c.bias ? ggml_add(ctx, y, c.bias) : y; }

// im2col + one matrix product, for an input whose rows may be a slice of a larger image
// (im2col reads rows at the input's own channel stride). pad_y pads top and bottom.
ggml_tensor* conv2d_im2col(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, ggml_tensor* w2d, int stride, int pad_x, int pad_y) {
  const int64_t n = x->ne[3];
  // im2col only reads the kernel's shape; quantized kernels are stored flattened, so give it
  // a data-less tensor of the 4-D shape.
  ggml_tensor* shape = ggml_n_dims(c.weight) > 2 ? c.weight : ggml_new_tensor_4d(ctx, GGML_TYPE_F16, c.kernel, c.kernel, c.in, 1);
  ggml_tensor* cols = ggml_im2col(ctx, shape, x, stride, stride, pad_x, pad_y, 1, 1, true, GGML_TYPE_F32);
  const int64_t ow = cols->ne[1];
  const int64_t oh = cols->ne[2];
  cols = ggml_reshape_2d(ctx, cols, cols->ne[0], ow * oh * n);
  // ggml's tiled sgemm wants rows a multiple of 16 floats; a thin convolution's are not (conv_in:
  // 4 channels, 36 values), and one short f16 dot product per output costs 8x more than the
  // zero-padded f32 operands (zeros add nothing; the weight is tiny).
  const int64_t row_pad = (16 - cols->ne[0] % 16) % 16;
  if (row_pad > 0 && (w2d->type == GGML_TYPE_F16 || w2d->type == GGML_TYPE_F32)) {
    w2d = ggml_pad(ctx, w2d->type == GGML_TYPE_F32 ? w2d : ggml_cast(ctx, w2d, GGML_TYPE_F32), static_cast<int>(row_pad), 0, 0, 0);
    cols = ggml_pad(ctx, cols, static_cast<int>(row_pad), 0, 0, 0);
  }
  ggml_tensor* out = add_bias(ctx, matmul(ctx, w2d, c.layout, cols), c);  // [out, ow*oh*n]
  out = ggml_reshape_4d(ctx, out, c.out, ow, oh, n);
  return ggml_cont(ctx, ggml_permute(ctx, out, 2, 0, 1, 3));  // [ow, oh, out, n]
}

ggml_tensor* join_rows(ggml_context* ctx, std::vector<ggml_tensor*> parts);

// A stride-1 convolution with "same" padding, in bands of output rows.
ggml_tensor* conv2d_banded(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, ggml_tensor* w2d, int64_t im2col_bytes) {
  const int64_t h = x->ne[1];
  const int pad = (c.kernel - 1) / 2;
  const int64_t limit = std::max<int64_t>(1, direct_conv_bytes());
  const int64_t bands = (im2col_bytes + limit - 1) / limit;
  const int64_t rows = std::max<int64_t>(1, (h + bands - 1) / bands);
  std::vector<ggml_tensor*> parts;
  for (int64_t y0 = 0; y0 < h; y0 += rows) {
    const int64_t y1 = std::min(h, y0 + rows);
    // Input rows [y0 - pad, y1 + pad), zero rows where they fall outside the image.
    const int64_t a = std::max<int64_t>(0, y0 - pad);
    const int64_t b = std::min(h, y1 + pad);
    ggml_tensor* band = ggml_view_4d(ctx, x, x->ne[0], b - a, x->ne[2], x->ne[3], x->nb[1], x->nb[2], x->nb[3], a * x->nb[1]);
    const int top = static_cast<int>(pad - (y0 - a));
    const int bottom = static_cast<int>(pad - (b - y1));
    if (top > 0 || bottom > 0) band = ggml_pad_ext(ctx, band, 0, 0, top, bottom, 0, 0, 0, 0);
    parts.push_back(conv2d_im2col(ctx, band, c, w2d, 1, pad, 0));
  }
  return join_rows(ctx, std::move(parts));
}

// Concatenates [W, rows, C, N] parts along the rows, pairwise (each row is copied log2(parts) times).
ggml_tensor* join_rows(ggml_context* ctx, std::vector<ggml_tensor*> parts) {
  while (parts.size() > 1) {
    std::vector<ggml_tensor*> joined;
    for (size_t i = 0; i + 1 < parts.size(); i += 2) joined.push_back(ggml_concat(ctx, parts[i], parts[i + 1], 1));
    if (parts.size() % 2 == 1) joined.push_back(parts.back());
    parts.swap(joined);
  }
  return parts[0];
}

// ggml's convolution: im2col (in bands, or direct) and ggml_mul_mat, the product's rows turned
// back into an image.
ggml_tensor* conv2d_ggml(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding) {
  const int64_t n = x->ne[3];
  ggml_tensor* w2d = ggml_n_dims(c.weight) > 2 ? ggml_reshape_2d(ctx, c.weight, c.kernel * c.kernel * c.in, c.out) : c.weight;
  // The product comes out channels-first ([out, pixels]); the bias is added there, where it is
  // a contiguous row per pixel, before the transpose back to [W, H, C, N].
  if (c.kernel == 1 && stride == 1 && padding == 0) {
    ggml_tensor* out = add_bias(ctx, matmul(ctx, w2d, c.layout, image_to_sequence(ctx, x)), c);
    return sequence_to_image(ctx, out, x->ne[0], x->ne[1]);
  }
  // A large image would need a huge im2col matrix (9*C floats per pixel: 1.2 GB for a 128-channel
  // 512x512 VAE layer). Stride-1 "same" convolutions are computed in bands of output rows, each
  // with an im2col of bounded size (the allocator reuses one band's memory for the next);
  // others fall back to ggml's direct convolution (slower, f32/f16 kernels only).
  const int64_t im2col_bytes = static_cast<int64_t>(c.kernel) * c.kernel * c.in * x->ne[0] * x->ne[1] * n * 4 / (stride * stride);
  if (im2col_bytes > direct_conv_bytes()) {
    if (stride == 1 && 2 * padding == c.kernel - 1) return conv2d_banded(ctx, x, c, w2d, im2col_bytes);
    const bool direct_ok = ggml_n_dims(c.weight) > 2 && (c.weight->type == GGML_TYPE_F32 || c.weight->type == GGML_TYPE_F16);
    if (direct_ok) {
      ggml_tensor* out = ggml_conv_2d_direct(ctx, c.weight, x, stride, stride, padding, padding, 1, 1);
      return c.bias ? ggml_add(ctx, out, ggml_reshape_4d(ctx, c.bias, 1, 1, c.out, 1)) : out;
    }
  }
  return conv2d_im2col(ctx, x, c, w2d, stride, padding, padding);
}

// The int8 kernels' convolution: activation records made from the image's patches (no f32 im2col
// matrix: 4 bytes per value fewer to write and read), the product written as an image with all
// addends (no transposed copy, no separate adds). The records are made in bands of output rows
// where they would take more than the im2col limit.
ggml_tensor* conv2d_q8(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding, ggml_tensor* image_bias, ggml_tensor* residual) {
  const int64_t ow = (x->ne[0] + 2 * padding - c.kernel) / stride + 1;
  const int64_t oh = (x->ne[1] + 2 * padding - c.kernel) / stride + 1;
  const int64_t n = x->ne[3];
  const int64_t bytes = ow * oh * n * q8_activation_row_bytes(c.weight->ne[0]);
  const int64_t limit = std::max<int64_t>(1, direct_conv_bytes());
  const int64_t bands = std::min(oh, (bytes + limit - 1) / limit);
  const int64_t rows = (oh + bands - 1) / bands;
  std::vector<ggml_tensor*> parts;
  for (int64_t y0 = 0; y0 < oh; y0 += rows) {
    const int64_t y1 = std::min(oh, y0 + rows);
    ggml_tensor* records = q8_records_im2col(ctx, x, c.kernel, stride, padding, y0, y1);
    parts.push_back(q8_product(ctx, c.weight, records, {ow, y1 - y0, n}, true, {c.bias, image_bias, parts.empty() && y1 == oh ? residual : nullptr}));
  }
  if (parts.size() == 1) return parts[0];
  return add_to(ctx, join_rows(ctx, std::move(parts)), nullptr, residual);
}

}  // namespace

ggml_tensor* conv2d(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding, ggml_tensor* image_bias, ggml_tensor* residual) {
  if (interleaved(c.layout)) return conv2d_q8(ctx, x, c, stride, padding, image_bias, contiguous(ctx, residual));
  ggml_tensor* out = conv2d_ggml(ctx, x, c, stride, padding);
  if (image_bias != nullptr) out = ggml_add(ctx, out, ggml_reshape_4d(ctx, image_bias, 1, 1, image_bias->ne[0], image_bias->ne[1]));
  return add_to(ctx, out, nullptr, residual);
}

ggml_tensor* image_to_sequence(ggml_context* ctx, ggml_tensor* x) {
  ggml_tensor* seq = ggml_reshape_3d(ctx, x, x->ne[0] * x->ne[1], x->ne[2], x->ne[3]);
  return ggml_cont(ctx, ggml_transpose(ctx, seq));
}

ggml_tensor* sequence_to_image(ggml_context* ctx, ggml_tensor* x, int64_t w, int64_t h) {
  ggml_tensor* t = ggml_cont(ctx, ggml_transpose(ctx, x));  // [W*H, C, N]
  return ggml_reshape_4d(ctx, t, w, h, t->ne[1], t->ne[2]);
}

ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, bool causal,
                       const Options& options) {
  if (options.cpu_attention && !options.flash_attention && !causal) return cpu_attention(ctx, q, k, v, heads, scale, options.threads, options.cpu_attention_bf16);
  const int64_t c = q->ne[0];
  const int64_t d = c / heads;
  const int64_t lq = q->ne[1];
  const int64_t lk = k->ne[1];
  const int64_t n = q->ne[2];
  // [C, L, N] -> [d, L, heads, N]
  q = ggml_permute(ctx, ggml_reshape_4d(ctx, q, d, heads, lq, n), 0, 2, 1, 3);
  k = ggml_permute(ctx, ggml_reshape_4d(ctx, k, d, heads, lk, n), 0, 2, 1, 3);
  if (options.flash_attention && !causal) {
    v = ggml_permute(ctx, ggml_reshape_4d(ctx, v, d, heads, lk, n), 0, 2, 1, 3);
    ggml_tensor* out = ggml_flash_attn_ext(ctx, q, ggml_cast(ctx, k, GGML_TYPE_F16), ggml_cast(ctx, v, GGML_TYPE_F16), nullptr, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
    return ggml_reshape_3d(ctx, out, c, lq, n);  // result is [d, heads, Lq, N]
  }
  // Contiguous per-head operands whose rows are a multiple of 16 floats let ggml use its tiled
  // sgemm instead of one short dot product per score (SD v1's first level has 40-wide heads).
  // Zero padding leaves the dot products unchanged.
  const int64_t padded = (d + 15) / 16 * 16;
  auto operand = [&](ggml_tensor* t) { return padded == d ? ggml_cont(ctx, t) : ggml_pad(ctx, t, static_cast<int>(padded - d), 0, 0, 0); };
  ggml_tensor* kop = operand(k);
  ggml_tensor* qop = operand(q);
  // v^T per head: [Lk, d, heads, N]. Its rows are the inner dimension of the second product,
  // which ggml's tiled sgemm also wants a multiple of 16 long (the text's 77 tokens are not):
  // zero keys with zero weights after the softmax add nothing.
  const int lk_pad = static_cast<int>((lk + 15) / 16 * 16 - lk);
  ggml_tensor* vt = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, v, d, heads, lk, n), 1, 2, 0, 3));
  if (lk_pad > 0) vt = ggml_pad(ctx, vt, lk_pad, 0, 0, 0);

  // The score matrix of a 512x512 image's first level is 4096x4096 per head: computed in
  // blocks of query rows, it never needs more than kMaxScoreFloats at a time (the allocator
  // reuses one block's memory for the next).
  const int64_t rows_per_block = std::max<int64_t>(1, kMaxScoreFloats / (lk * heads * n));
  std::vector<ggml_tensor*> parts;
  for (int64_t q0 = 0; q0 < lq; q0 += rows_per_block) {
    const int64_t rows = std::min(rows_per_block, lq - q0);
    ggml_tensor* qb = rows == lq ? qop : ggml_cont(ctx, ggml_view_4d(ctx, qop, padded, rows, heads, n, qop->nb[1], qop->nb[2], qop->nb[3], q0 * qop->nb[1]));
    // ggml's tiled sgemm needs the first operand's row count in fours; the text's 77 keys are
    // not, so their scores come out transposed (queries first) and are turned around (cheap: the
    // text is short), instead of one short dot product per score.
    ggml_tensor* scores = lk % 4 == 0 ? ggml_mul_mat(ctx, kop, qb) : ggml_cont(ctx, ggml_transpose(ctx, ggml_mul_mat(ctx, qb, kop)));  // [Lk, rows, heads, N]
    if (causal) {
      scores = ggml_diag_mask_inf(ctx, ggml_scale(ctx, scores, scale), static_cast<int>(q0));
      scores = ggml_soft_max(ctx, scores);
    } else {
      scores = ggml_soft_max_ext(ctx, scores, nullptr, scale, 0.0f);
    }
    if (lk_pad > 0) scores = ggml_pad(ctx, scores, lk_pad, 0, 0, 0);
    ggml_tensor* out = ggml_mul_mat(ctx, vt, scores);                  // [d, rows, heads, N]
    parts.push_back(ggml_cont(ctx, ggml_permute(ctx, out, 0, 2, 1, 3)));  // [d, heads, rows, N]
  }
  // Join the blocks pairwise (a balanced tree copies each row log2(blocks) times, not blocks/2).
  while (parts.size() > 1) {
    std::vector<ggml_tensor*> joined;
    for (size_t i = 0; i + 1 < parts.size(); i += 2) joined.push_back(ggml_concat(ctx, parts[i], parts[i + 1], 2));
    if (parts.size() % 2 == 1) joined.push_back(parts.back());
    parts.swap(joined);
  }
  return ggml_reshape_3d(ctx, parts[0], c, lq, n);
}

}  // namespace jsd::nn
