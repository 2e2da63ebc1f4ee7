#include "engine_thread.h"

#include <thread>

#include "errors.h"

namespace jsd_binding {

std::shared_ptr<EngineThread> EngineThread::Start() {
  std::shared_ptr<EngineThread> self(new EngineThread());
  std::thread([self]() { self->Loop(); }).detach();
  return self;
}

void EngineThread::Loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this]() { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void EngineThread::PostDetached(std::function<void()> work) {
  std::lock_guard<std::mutex> lock(mutex_);
  jobs_.push_back(std::move(work));
  wake_.notify_one();
}

void EngineThread::Stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

JobResult Capture(const std::function<JobResult()>& fn) {
  try {
    return fn();
  } catch (...) {
    Failure failure = CurrentFailure();
    return JobResult{nullptr, std::move(failure.code), std::move(failure.message)};
  }
}

Napi::Promise EngineThread::Post(Napi::Env env, std::function<JobResult()> work) {
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      deferred->Reject(MakeError(env, "JSD_CLOSED", "the model is closed").Value());
      return promise;
    }
  }
  // One thread-safe function per job: it keeps the event loop alive exactly while the job is pending.
  auto tsfn = std::make_shared<Napi::ThreadSafeFunction>(
      Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "jsd-engine", 0, 1));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back([work = std::move(work), deferred, tsfn]() {
      auto result = std::make_shared<JobResult>(Capture(work));
      tsfn->BlockingCall([result, deferred](Napi::Env env, Napi::Function) {
        if (!result->error_code.empty()) {
          deferred->Reject(MakeError(env, result->error_code, result->error_message).Value());
          return;
        }
        try {
          deferred->Resolve(result->make_value ? result->make_value(env) : env.Undefined());
        } catch (const Napi::Error& e) {
          deferred->Reject(e.Value());
        }
      });
      tsfn->Release();
    });
    wake_.notify_one();
  }
  return promise;
}

}  // namespace jsd_binding
