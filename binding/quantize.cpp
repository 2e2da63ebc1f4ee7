// Tensor conversion for the converter (float32 -> f16/bf16/quantized), run off the JS thread.
#include <memory>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "ggml.h"
#include "kernels/q8_gemm.h"
#include "model/quantize.h"

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
    } catch (...) {
      failure_ = CurrentFailure();
      SetError(failure_.message);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto* bytes = new std::vector<uint8_t>(std::move(out_));
    Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(
        env, bytes->data(), bytes->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* owned) { delete owned; }, bytes);
    deferred_.Resolve(buffer);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(MakeError(Env(), failure_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> src_ref_;  // keeps the input alive while the worker reads it
  const float* src_;
  size_t n_;
  int64_t row_size_;
  jsd::TypeTraits type_;
  bool interleave_;
  std::vector<uint8_t> out_;
  Failure failure_;
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
  if (info.Length() < 1 || !info[0].IsString()) throw ArgumentTypeError(env, "typeTraits expects a type name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  return Guarded(env, [&]() -> Napi::Value { return TraitsToObject(env, jsd::type_traits(name)); });
}

// convertTensor(values: Float32Array, rowSize: number, type: string, interleave?: boolean) -> Promise<Buffer>
// interleave: q8_0 rows in the CPU kernel's layout (native/kernels/q8_gemm.h), 16 rows at a time.
Napi::Value ConvertTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      !info[1].IsNumber() || !info[2].IsString()) {
    throw ArgumentTypeError(env, "convertTensor expects (Float32Array, rowSize, typeName)");
  }
  const double row_size = info[1].As<Napi::Number>().DoubleValue();
  if (!(row_size >= 1 && row_size <= 1e12) || row_size != static_cast<double>(static_cast<int64_t>(row_size))) {
    throw ArgumentRangeError(env, "rowSize must be a positive integer");
  }
  const std::string name = info[2].As<Napi::String>().Utf8Value();
  jsd::TypeTraits type = Guarded(env, [&]() { return jsd::type_traits(name); });
  const bool interleave = info.Length() > 3 && info[3].ToBoolean().Value();
  auto* worker = new ConvertWorker(env, info[0].As<Napi::Float32Array>(), static_cast<int64_t>(row_size), std::move(type), interleave);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitQuantize(Napi::Env env, Napi::Object exports) {
  exports.Set("typeTraits", Napi::Function::New(env, TypeTraits, "typeTraits"));
  exports.Set("convertTensor", Napi::Function::New(env, ConvertTensor, "convertTensor"));
}

}  // namespace jsd_binding
