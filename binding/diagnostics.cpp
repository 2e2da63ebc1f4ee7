// Development diagnostics, under the addon's `diagnostics` object and nowhere else: the matrix
// product benchmark (scripts/bench.mjs) and the kernel checks the tests run against ggml's own
// ops. They block the calling thread, which is why no user-facing call goes through them.
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "kernels/q8_gemm.h"
#include "tools/attention_check.h"
#include "tools/matmul_bench.h"

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

// compareAttention(heads, headDim, lq, lk, batch, threads) -> { fused, kernel, maxAbsDiff, maxAbs }:
// the fused CPU attention (kernel: "avx512", "avx2", "" when none runs) against ggml's ops on
// random data. Blocks the calling thread: for tests only.
Napi::Value CompareAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 6, "compareAttention(heads, headDim, lq, lk, batch, threads)");
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::AttentionCheck r = jsd::compare_attention(static_cast<int>(v[0]), v[1], v[2], v[3], v[4], static_cast<int>(v[5]));
    Napi::Object out = CheckResult(env, "fused", r.fused, r.max_abs_diff, r.max_abs);
    out.Set("kernel", r.kernel);
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
  diagnostics.Set("benchAttention", Napi::Function::New(env, BenchAttention, "benchAttention"));
  diagnostics.Set("q8Kernels", Napi::Function::New(env, Q8Kernels, "q8Kernels"));
  exports.Set("diagnostics", diagnostics);
}

}  // namespace jsd_binding
