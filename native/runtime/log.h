// ggml reports parse errors through its log callback; this routes them to the thread that
// is loading a file, so they end up in the error message rather than on stderr.
#pragma once

#include <string>

namespace jsd {

// Installs jsd's ggml log handler (once per process); from then on ggml's warnings and
// errors are kept per thread while a LogCapture is alive on that thread, and dropped
// otherwise unless JSD_DEBUG is set in the environment.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  std::string last_error(const std::string& fallback) const;
};

void install_ggml_logger();

}  // namespace jsd
