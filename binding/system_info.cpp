#include "runtime/system_info.h"

#include "runtime/devices.h"

#include "addon.h"
#include "errors.h"

namespace jsd_binding {

namespace {

Napi::Array ToArray(Napi::Env env, const std::vector<std::string>& items) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) out.Set(static_cast<uint32_t>(i), items[i]);
  return out;
}

Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const jsd::SystemInfo s = jsd::system_info();
    Napi::Object out = Napi::Object::New(env);
    out.Set("ggmlVersion", s.ggml_version);
    out.Set("ggmlCommit", s.ggml_commit);
    out.Set("backends", ToArray(env, s.backends));
    out.Set("cpuFeatures", ToArray(env, s.cpu_features));
    out.Set("ggmlCpuFeatures", ToArray(env, s.ggml_cpu_features));
    out.Set("physicalCores", s.physical_cores);
    out.Set("logicalCores", s.logical_cores);
    return out;
  });
}

Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto devices = jsd::list_devices();
    Napi::Array out = Napi::Array::New(env, devices.size());
    for (size_t i = 0; i < devices.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("backend", devices[i].backend);
      d.Set("name", devices[i].name);
      d.Set("description", devices[i].description);
      d.Set("type", devices[i].type);
      d.Set("index", devices[i].index);
      d.Set("freeBytes", Napi::Number::New(env, static_cast<double>(devices[i].free_bytes)));
      d.Set("totalBytes", Napi::Number::New(env, static_cast<double>(devices[i].total_bytes)));
      out.Set(static_cast<uint32_t>(i), d);
    }
    return out;
  });
}

}  // namespace

void InitSystemInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
}

}  // namespace jsd_binding
