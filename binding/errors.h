// The one place where failures become JS errors with a stable `code`. Every binding entry point
// runs its native work inside Guarded() (on the JS thread) or Capture() (on a compute thread),
// and both read the exception through CurrentFailure(), so no C++ exception ever crosses into
// Node-API and each kind of exception gets the same code wherever it is thrown.
#pragma once

#include <napi.h>

#include <string>

#include "runtime/error.h"

namespace jsd_binding {

// A failure as JS will see it.
struct Failure {
  std::string code;
  std::string message;
};

// The exception being handled, as a Failure: jsd::Error keeps its code, std::bad_alloc is
// JSD_OOM, anything else JSD_INTERNAL. Call only inside a catch block.
Failure CurrentFailure();

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);
Napi::Error MakeError(Napi::Env env, const Failure& failure);
// A TypeError / RangeError for a bad argument, coded JSD_INVALID_ARGUMENT like the library's own.
Napi::TypeError ArgumentTypeError(Napi::Env env, const std::string& message);
Napi::RangeError ArgumentRangeError(Napi::Env env, const std::string& message);

// Runs fn on the JS thread; any exception but a JS one becomes a thrown coded JS Error.
template <typename Fn>
auto Guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw MakeError(env, CurrentFailure());
  }
}

}  // namespace jsd_binding
