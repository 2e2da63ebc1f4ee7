#include "errors.h"

#include <exception>
#include <new>

namespace jsd_binding {

Failure CurrentFailure() {
  try {
    throw;
  } catch (const jsd::Error& e) {
    return {jsd::error_code_name(e.code()), e.what()};
  } catch (const std::bad_alloc&) {
    return {jsd::error_code_name(jsd::ErrorCode::OutOfMemory), "out of memory"};
  } catch (const std::exception& e) {
    return {jsd::error_code_name(jsd::ErrorCode::Internal), std::string("internal error: ") + e.what()};
  } catch (...) {
    return {jsd::error_code_name(jsd::ErrorCode::Internal), "internal error: unknown exception"};
  }
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

Napi::Error MakeError(Napi::Env env, const Failure& failure) { return MakeError(env, failure.code, failure.message); }

namespace {
const char* const kInvalidArgument = jsd::error_code_name(jsd::ErrorCode::InvalidArgument);
}

Napi::TypeError ArgumentTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, kInvalidArgument));
  return error;
}

Napi::RangeError ArgumentRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, kInvalidArgument));
  return error;
}

}  // namespace jsd_binding
