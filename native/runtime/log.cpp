#include "runtime/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "ggml.h"

namespace jsd {

namespace {

thread_local std::string* capture_target = nullptr;

void on_ggml_log(ggml_log_level level, const char* text, void*) {
  if (capture_target != nullptr && (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN)) {
    std::string line(text);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) *capture_target = line;
    return;
  }
  static const bool debug = std::getenv("JSD_DEBUG") != nullptr;
  if (debug || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

}  // namespace

void install_ggml_logger() {
  static std::once_flag once;
  std::call_once(once, []() { ggml_log_set(on_ggml_log, nullptr); });
}

LogCapture::LogCapture() {
  install_ggml_logger();
  capture_target = new std::string();
}

LogCapture::~LogCapture() {
  delete capture_target;
  capture_target = nullptr;
}

std::string LogCapture::last_error(const std::string& fallback) const {
  if (capture_target == nullptr || capture_target->empty()) return fallback;
  // ggml prefixes messages with the function name; keep what follows it.
  std::string message = *capture_target;
  const auto colon = message.find(": ");
  if (colon != std::string::npos && colon < 40) message = message.substr(colon + 2);
  return message;
}

}  // namespace jsd
