// Model: a loaded JSD model file. Every method that computes returns a promise settled from
// the model's own thread (EngineThread); inputs are copied on the JS thread first so JS may
// reuse its arrays at once.
#include <memory>
#include <vector>

#include "addon.h"
#include "runtime/engine.h"
#include "engine_thread.h"
#include "runtime/error.h"
#include "runtime/limits.h"
#include "errors.h"
#include "model_info.h"

namespace jsd_binding {

namespace {

struct ModelState {
  std::unique_ptr<jsd::Engine> engine;
  std::shared_ptr<EngineThread> thread;
};

std::vector<float> CopyFloats(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw ArgumentTypeError(v.Env(), std::string(what) + " must be a Float32Array");
  }
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

// Channels, text lengths and widths are the model's own (its config bounds them at load); this only
// keeps the products of a shape far from overflow before the engine compares them with the model.
constexpr int64_t kModelDimensionMax = 1 << 16;

int64_t Integer(const Napi::Value& v, const char* what, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) throw ArgumentTypeError(v.Env(), std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw ArgumentRangeError(v.Env(), std::string(what) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return static_cast<int64_t>(d);
}

// The shape of a tensor crossing into the engine, bounded by the package's limits (runtime/limits.h,
// the numbers lib/limits.ts checks too); the engine then checks it against the model.
jsd::TensorShape4 Shape(const Napi::Value& v, const char* what) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 4) throw ArgumentTypeError(v.Env(), std::string(what) + " must be [n, c, h, w]");
  Napi::Array a = v.As<Napi::Array>();
  return {Integer(a.Get(0u), what, 1, jsd::limits::kBatchMax), Integer(a.Get(1u), what, 1, kModelDimensionMax),
          Integer(a.Get(2u), what, 1, jsd::limits::kImageSideMax), Integer(a.Get(3u), what, 1, jsd::limits::kImageSideMax)};
}

void CheckLength(Napi::Env env, size_t have, int64_t want, const char* what) {
  if (static_cast<int64_t>(have) != want) {
    throw ArgumentRangeError(env, std::string(what) + " holds " + std::to_string(have) + " values but its shape needs " + std::to_string(want));
  }
}

std::function<Napi::Value(Napi::Env)> FloatArray(std::shared_ptr<std::vector<float>> data) {
  return [data](Napi::Env env) -> Napi::Value {
    Napi::Float32Array out = Napi::Float32Array::New(env, data->size());
    std::copy(data->begin(), data->end(), out.Data());
    return out;
  };
}

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod<&Model::EncodeText>("encodeText"),
                           InstanceMethod<&Model::PredictNoise>("predictNoise"),
                           InstanceMethod<&Model::DecodeLatents>("decodeLatents"),
                           InstanceMethod<&Model::EncodeImage>("encodeImage"),
                           InstanceMethod<&Model::EmbedImages>("embedImages"),
                           InstanceMethod<&Model::Info>("info"),
                           InstanceMethod<&Model::Memory>("memory"),
                           InstanceMethod<&Model::Placement>("placement"),
                           InstanceMethod<&Model::PeakComputeBytes>("peakComputeBytes"),
                           InstanceMethod<&Model::ReleaseComputeBuffers>("releaseComputeBuffers"),
                           InstanceMethod<&Model::Abort>("abort"),
                           InstanceMethod<&Model::Close>("close"),
                       });
  }

  // Constructed only by loadModel, with an External holding the loaded state.
  explicit Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw ArgumentTypeError(info.Env(), "use loadModel() to load a model");
    auto* state = info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
    state_ = *state;
  }

  ~Model() override {
    // Dropped without close(): free the engine on its own thread after pending jobs.
    if (state_ && state_->thread) Release();
  }

 private:
  ModelState& Open(Napi::Env env) {
    if (!state_ || closed_) throw MakeError(env, "JSD_CLOSED", "the model is closed");
    return *state_;
  }

  void Release() {
    auto state = state_;
    // Runs in a GC finalizer, where no JS may be called: queue a plain job that frees the
    // engine after any pending ones; the thread then ends.
    state->thread->PostDetached([state]() { state->engine.reset(); });
    state->thread->Stop();
  }

  Napi::Value EncodeText(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw ArgumentTypeError(env, "encodeText expects (Int32Array ids, batch, length)");
    }
    Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
    const int64_t n = Integer(info[1], "batch", 1, jsd::limits::kBatchMax);
    // The length's bound is the model's (max_position_embeddings), which the engine checks.
    const int64_t length = Integer(info[2], "length", 1, kModelDimensionMax);
    CheckLength(env, ids.ElementLength(), n * length, "ids");
    auto data = std::make_shared<std::vector<int32_t>>(ids.Data(), ids.Data() + ids.ElementLength());
    auto state = state_;
    return s.thread->Post(env, [state, data, n, length]() {
      auto out = std::make_shared<std::vector<float>>(state->engine->encode_text(*data, n, length));
      return JobResult{FloatArray(out), "", ""};
    });
  }

  // predictNoise(latents, [n,c,h,w], timesteps, textStates, textLength, textDim)
  Napi::Value PredictNoise(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    if (info.Length() < 6) throw ArgumentTypeError(env, "predictNoise expects (latents, shape, timesteps, textStates, textLength, textDim)");
    auto latents = std::make_shared<std::vector<float>>(CopyFloats(info[0], "latents"));
    const jsd::TensorShape4 shape = Shape(info[1], "shape");
    auto timesteps = std::make_shared<std::vector<float>>(CopyFloats(info[2], "timesteps"));
    auto text = std::make_shared<std::vector<float>>(CopyFloats(info[3], "textStates"));
    // The text length's bound is the engine's (chunks of the model's tokenizer length).
    const int64_t text_length = Integer(info[4], "textLength", 1, kModelDimensionMax);
    const int64_t text_dim = Integer(info[5], "textDim", 1, kModelDimensionMax);
    CheckLength(env, latents->size(), shape.numel(), "latents");
    CheckLength(env, timesteps->size(), shape.n, "timesteps");
    CheckLength(env, text->size(), shape.n * text_length * text_dim, "textStates");
    auto state = state_;
    return s.thread->Post(env, [state, latents, shape, timesteps, text, text_length, text_dim]() {
      auto out = std::make_shared<std::vector<float>>(
          state->engine->predict_noise(latents->data(), shape, *timesteps, text->data(), text_length, text_dim));
      return JobResult{FloatArray(out), "", ""};
    });
  }

  Napi::Value DecodeLatents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    if (info.Length() < 2) throw ArgumentTypeError(env, "decodeLatents expects (latents, shape)");
    auto z = std::make_shared<std::vector<float>>(CopyFloats(info[0], "latents"));
    const jsd::TensorShape4 shape = Shape(info[1], "shape");
    CheckLength(env, z->size(), shape.numel(), "latents");
    auto state = state_;
    return s.thread->Post(env, [state, z, shape]() {
      auto out = std::make_shared<std::vector<float>>(state->engine->decode_latents(z->data(), shape));
      return JobResult{FloatArray(out), "", ""};
    });
  }

  Napi::Value EncodeImage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    if (info.Length() < 2) throw ArgumentTypeError(env, "encodeImage expects (pixels, shape)");
    auto pixels = std::make_shared<std::vector<float>>(CopyFloats(info[0], "pixels"));
    const jsd::TensorShape4 shape = Shape(info[1], "shape");
    CheckLength(env, pixels->size(), shape.numel(), "pixels");
    auto state = state_;
    return s.thread->Post(env, [state, pixels, shape]() {
      auto out = std::make_shared<std::vector<float>>(state->engine->encode_image(pixels->data(), shape));
      return JobResult{FloatArray(out), "", ""};
    });
  }

  // embedImages(pixelValues, batch): the safety checker's image_embeds [batch, projection_dim].
  Napi::Value EmbedImages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    if (info.Length() < 2) throw ArgumentTypeError(env, "embedImages expects (pixelValues, batch)");
    const jsd::SafetyCheckerConfigs* configs = s.engine->safety_checker_configs();
    if (configs == nullptr) throw MakeError(env, jsd::error_code_name(jsd::ErrorCode::NoSafetyChecker), "embedImages: the model file has no safety checker");
    auto pixels = std::make_shared<std::vector<float>>(CopyFloats(info[0], "pixelValues"));
    const int64_t n = Integer(info[1], "batch", 1, jsd::limits::kBatchMax);
    const int64_t side = configs->checker.image_size;
    CheckLength(env, pixels->size(), n * configs->checker.num_channels * side * side, "pixelValues");
    auto state = state_;
    return s.thread->Post(env, [state, pixels, n]() {
      auto out = std::make_shared<std::vector<float>>(state->engine->embed_images(pixels->data(), n));
      return JobResult{FloatArray(out), "", ""};
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return InfoObject(env, *Open(env).engine);
  }

  Napi::Value Placement(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return PlacementObject(env, Open(env).engine->placement());
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return MemoryArray(env, Open(env).engine->memory());
  }

  // peakComputeBytes(reset) -> the largest total of compute buffers held at once since the last
  // reset; reset = true starts a new measurement (generate() does at its start). The engine keeps
  // it under a lock, so it may be read while a job runs on the model's thread.
  Napi::Value PeakComputeBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    jsd::Engine& e = *Open(env).engine;
    const double peak = static_cast<double>(e.peak_compute_bytes());
    if (info.Length() > 0 && info[0].ToBoolean().Value()) e.reset_peak_compute_bytes();
    return Napi::Number::New(env, peak);
  }

  // releaseComputeBuffers() -> Promise<void>, on the model's thread after the jobs before it.
  Napi::Value ReleaseComputeBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelState& s = Open(env);
    auto state = state_;
    return s.thread->Post(env, [state]() {
      state->engine->release_compute_buffers();
      return JobResult{};
    });
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    if (state_ && state_->engine && !closed_) state_->engine->request_abort();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_ || closed_) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Resolve(env.Undefined());
      return deferred.Promise();
    }
    closed_ = true;
    auto state = state_;
    Napi::Promise done = state->thread->Post(env, [state]() {
      state->engine.reset();
      return JobResult{};
    });
    state->thread->Stop();
    state_.reset();
    return done;
  }

  std::shared_ptr<ModelState> state_;
  bool closed_ = false;
};

jsd::EngineOptions ReadEngineOptions(const Napi::CallbackInfo& info) {
  jsd::EngineOptions options;
  if (info.Length() < 2 || !info[1].IsObject()) return options;
  Napi::Object o = info[1].As<Napi::Object>();
  auto has = [&](const char* key) { return o.Has(key) && !o.Get(key).IsUndefined(); };
  auto flag = [&](const char* key, bool* out) {
    if (has(key)) *out = o.Get(key).ToBoolean().Value();
  };
  auto integer = [&](const char* key, int* out, int64_t lo, int64_t hi) {
    if (has(key)) *out = static_cast<int>(Integer(o.Get(key), key, lo, hi));
  };
  integer("threads", &options.threads, 0, jsd::limits::kThreadsMax);
  flag("flashAttention", &options.flash_attention);
  if (has("backend") && o.Get("backend").IsString()) options.backend = o.Get("backend").As<Napi::String>().Utf8Value();
  integer("device", &options.device, 0, jsd::limits::kDevicesMax);
  flag("textEncoderOnCpu", &options.text_encoder_on_cpu);
  flag("vaeOnCpu", &options.vae_on_cpu);
  flag("releaseIdleWeights", &options.release_idle_weights);
  flag("cpuFallback", &options.cpu_fallback);
  if (has("deviceMemoryLimit")) options.device_memory_limit = static_cast<size_t>(Integer(o.Get("deviceMemoryLimit"), "deviceMemoryLimit", 0, int64_t{1} << 50));
  integer("planHeight", &options.plan_height, 0, jsd::limits::kImageSideMax);
  integer("planWidth", &options.plan_width, 0, jsd::limits::kImageSideMax);
  integer("vaeTile", &options.vae_tile, 0, 512);
  integer("vaeTileThreshold", &options.vae_tile_threshold, 0, 512 * 512);
  return options;
}

// loadModel(path, options) -> Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw ArgumentTypeError(env, "loadModel expects a file path");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const jsd::EngineOptions options = ReadEngineOptions(info);
  Addon* addon = env.GetInstanceData<Addon>();
  auto state = std::make_shared<ModelState>();
  state->thread = EngineThread::Start();
  Napi::Promise loaded = state->thread->Post(env, [state, path, options, addon]() {
    try {
      state->engine = std::make_unique<jsd::Engine>(path, options);
    } catch (...) {
      state->thread->Stop();  // nothing else will run on this thread
      throw;
    }
    return JobResult{[state, addon](Napi::Env env) -> Napi::Value {
                       Napi::External<std::shared_ptr<ModelState>> ext = Napi::External<std::shared_ptr<ModelState>>::New(
                           env, new std::shared_ptr<ModelState>(state), [](Napi::Env, std::shared_ptr<ModelState>* p) { delete p; });
                       return addon->model_constructor.New({ext});
                     },
                     "", ""};
  });
  return loaded;
}

// planModel(path, options) -> Promise<placement>: what loadModel would place where, without
// loading weights (building and measuring the graphs takes a moment: off the JS thread).
Napi::Value PlanModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw ArgumentTypeError(env, "planModel expects a file path");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const jsd::EngineOptions options = ReadEngineOptions(info);
  auto thread = EngineThread::Start();
  Napi::Promise planned = thread->Post(env, [path, options]() {
    auto placement = std::make_shared<jsd::Placement>(jsd::Engine::plan(path, options));
    return JobResult{[placement](Napi::Env env) -> Napi::Value { return PlacementObject(env, *placement); }, "", ""};
  });
  thread->Stop();
  return planned;
}

}  // namespace

void InitModel(Napi::Env env, Napi::Object exports, Addon& addon) {
  Napi::Function ctor = Model::Define(env);
  addon.model_constructor = Napi::Persistent(ctor);
  exports.Set("NativeModel", ctor);
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("planModel", Napi::Function::New(env, PlanModel, "planModel"));
}

}  // namespace jsd_binding
