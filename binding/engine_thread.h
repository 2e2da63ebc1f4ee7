// Runs a model's jobs on a thread of its own, in order, so that seconds-long compute never
// occupies the JS thread or libuv's shared pool, and results reach JS through a thread-safe
// function. The thread is detached: it owns the shared state and ends after its last job.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace jsd_binding {

// What a job produces: either a value built on the JS thread, or an error code and message.
struct JobResult {
  std::function<Napi::Value(Napi::Env)> make_value;
  std::string error_code;
  std::string error_message;
};

class EngineThread {
 public:
  static std::shared_ptr<EngineThread> Start();
  // Queues work; the returned promise settles on the JS thread with what work returns.
  // Exceptions thrown by work become rejected promises with the matching code.
  Napi::Promise Post(Napi::Env env, std::function<JobResult()> work);
  // Queues work that reports nothing back (safe to call where no JS may run).
  void PostDetached(std::function<void()> work);
  // No more jobs are accepted; the thread ends once the queue is empty.
  void Stop();

 private:
  EngineThread() = default;
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
};

// Runs fn and converts any exception to a JobResult error.
JobResult Capture(const std::function<JobResult()>& fn);

}  // namespace jsd_binding
