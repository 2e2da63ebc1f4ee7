// Development diagnostics, under the addon's `diagnostics` object and nowhere else: the matrix
// product benchmark (scripts/bench.mjs) and the kernel checks the tests run against ggml's own
// ops. They block the calling thread, which is why no user-facing call goes through them.
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "kernels/q8_gemm.h"
#include "tools/attention_check.h"
#include "tools/conv_check.h"
#include "tools/matmul_bench.h"
#include "tools/unet_ops_check.h"

namespace jsd_binding {

namespace {

// Arguments [first, first + count) as integers; a TypeError quoting `usage` otherwise. With
// first = 1, argument 0 must be a type name.
std::vector<int64_t> IntegerArgs(const Napi::CallbackInfo& info, size_t first, size_t count, const char* usage) {
  Napi::Env env = info.Env();
  if (info.Length() < first + count || (first == 1 && !info[0].IsString())) throw ArgumentTypeError(env, std::string("expected ") + usage);
  std::vector<int64_t> v(count);
  for (size_t i = 0; i < count; ++i) {
    if (!info[first + i].IsNumber()) throw ArgumentTypeError(env, std::string("expected ") + usage);
    v[i] = info[first + i].As<Napi::Number>().Int64Value();
  }
  return v;
}

// { maxAbsDiff, maxAbs } of a kernel check, plus one field naming what ran.
template <typename Value>
Napi::Object CheckResult(Napi::Env env, const char* key, Value what, double max_abs_diff, double max_abs) {
  Napi::Object out = Napi::Object::New(env);
  out.Set(key, what);
  out.Set("maxAbsDiff", max_abs_diff);
  out.Set("maxAbs", max_abs);
  return out;
}

// benchMatmul(type, m, n, k, threads, runs, repack?) -> { secondsPerRun, cpuSecondsPerRun, flops,
// kernel }. Blocks the calling thread: for benchmarks only.
Napi::Value BenchMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 1, 5, "benchMatmul(type, m, n, k, threads, runs, repack?)");
  const std::string type = info[0].As<Napi::String>().Utf8Value();
  return Guarded(env, [&]() -> Napi::Value {
    const bool repack = info.Length() > 6 && info[6].ToBoolean().Value();
    const jsd::MatmulBenchResult r = jsd::bench_matmul(type, v[0], v[1], v[2], static_cast<int>(v[3]), static_cast<int>(v[4]), repack);
    Napi::Object out = Napi::Object::New(env);
    out.Set("secondsPerRun", r.seconds_per_run);
    out.Set("cpuSecondsPerRun", r.cpu_seconds_per_run);
    out.Set("flops", r.flops);
    out.Set("kernel", r.kernel);
    return out;
  });
}

// compareMatmul(type, m, n, k, threads) -> { kernel, maxAbsDiff, maxAbs, checksum }: the engine's
// matrix product against ggml's plain one on random data (checksum: a hash of the engine's bits). Blocks the calling thread: for tests only.
Napi::Value CompareMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 1, 4, "compareMatmul(type, m, n, k, threads)");
  const std::string type = info[0].As<Napi::String>().Utf8Value();
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::MatmulCompareResult r = jsd::compare_matmul(type, v[0], v[1], v[2], static_cast<int>(v[3]));
    Napi::Object out = CheckResult(env, "kernel", r.kernel, r.max_abs_diff, r.max_abs);
    out.Set("checksum", r.checksum);
    return out;
  });
}

// compareAttention(heads, headDim, lq, lk, batch, threads, bf16?) -> { fused, kernel, maxAbsDiff,
// maxAbs }: the fused CPU attention (kernel: "avx512", "avx2", "amx-bf16", "" when none runs) of an
// op that may round to bf16 where bf16 is true (as a quantized UNet's), against ggml's ops on
// random data. Blocks the calling thread: for tests only.
Napi::Value CompareAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 6, "compareAttention(heads, headDim, lq, lk, batch, threads, bf16?)");
  const bool bf16 = info.Length() > 6 && info[6].ToBoolean().Value();
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::AttentionCheck r = jsd::compare_attention(static_cast<int>(v[0]), v[1], v[2], v[3], v[4], static_cast<int>(v[5]), bf16);
    Napi::Object out = CheckResult(env, "fused", r.fused, r.max_abs_diff, r.max_abs);
    out.Set("kernel", r.kernel);
    return out;
  });
}

// compareConv({ type, in, out, width, height, batch, kernel, stride, pad, padAfter, upsample,
// residual }, threads) -> { kernel, maxAbsDiff, maxAbs }: the channels-last convolution against
// ggml's on random data. Blocks the calling thread: for tests only.
Napi::Value CompareConv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "compareConv({ type, in, out, width, height, batch, kernel, stride, pad, padAfter, upsample, residual }, threads)";
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsNumber()) throw ArgumentTypeError(env, std::string("expected ") + usage);
  const Napi::Object o = info[0].As<Napi::Object>();
  auto integer = [&](const char* key) {
    if (!o.Get(key).IsNumber()) throw ArgumentTypeError(env, std::string("expected ") + usage);
    return o.Get(key).As<Napi::Number>().Int64Value();
  };
  if (!o.Get("type").IsString()) throw ArgumentTypeError(env, std::string("expected ") + usage);
  jsd::ConvCheckShape s;
  s.type = o.Get("type").As<Napi::String>().Utf8Value();
  s.in = integer("in");
  s.out = integer("out");
  s.width = integer("width");
  s.height = integer("height");
  s.batch = integer("batch");
  s.kernel = static_cast<int>(integer("kernel"));
  s.stride = static_cast<int>(integer("stride"));
  s.pad = static_cast<int>(integer("pad"));
  s.pad_after = static_cast<int>(integer("padAfter"));
  s.upsample = o.Get("upsample").ToBoolean().Value();
  s.residual = o.Get("residual").ToBoolean().Value();
  const int threads = static_cast<int>(info[1].As<Napi::Number>().Int64Value());
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::ImageOpCheck r = jsd::compare_conv(s, threads);
    return CheckResult(env, "kernel", r.kernel, r.max_abs_diff, r.max_abs);
  });
}

// compareGroupNorm(channels, width, height, batch, groups, mean, threads) -> { kernel, maxAbsDiff,
// maxAbs }: the channels-last group norm against ggml's on random data around mean. Blocks the
// calling thread: for tests only.
Napi::Value CompareGroupNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 5, "compareGroupNorm(channels, width, height, batch, groups, mean, threads)");
  if (info.Length() < 7 || !info[5].IsNumber() || !info[6].IsNumber()) {
    throw ArgumentTypeError(env, "expected compareGroupNorm(channels, width, height, batch, groups, mean, threads)");
  }
  const float mean = info[5].As<Napi::Number>().FloatValue();
  const int threads = static_cast<int>(info[6].As<Napi::Number>().Int64Value());
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::ImageOpCheck r = jsd::compare_group_norm(v[0], v[1], v[2], v[3], static_cast<int>(v[4]), mean, threads);
    return CheckResult(env, "kernel", r.kernel, r.max_abs_diff, r.max_abs);
  });
}

// checkUnetOps(threads) -> [{ name, exact, maxAbsDiff, maxAbs }]: the UNet's fused CPU ops
// (GEGLU, group norm, the int8 products' records and addends) against the ggml ops they replace,
// on random data; exact: expected to give the same bits. Blocks the calling thread: for tests only.
Napi::Value CheckUnetOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 1, "checkUnetOps(threads)");
  return Guarded(env, [&]() -> Napi::Value {
    const std::vector<jsd::OpCheck> checks = jsd::check_unet_ops(static_cast<int>(v[0]));
    Napi::Array out = Napi::Array::New(env, checks.size());
    for (size_t i = 0; i < checks.size(); ++i) {
      Napi::Object o = CheckResult(env, "name", checks[i].name, checks[i].max_abs_diff, checks[i].max_abs);
      o.Set("exact", checks[i].exact);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
}

// benchAttention(heads, headDim, lq, lk, batch, threads, runs) -> { kernel, cpuSecondsPerRun, flops }:
// the engine's CPU attention on random data (scripts/bench/attention.mjs). Blocks the calling
// thread: for benchmarks only.
Napi::Value BenchAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 7, "benchAttention(heads, headDim, lq, lk, batch, threads, runs)");
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::AttentionBench r =
        jsd::bench_attention(static_cast<int>(v[0]), v[1], v[2], v[3], v[4], static_cast<int>(v[5]), static_cast<int>(v[6]));
    Napi::Object out = Napi::Object::New(env);
    out.Set("kernel", r.kernel);
    out.Set("cpuSecondsPerRun", r.cpu_seconds_per_run);
    out.Set("flops", r.flops);
    return out;
  });
}

// q8Kernels() -> string[]: the q8_0 kernels (native/kernels/q8_gemm.h) this build and this CPU can
// run, best first: the names JSD_Q8_KERNEL may force, whatever this process uses.
Napi::Value Q8Kernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<std::string> names = jsd::q8_gemm_kernel_names();
  Napi::Array out = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

}  // namespace

void InitDiagnostics(Napi::Env env, Napi::Object exports) {
  Napi::Object diagnostics = Napi::Object::New(env);
  diagnostics.Set("benchMatmul", Napi::Function::New(env, BenchMatmul, "benchMatmul"));
  diagnostics.Set("compareMatmul", Napi::Function::New(env, CompareMatmul, "compareMatmul"));
  diagnostics.Set("compareAttention", Napi::Function::New(env, CompareAttention, "compareAttention"));
  diagnostics.Set("compareConv", Napi::Function::New(env, CompareConv, "compareConv"));
  diagnostics.Set("compareGroupNorm", Napi::Function::New(env, CompareGroupNorm, "compareGroupNorm"));
  diagnostics.Set("benchAttention", Napi::Function::New(env, BenchAttention, "benchAttention"));
  diagnostics.Set("q8Kernels", Napi::Function::New(env, Q8Kernels, "q8Kernels"));
  diagnostics.Set("checkUnetOps", Napi::Function::New(env, CheckUnetOps, "checkUnetOps"));
  exports.Set("diagnostics", diagnostics);
}

}  // namespace jsd_binding
