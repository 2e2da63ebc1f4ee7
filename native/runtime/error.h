// Errors the engine reports. Every failure a caller can cause (a bad file, a bad argument)
// is a jsd::Error with a stable code; the binding turns these into JS errors with `code`.
#pragma once

#include <stdexcept>
#include <string>

namespace jsd {

enum class ErrorCode {
  InvalidArgument,  // a value the caller passed is out of range or of the wrong shape
  NotFound,         // a file does not exist or cannot be opened
  BadModel,         // a model file is malformed, truncated or of another kind
  BadTokenizer,     // a sentencepiece model cannot be parsed
  OutOfMemory,      // an allocation (host or device) failed
  Aborted,          // the caller cancelled the operation
  NativeUnavailable,  // a ggml backend (the CPU plugin, a GPU plugin) is missing or cannot be loaded
  NoSafetyChecker,  // the safety checker was asked for, and the model file has none
  Internal,         // a bug: an invariant the engine relies on does not hold
};

// The string the JS side sees as `error.code`.
const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace jsd
