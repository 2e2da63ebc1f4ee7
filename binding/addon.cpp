#include "addon.h"

namespace jsd_binding {

Addon::Addon(Napi::Env env, Napi::Object exports) {
  InitSystemInfo(env, exports);
  InitBackends(env, exports);
  InitSentencePiece(env, exports, *this);
  InitQuantize(env, exports);
  InitDiagnostics(env, exports);
  InitModel(env, exports, *this);
}

}  // namespace jsd_binding

using JsdAddon = jsd_binding::Addon;
NODE_API_ADDON(JsdAddon)
