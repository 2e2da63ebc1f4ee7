// A loaded model's reports as JS objects: info() (configs, tokenizer, the safety checker's tables),
// placement() and memory(). Built on the JS thread from what the engine keeps.
#pragma once

#include <napi.h>

#include "runtime/engine.h"

namespace jsd_binding {

Napi::Object InfoObject(Napi::Env env, const jsd::Engine& engine);
Napi::Object PlacementObject(Napi::Env env, const jsd::Placement& placement);
Napi::Array MemoryArray(Napi::Env env, const std::vector<jsd::ComponentMemory>& components);

}  // namespace jsd_binding
