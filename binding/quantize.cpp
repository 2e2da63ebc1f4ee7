// Tensor conversion for the converter (float32 -> f16/bf16/quantized), run off the JS thread.
#include <memory>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "ggml.h"
#include "attention_check.h"
#include "matmul_bench.h"
#include "q8_gemm.h"
#include "quantize.h"

namespace jsd_binding {

namespace {

class ConvertWorker : public Napi::AsyncWorker {
 public:
  ConvertWorker(Napi::Env env, Napi::Float32Array src, int64_t row_size, jsd::TypeTraits type, bool interleave)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), src_ref_(Napi::Persistent(src)),
        src_(src.Data()), n_(src.ElementLength()), row_size_(row_size), type_(std::move(type)), interleave_(interleave) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      out_ = jsd::convert_rows(src_, n_, row_size_, type_);
      if (interleave_) {
        const int64_t rows = static_cast<int64_t>(n_) / row_size_;
        if (type_.ggml_type != GGML_TYPE_Q8_0 || rows % 16 != 0 || row_size_ % 32 != 0) {
          throw jsd::Error(jsd::ErrorCode::InvalidArgument, "convertTensor: only q8_0 rows in groups of 16 can be interleaved");
        }
        std::vector<uint8_t> plain = std::move(out_);
        out_.resize(plain.size());
        jsd::q8_interleave(plain.data(), out_.data(), rows, row_size_);
      }
    } catch (const jsd::Error& e) {
      code_ = jsd::error_code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "JSD_OOM";
      SetError("out of memory while converting a tensor");
    } catch (const std::exception& e) {
      code_ = "JSD_INTERNAL";
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto* bytes = new std::vector<uint8_t>(std::move(out_));
    Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(
        env, bytes->data(), bytes->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* owned) { delete owned; }, bytes);
    deferred_.Resolve(buffer);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(MakeError(Env(), code_, error.Message()).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> src_ref_;  // keeps the input alive while the worker reads it
  const float* src_;
  size_t n_;
  int64_t row_size_;
  jsd::TypeTraits type_;
  bool interleave_;
  std::vector<uint8_t> out_;
  const char* code_ = "JSD_INTERNAL";
};

Napi::Object TraitsToObject(Napi::Env env, const jsd::TypeTraits& t) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", t.name);
  out.Set("ggmlType", t.ggml_type);
  out.Set("blockSize", Napi::Number::New(env, static_cast<double>(t.block_size)));
  out.Set("typeSize", Napi::Number::New(env, static_cast<double>(t.type_size)));
  out.Set("quantized", t.quantized);
  return out;
}

// typeTraits(name) -> { name, ggmlType, blockSize, typeSize, quantized }
Napi::Value TypeTraits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "typeTraits expects a type name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  return Guarded(env, [&]() -> Napi::Value { return TraitsToObject(env, jsd::type_traits(name)); });
}

// convertTensor(values: Float32Array, rowSize: number, type: string, interleave?: boolean) -> Promise<Buffer>
// interleave: q8_0 rows in the CPU kernel's layout (native/q8_gemm.h), 16 rows at a time.
Napi::Value ConvertTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      !info[1].IsNumber() || !info[2].IsString()) {
    throw Napi::TypeError::New(env, "convertTensor expects (Float32Array, rowSize, typeName)");
  }
  const double row_size = info[1].As<Napi::Number>().DoubleValue();
  if (!(row_size >= 1 && row_size <= 1e12) || row_size != static_cast<double>(static_cast<int64_t>(row_size))) {
    throw Napi::RangeError::New(env, "rowSize must be a positive integer");
  }
  const std::string name = info[2].As<Napi::String>().Utf8Value();
  jsd::TypeTraits type = Guarded(env, [&]() { return jsd::type_traits(name); });
  const bool interleave = info.Length() > 3 && info[3].ToBoolean().Value();
  auto* worker = new ConvertWorker(env, info[0].As<Napi::Float32Array>(), static_cast<int64_t>(row_size), std::move(type), interleave);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Arguments [first, first + count) as integers; a TypeError quoting `usage` otherwise. With
// first = 1, argument 0 must be a type name.
std::vector<int64_t> IntegerArgs(const Napi::CallbackInfo& info, size_t first, size_t count, const char* usage) {
  Napi::Env env = info.Env();
  if (info.Length() < first + count || (first == 1 && !info[0].IsString())) throw Napi::TypeError::New(env, std::string("expected ") + usage);
  std::vector<int64_t> v(count);
  for (size_t i = 0; i < count; ++i) {
    if (!info[first + i].IsNumber()) throw Napi::TypeError::New(env, std::string("expected ") + usage);
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

// compareMatmul(type, m, n, k, threads) -> { kernel, maxAbsDiff, maxAbs }: the engine's matrix
// product against ggml's plain one on random data. Blocks the calling thread: for tests only.
Napi::Value CompareMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 1, 4, "compareMatmul(type, m, n, k, threads)");
  const std::string type = info[0].As<Napi::String>().Utf8Value();
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::MatmulCompareResult r = jsd::compare_matmul(type, v[0], v[1], v[2], static_cast<int>(v[3]));
    return CheckResult(env, "kernel", r.kernel, r.max_abs_diff, r.max_abs);
  });
}

// compareAttention(heads, headDim, lq, lk, batch, threads) -> { fused, maxAbsDiff, maxAbs }: the
// fused CPU attention against ggml's ops on random data. Blocks the calling thread: for tests only.
Napi::Value CompareAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<int64_t> v = IntegerArgs(info, 0, 6, "compareAttention(heads, headDim, lq, lk, batch, threads)");
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::AttentionCheck r = jsd::compare_attention(static_cast<int>(v[0]), v[1], v[2], v[3], v[4], static_cast<int>(v[5]));
    return CheckResult(env, "fused", r.fused, r.max_abs_diff, r.max_abs);
  });
}

}  // namespace

void InitQuantize(Napi::Env env, Napi::Object exports) {
  exports.Set("typeTraits", Napi::Function::New(env, TypeTraits, "typeTraits"));
  exports.Set("convertTensor", Napi::Function::New(env, ConvertTensor, "convertTensor"));
  exports.Set("benchMatmul", Napi::Function::New(env, BenchMatmul, "benchMatmul"));
  exports.Set("compareMatmul", Napi::Function::New(env, CompareMatmul, "compareMatmul"));
  exports.Set("compareAttention", Napi::Function::New(env, CompareAttention, "compareAttention"));
}

}  // namespace jsd_binding
