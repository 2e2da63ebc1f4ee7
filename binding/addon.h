// The per-context addon instance. Node may load the module in several worker threads; each
// gets its own instance, so nothing here may be a process-wide mutable global.
#pragma once

#include <napi.h>

namespace jsd_binding {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);

  Napi::FunctionReference sentencepiece_constructor;
  Napi::FunctionReference model_constructor;
};

// Each binding file registers its exports through one of these.
void InitSystemInfo(Napi::Env env, Napi::Object exports);
void InitBackends(Napi::Env env, Napi::Object exports);
void InitSentencePiece(Napi::Env env, Napi::Object exports, Addon& addon);
void InitQuantize(Napi::Env env, Napi::Object exports);
void InitDiagnostics(Napi::Env env, Napi::Object exports);
void InitModel(Napi::Env env, Napi::Object exports, Addon& addon);

}  // namespace jsd_binding
