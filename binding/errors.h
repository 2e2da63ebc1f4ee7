// Turns engine failures into JS errors with a stable `code`. Every binding entry point runs
// its native work inside Guarded(), so no C++ exception ever crosses into Node-API.
#pragma once

#include <napi.h>

#include <new>
#include <string>

#include "error.h"

namespace jsd_binding {

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message);

// Runs fn; jsd::Error, std::bad_alloc and any other exception become a thrown JS Error.
template <typename Fn>
auto Guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const jsd::Error& e) {
    throw MakeError(env, jsd::error_code_name(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    throw MakeError(env, "JSD_OOM", "out of memory");
  } catch (const std::exception& e) {
    throw MakeError(env, "JSD_INTERNAL", std::string("internal error: ") + e.what());
  } catch (...) {
    throw MakeError(env, "JSD_INTERNAL", "internal error: unknown exception");
  }
}

}  // namespace jsd_binding
