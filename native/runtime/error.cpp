#include "runtime/error.h"

namespace jsd {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "JSD_INVALID_ARGUMENT";
    case ErrorCode::NotFound: return "JSD_NOT_FOUND";
    case ErrorCode::BadModel: return "JSD_BAD_MODEL";
    case ErrorCode::BadTokenizer: return "JSD_BAD_TOKENIZER";
    case ErrorCode::OutOfMemory: return "JSD_OOM";
    case ErrorCode::Aborted: return "JSD_ABORTED";
    case ErrorCode::NativeUnavailable: return "JSD_NATIVE_UNAVAILABLE";
    case ErrorCode::NoSafetyChecker: return "JSD_NO_SAFETY_CHECKER";
    case ErrorCode::Internal: return "JSD_INTERNAL";
  }
  return "JSD_INTERNAL";
}

}  // namespace jsd
