// SentencePiece: a JS class around jsd::SentencePieceModel. Construction takes the model's
// bytes (the TS layer reads files asynchronously); parsing a few hundred kB is quick.
#include <memory>

#include "addon.h"
#include "errors.h"
#include "tokenizer/sentencepiece_model.h"

namespace jsd_binding {

namespace {

class SentencePiece : public Napi::ObjectWrap<SentencePiece> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SentencePiece",
                       {
                           InstanceMethod<&SentencePiece::Encode>("encode"),
                           InstanceMethod<&SentencePiece::Decode>("decode"),
                           InstanceMethod<&SentencePiece::PieceToId>("pieceToId"),
                           InstanceMethod<&SentencePiece::IdToPiece>("idToPiece"),
                           InstanceAccessor<&SentencePiece::VocabSize>("vocabSize"),
                           InstanceAccessor<&SentencePiece::SpecialIds>("specialIds"),
                       });
  }

  explicit SentencePiece(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SentencePiece>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      throw ArgumentTypeError(env, "SentencePiece expects the model's bytes as a Uint8Array");
    }
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    std::string data(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
    model_ = Guarded(env, [&]() { return jsd::SentencePieceModel::from_bytes(data); });
  }

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw ArgumentTypeError(env, "encode expects a string");
    const std::string text = info[0].As<Napi::String>().Utf8Value();
    return Guarded(env, [&]() -> Napi::Value {
      const jsd::Encoding enc = model_->encode(text);
      Napi::Int32Array ids = Napi::Int32Array::New(env, enc.ids.size());
      Napi::Array pieces = Napi::Array::New(env, enc.pieces.size());
      for (size_t i = 0; i < enc.ids.size(); ++i) {
        ids[i] = enc.ids[i];
        pieces.Set(static_cast<uint32_t>(i), enc.pieces[i]);
      }
      Napi::Object out = Napi::Object::New(env);
      out.Set("ids", ids);
      out.Set("pieces", pieces);
      return out;
    });
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) throw ArgumentTypeError(env, "decode expects an array of token ids");
    Napi::Array array = info[0].As<Napi::Array>();
    std::vector<int32_t> ids;
    ids.reserve(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value v = array.Get(i);
      if (!v.IsNumber()) throw ArgumentTypeError(env, "decode expects an array of token ids");
      const double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int32_t>(d))) {
        throw ArgumentRangeError(env, "token ids must be integers");
      }
      ids.push_back(static_cast<int32_t>(d));
    }
    return Guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, model_->decode(ids)); });
  }

  Napi::Value PieceToId(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw ArgumentTypeError(env, "pieceToId expects a string");
    return Napi::Number::New(env, model_->piece_to_id(info[0].As<Napi::String>().Utf8Value()));
  }

  Napi::Value IdToPiece(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw ArgumentTypeError(env, "idToPiece expects a number");
    const int id = info[0].As<Napi::Number>().Int32Value();
    return Guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, model_->id_to_piece(id)); });
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_->vocab_size()); }

  Napi::Value SpecialIds(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("unk", model_->unk_id());
    out.Set("pad", model_->pad_id());
    out.Set("eos", model_->eos_id());
    out.Set("bos", model_->bos_id());
    return out;
  }

  std::unique_ptr<jsd::SentencePieceModel> model_;
};

}  // namespace

void InitSentencePiece(Napi::Env env, Napi::Object exports, Addon& addon) {
  Napi::Function ctor = SentencePiece::Define(env);
  addon.sentencepiece_constructor = Napi::Persistent(ctor);
  exports.Set("SentencePiece", ctor);
}

}  // namespace jsd_binding
