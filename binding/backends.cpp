// loadBackends(cpuDir, plugins): registers ggml's CPU backend from the addon's folder and the
// GPU plugins lib/native/addon.ts chose (after probing each in a child process). Plugin loading is
// quick (dlopen, a device list), so it runs on the calling thread, once per process.
#include "addon.h"
#include "runtime/backend_loader.h"
#include "errors.h"

namespace jsd_binding {

namespace {

Napi::Value LoadBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
      throw jsd::Error(jsd::ErrorCode::InvalidArgument, "loadBackends(cpuDir: string, plugins: string[])");
    }
    const Napi::Array plugins = info[1].As<Napi::Array>();
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < plugins.Length(); ++i) {
      const Napi::Value v = plugins.Get(i);
      if (!v.IsString()) throw jsd::Error(jsd::ErrorCode::InvalidArgument, "loadBackends: plugins must be file paths");
      paths.push_back(v.As<Napi::String>().Utf8Value());
    }
    jsd::load_cpu_backend(info[0].As<Napi::String>().Utf8Value());
    Napi::Array out = Napi::Array::New(env, paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      const jsd::PluginLoad load = jsd::load_plugin(paths[i]);
      Napi::Object o = Napi::Object::New(env);
      o.Set("path", load.path);
      o.Set("loaded", load.loaded);
      if (load.loaded) o.Set("backend", load.backend);
      if (!load.error.empty()) o.Set("error", load.error);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
}

}  // namespace

void InitBackends(Napi::Env env, Napi::Object exports) {
  exports.Set("loadBackends", Napi::Function::New(env, LoadBackends, "loadBackends"));
}

}  // namespace jsd_binding
