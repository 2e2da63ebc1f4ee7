#include "tools/unet_ops_check.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <utility>

#include "ggml-backend.h"
#include "ggml.h"
#include "kernels/cpu_activations.h"
#include "kernels/q8_gemm.h"
#include "kernels/q8_records.h"
#include "model/quantize.h"
#include "networks/nn.h"
#include "runtime/error.h"
#include "tools/cpu_graph.h"

namespace jsd {

namespace {

// Interleaved q8_0 matrices [k, n] of random values, in a CPU buffer of their own (as the engine
// stores them for q8_gemm.h's kernels).
class Matrices {
 public:
  Matrices() : ctx_(ggml_init(ggml_init_params{ggml_tensor_overhead() * 16, nullptr, true})) {
    if (ctx_ == nullptr) throw Error(ErrorCode::OutOfMemory, "checkUnetOps: cannot set up ggml");
  }
  ~Matrices() {
    if (buffer_ != nullptr) ggml_backend_buffer_free(buffer_);
    ggml_free(ctx_);
  }
  Matrices(const Matrices&) = delete;
  Matrices& operator=(const Matrices&) = delete;

  ggml_tensor* add(int64_t k, int64_t n) { return ggml_new_tensor_2d(ctx_, GGML_TYPE_Q8_0, k, n); }
  void load() {
    buffer_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, ggml_backend_cpu_buffer_type());
    if (buffer_ == nullptr) throw Error(ErrorCode::OutOfMemory, "checkUnetOps: cannot allocate the weights");
    unsigned seed = 100;
    for (ggml_tensor* t = ggml_get_first_tensor(ctx_); t != nullptr; t = ggml_get_next_tensor(ctx_, t)) {
      const std::vector<float> w = normal_values(ggml_nelements(t), seed++, 0.05f);
      q8_interleave(convert_rows(w.data(), w.size(), t->ne[0], type_traits("q8_0")).data(), t->data, t->ne[1], t->ne[0]);
    }
  }

 private:
  ggml_context* ctx_;
  ggml_backend_buffer_t buffer_ = nullptr;
};

// A graph's random f32 inputs.
class Inputs {
 public:
  explicit Inputs(ggml_context* ctx) : ctx_(ctx) {}
  ggml_tensor* add(int64_t a, int64_t b = 1, int64_t c = 1, int64_t d = 1) {
    ggml_tensor* t = ggml_new_tensor_4d(ctx_, GGML_TYPE_F32, a, b, c, d);
    ggml_set_input(t);
    list_.push_back(t);
    return t;
  }
  void write(const CpuGraph& graph) const {
    unsigned seed = 1;
    for (ggml_tensor* t : list_) graph.write(t, normal_values(ggml_nelements(t), seed++, 1.5f));
  }

 private:
  ggml_context* ctx_;
  std::vector<ggml_tensor*> list_;
};

std::vector<float> read_any(const ggml_tensor* t) {
  if (t->type == GGML_TYPE_F32) {
    std::vector<float> out(static_cast<size_t>(ggml_nelements(t)));
    ggml_backend_tensor_get(t, out.data(), 0, out.size() * sizeof(float));
    return out;
  }
  std::vector<int8_t> bytes(ggml_nbytes(t));  // activation records: compared byte by byte
  ggml_backend_tensor_get(t, bytes.data(), 0, bytes.size());
  return std::vector<float>(bytes.begin(), bytes.end());
}

// The fused op's output and the replaced ops' output of one graph.
using Build = std::function<std::pair<ggml_tensor*, ggml_tensor*>(ggml_context*, Inputs&)>;

OpCheck compare(const std::string& name, bool exact, int threads, const Build& build) {
  CpuGraph graph(1024, threads);
  Inputs inputs(graph.ctx());
  const auto [fused, plain] = build(graph.ctx(), inputs);
  graph.build({fused, plain});
  inputs.write(graph);
  graph.compute();
  const Difference d = difference(read_any(fused), read_any(plain));
  return OpCheck{name, exact, d.max_abs_diff, d.max_abs};
}

// The old convolution graph on an interleaved weight: im2col, q8_mul_mat, then ggml's adds and
// the transpose back to an image.
ggml_tensor* conv_plain(ggml_context* ctx, ggml_tensor* x, const Conv2d& c, int stride, int padding, ggml_tensor* image_bias, ggml_tensor* residual) {
  ggml_tensor* shape = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, c.kernel, c.kernel, c.in, 1);
  ggml_tensor* cols = ggml_im2col(ctx, shape, x, stride, stride, padding, padding, 1, 1, true, GGML_TYPE_F32);
  const int64_t ow = cols->ne[1];
  const int64_t oh = cols->ne[2];
  ggml_tensor* y = ggml_add(ctx, q8_mul_mat(ctx, c.weight, ggml_reshape_2d(ctx, cols, cols->ne[0], ow * oh * x->ne[3])), c.bias);
  y = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, y, c.out, ow, oh, x->ne[3]), 2, 0, 1, 3));
  if (image_bias != nullptr) y = ggml_add(ctx, y, ggml_reshape_4d(ctx, image_bias, 1, 1, c.out, x->ne[3]));
  return residual != nullptr ? ggml_add(ctx, y, residual) : y;
}

// gelu_row against x Phi(x) in double over [-12, 12], the error divided by max(|x|, 1): for
// |x| >= 1 the error of Phi(x) = (1 + erf(x / sqrt 2)) / 2 itself.
OpCheck check_gelu() {
  const int n = 240001;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = -12.0f + 24.0f * static_cast<float>(i) / (n - 1);
  gelu_row(x.data(), y.data(), n);
  OpCheck c{"gelu", false, 0, 0};
  for (int i = 0; i < n; ++i) {
    const double exact = 0.5 * x[i] * std::erfc(-static_cast<double>(x[i]) / std::sqrt(2.0));
    c.max_abs_diff = std::max(c.max_abs_diff, std::fabs(y[i] - exact) / std::max(std::fabs(static_cast<double>(x[i])), 1.0));
    c.max_abs = std::max(c.max_abs, std::fabs(exact));
  }
  return c;
}

}  // namespace

std::vector<OpCheck> check_unet_ops(int threads) {
  if (threads < 1 || threads > 512) throw Error(ErrorCode::InvalidArgument, "checkUnetOps: threads out of range");
  nn::Options fused;
  fused.cpu_fused = true;
  const nn::Options plain;
  std::vector<OpCheck> out{check_gelu()};
  out.push_back(compare("geglu", false, threads, [&](ggml_context* ctx, Inputs& in) {
    ggml_tensor* proj = in.add(2 * 200, 37, 2);
    return std::make_pair(nn::geglu(ctx, proj, fused), nn::geglu(ctx, proj, plain));
  }));
  for (const bool silu : {false, true}) {
    out.push_back(compare(silu ? "group_norm_silu" : "group_norm", false, threads, [&](ggml_context* ctx, Inputs& in) {
      ggml_tensor* x = in.add(13, 7, 64, 2);
      const Norm n{in.add(64), in.add(64)};
      return std::make_pair(nn::group_norm(ctx, x, n, 32, 1e-5f, silu, fused), nn::group_norm(ctx, x, n, 32, 1e-5f, silu, plain));
    }));
  }
  if (!q8_gemm_available()) return out;

  Matrices m;
  // Convolutions [k, stride, padding, in, out] on a 13 x 9 image: "same" 3x3, strided, 1x1.
  const int convs[][5] = {{3, 1, 1, 64, 32}, {3, 2, 1, 32, 48}, {1, 1, 0, 96, 32}};
  std::vector<Conv2d> conv_layers;
  for (const auto& c : convs) conv_layers.push_back(Conv2d{m.add(int64_t{c[0]} * c[0] * c[3], c[4]), nullptr, c[0], c[3], c[4], WeightLayout::Q8Interleaved});
  const Linear linear{m.add(96, 64), nullptr, WeightLayout::Q8Interleaved};
  const Linear wide{m.add(128, 64), nullptr, WeightLayout::Q8Interleaved};
  m.load();

  for (size_t i = 0; i < conv_layers.size(); ++i) {
    const int stride = convs[i][1];
    const int padding = convs[i][2];
    out.push_back(compare("conv" + std::to_string(convs[i][0]) + "_s" + std::to_string(stride), true, threads, [&](ggml_context* ctx, Inputs& in) {
      Conv2d c = conv_layers[i];
      c.bias = in.add(c.out);
      ggml_tensor* x = in.add(13, 9, c.in, 2);
      const int64_t ow = (13 + 2 * padding - c.kernel) / stride + 1;
      const int64_t oh = (9 + 2 * padding - c.kernel) / stride + 1;
      ggml_tensor* image_bias = in.add(c.out, 2);
      ggml_tensor* residual = in.add(ow, oh, c.out, 2);
      return std::make_pair(nn::conv2d(ctx, x, c, stride, padding, image_bias, residual), conv_plain(ctx, x, c, stride, padding, image_bias, residual));
    }));
  }
  // Patches of a band of output rows, from an image wide enough (and with enough channels) that
  // the op gathers it in several blocks of pixels per row, inner ones read in place.
  // [kernel, stride, padding, first output row, end]
  const int bands[][5] = {{3, 1, 1, 3, 8}, {3, 2, 1, 0, 20}, {1, 1, 0, 5, 6}};
  for (const auto& band : bands) {
    const int k = band[0], stride = band[1], padding = band[2], y0 = band[3], y1 = band[4];
    out.push_back(compare("records_im2col_k" + std::to_string(k) + "_s" + std::to_string(stride), true, threads, [&](ggml_context* ctx, Inputs& in) {
      ggml_tensor* x = in.add(40, 40, 1024, 2);
      ggml_tensor* shape = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, k, k, 1024, 1);
      ggml_tensor* cols = ggml_im2col(ctx, shape, x, stride, stride, padding, padding, 1, 1, true, GGML_TYPE_F32);
      cols = ggml_view_4d(ctx, cols, cols->ne[0], cols->ne[1], y1 - y0, cols->ne[3], cols->nb[1], cols->nb[2], cols->nb[3], y0 * cols->nb[2]);
      return std::make_pair(q8_records_im2col(ctx, x, k, stride, padding, y0, y1), q8_records(ctx, cols));
    }));
  }
  out.push_back(compare("linear", true, threads, [&](ggml_context* ctx, Inputs& in) {
    Linear l = linear;
    l.bias = in.add(64);
    ggml_tensor* x = in.add(96, 29, 2);
    ggml_tensor* residual = in.add(64, 29, 2);
    return std::make_pair(nn::linear(ctx, x, l, residual), ggml_add(ctx, ggml_add(ctx, q8_mul_mat(ctx, l.weight, x), l.bias), residual));
  }));
  out.push_back(compare("linear_from_image", true, threads, [&](ggml_context* ctx, Inputs& in) {
    Linear l = linear;
    l.bias = in.add(64);
    ggml_tensor* image = in.add(11, 5, 96, 2);
    return std::make_pair(nn::linear_from_image(ctx, image, l), ggml_add(ctx, q8_mul_mat(ctx, l.weight, nn::image_to_sequence(ctx, image)), l.bias));
  }));
  out.push_back(compare("linear_to_image", true, threads, [&](ggml_context* ctx, Inputs& in) {
    Linear l = linear;
    l.bias = in.add(64);
    ggml_tensor* x = in.add(96, 55, 2);
    ggml_tensor* residual = in.add(11, 5, 64, 2);
    ggml_tensor* y = nn::sequence_to_image(ctx, ggml_add(ctx, q8_mul_mat(ctx, l.weight, x), l.bias), 11, 5);
    return std::make_pair(nn::linear_to_image(ctx, x, l, 11, 5, residual), ggml_add(ctx, y, residual));
  }));
  out.push_back(compare("geglu_linear", true, threads, [&](ggml_context* ctx, Inputs& in) {
    Linear l = wide;
    l.bias = in.add(64);
    ggml_tensor* proj = in.add(256, 23, 2);
    ggml_tensor* residual = in.add(64, 23, 2);
    ggml_tensor* y = ggml_add(ctx, ggml_add(ctx, q8_mul_mat(ctx, l.weight, nn::geglu(ctx, proj, fused)), l.bias), residual);
    return std::make_pair(nn::geglu_linear(ctx, proj, l, residual, fused), y);
  }));
  // Not exact: the norm's statistics are summed in another order than ggml's, and a last-bit
  // change of a value may move its int8 rounding.
  out.push_back(compare("norm_linears", false, threads, [&](ggml_context* ctx, Inputs& in) {
    Linear l = wide;
    l.bias = in.add(64);
    const Norm n{in.add(128), in.add(128)};
    ggml_tensor* x = in.add(128, 31, 2);
    ggml_tensor* y = ggml_add(ctx, q8_mul_mat(ctx, l.weight, nn::layer_norm(ctx, x, n, 1e-5f)), l.bias);
    return std::make_pair(nn::norm_linears(ctx, x, n, 1e-5f, {&l})[0], y);
  }));
  return out;
}

}  // namespace jsd
