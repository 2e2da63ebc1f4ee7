#include "tools/conv_check.h"

#include "kernels/cpu_conv.h"
#include "networks/image_ops.h"
#include "runtime/error.h"
#include "tools/cpu_graph.h"

namespace jsd {

namespace {

ggml_type weight_type(const std::string& name) {
  if (name == "f32") return GGML_TYPE_F32;
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "bf16") return GGML_TYPE_BF16;
  throw Error(ErrorCode::InvalidArgument, "compareConv: the weight type must be f32, f16 or bf16");
}

ImageOpCheck result(const CpuGraph& graph, ggml_tensor* channels_last, ggml_tensor* reference) {
  const Difference d = difference(graph.read(channels_last), graph.read(reference));
  ImageOpCheck r;
  r.kernel = cpu_conv_kernel_name();
  r.max_abs_diff = d.max_abs_diff;
  r.max_abs = d.max_abs;
  return r;
}

bool within(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

}  // namespace

ImageOpCheck compare_conv(const ConvCheckShape& s, int threads) {
  const ggml_type type = weight_type(s.type);
  const int64_t up = s.upsample ? 2 : 1;
  const int64_t out_w = (s.width * up + s.pad + s.pad_after - s.kernel) / s.stride + 1;
  const int64_t out_h = (s.height * up + s.pad + s.pad_after - s.kernel) / s.stride + 1;
  const bool sizes = within(s.in, 1, 1024) && within(s.out, 1, 1024) && within(s.width, 1, 512) && within(s.height, 1, 512) &&
                     within(s.batch, 1, 4) && within(s.kernel, 1, 3) && within(s.stride, 1, 2) && within(s.pad, 0, 1) &&
                     within(s.pad_after, 0, 1) && within(threads, 1, 512) && out_w >= 1 && out_h >= 1 &&
                     s.in * s.width * s.height * s.batch * up * up * (s.kernel * s.kernel + 1) <= (int64_t{1} << 26) &&
                     s.out * out_w * out_h * s.batch <= (int64_t{1} << 24);
  if (!sizes) throw Error(ErrorCode::InvalidArgument, "compareConv: sizes out of range");
  if (!cpu_conv_available()) throw Error(ErrorCode::InvalidArgument, "compareConv: this CPU has no channels-last convolution kernel");
  CpuGraph graph(256, threads);
  ggml_context* ctx = graph.ctx();
  ggml_tensor* x = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, s.width, s.height, s.in, s.batch);
  ggml_tensor* w32 = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, s.kernel, s.kernel, s.in, s.out);
  ggml_tensor* bias = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, s.out);
  ggml_tensor* residual = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, out_w, out_h, s.out, s.batch);
  for (ggml_tensor* t : {x, w32, bias, residual}) ggml_set_input(t);
  Conv2d typed{type == GGML_TYPE_F32 ? w32 : ggml_cast(ctx, w32, type), bias, s.kernel, static_cast<int>(s.in), static_cast<int>(s.out)};
  Conv2d exact = typed;
  if (type != GGML_TYPE_F32) exact.weight = ggml_cast(ctx, typed.weight, GGML_TYPE_F32);
  const ConvGeometry g{s.stride, s.pad, s.pad_after, s.upsample};
  const nn::ImageOps cl(true, threads);
  const nn::ImageOps planar(false, threads);
  ggml_tensor* a = cl.output(ctx, cl.conv(ctx, cl.input(ctx, x), typed, g, s.residual ? cl.input(ctx, residual) : nullptr));
  ggml_tensor* b = planar.conv(ctx, x, exact, g, s.residual ? residual : nullptr);
  graph.build({a, b});
  graph.write(x, normal_values(ggml_nelements(x), 21, 1.0f));
  graph.write(w32, normal_values(ggml_nelements(w32), 22, 0.1f));
  graph.write(bias, normal_values(ggml_nelements(bias), 23, 1.0f));
  if (s.residual) graph.write(residual, normal_values(ggml_nelements(residual), 24, 1.0f));
  graph.compute();
  return result(graph, a, b);
}

ImageOpCheck compare_group_norm(int64_t channels, int64_t width, int64_t height, int64_t batch, int groups, float mean, int threads) {
  const bool sizes = within(groups, 1, 1024) && within(channels, groups, 4096) && channels % groups == 0 && within(width, 1, 1024) &&
                     within(height, 1, 1024) && within(batch, 1, 4) && within(threads, 1, 512) &&
                     channels * width * height * batch <= (int64_t{1} << 26);
  if (!sizes) throw Error(ErrorCode::InvalidArgument, "compareGroupNorm: sizes out of range");
  CpuGraph graph(64, threads);
  ggml_context* ctx = graph.ctx();
  ggml_tensor* x = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, width, height, channels, batch);
  Norm n{ggml_new_tensor_1d(ctx, GGML_TYPE_F32, channels), ggml_new_tensor_1d(ctx, GGML_TYPE_F32, channels)};
  for (ggml_tensor* t : {x, n.weight, n.bias}) ggml_set_input(t);
  const nn::ImageOps cl(true, threads);
  const nn::ImageOps planar(false, threads);
  constexpr float kEps = 1e-6f;
  ggml_tensor* a = cl.output(ctx, cl.group_norm(ctx, cl.input(ctx, x), n, groups, kEps));
  ggml_tensor* b = planar.group_norm(ctx, x, n, groups, kEps);
  graph.build({a, b});
  std::vector<float> values = normal_values(ggml_nelements(x), 31, 1.0f);
  for (float& v : values) v += mean;
  graph.write(x, values);
  graph.write(n.weight, normal_values(channels, 32, 1.0f));
  graph.write(n.bias, normal_values(channels, 33, 1.0f));
  graph.compute();
  return result(graph, a, b);
}

}  // namespace jsd
