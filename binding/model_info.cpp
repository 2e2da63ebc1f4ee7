#include "model_info.h"

#include <algorithm>

namespace jsd_binding {

namespace {

Napi::Float32Array Floats(Napi::Env env, const std::vector<float>& values) {
  Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), out.Data());
  return out;
}

Napi::Array Numbers(Napi::Env env, const std::array<float, 3>& values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (uint32_t i = 0; i < values.size(); ++i) out.Set(i, Napi::Number::New(env, values[i]));
  return out;
}

// null without a checker; else its sizes, the feature extractor's settings and the concept tables.
Napi::Value SafetyCheckerObject(Napi::Env env, const jsd::Engine& e) {
  const jsd::SafetyCheckerConfigs* configs = e.safety_checker_configs();
  if (configs == nullptr) return env.Null();
  const jsd::FeatureExtractorConfig& f = configs->feature_extractor;
  Napi::Object features = Napi::Object::New(env);
  features.Set("size", f.size);
  features.Set("cropSize", f.crop_size);
  features.Set("doResize", f.do_resize);
  features.Set("doCenterCrop", f.do_center_crop);
  features.Set("doNormalize", f.do_normalize);
  features.Set("resample", f.resample);
  features.Set("imageMean", Numbers(env, f.image_mean));
  features.Set("imageStd", Numbers(env, f.image_std));
  const jsd::ConceptTables& t = e.concept_tables();
  Napi::Object out = Napi::Object::New(env);
  out.Set("imageSize", configs->checker.image_size);
  out.Set("projectionDim", configs->checker.projection_dim);
  out.Set("featureExtractor", features);
  out.Set("conceptEmbeds", Floats(env, t.concept_embeds));
  out.Set("conceptWeights", Floats(env, t.concept_weights));
  out.Set("specialCareEmbeds", Floats(env, t.special_care_embeds));
  out.Set("specialCareWeights", Floats(env, t.special_care_weights));
  return out;
}

}  // namespace

Napi::Object InfoObject(Napi::Env env, const jsd::Engine& e) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Object meta = Napi::Object::New(env);
  for (const auto& [key, value] : e.metadata()) meta.Set(key, value);
  out.Set("metadata", meta);
  const auto& t = e.tokenizer_config();
  Napi::Object tok = Napi::Object::New(env);
  tok.Set("padId", t.pad_id);
  tok.Set("eosId", t.eos_id);
  tok.Set("unkId", t.unk_id);
  tok.Set("doLowerCase", t.do_lower_case);
  tok.Set("modelMaxLength", t.model_max_length);
  out.Set("tokenizer", tok);
  const std::string& spm = e.sentencepiece_model();
  out.Set("sentencepiece", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(spm.data()), spm.size()));
  out.Set("textHiddenSize", e.text_encoder_config().hidden_size);
  out.Set("textMaxLength", e.text_encoder_config().max_position_embeddings);
  out.Set("latentChannels", e.vae_config().latent_channels);
  out.Set("vaeScaleFactor", Napi::Number::New(env, static_cast<double>(e.vae_scale_factor())));
  out.Set("scalingFactor", e.vae_config().scaling_factor);
  out.Set("safetyChecker", SafetyCheckerObject(env, e));
  out.Set("threads", e.threads());
  out.Set("backend", e.backend_name());
  return out;
}

Napi::Object PlacementObject(Napi::Env env, const jsd::Placement& p) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("gpu", p.gpu);
  out.Set("deviceBytes", Napi::Number::New(env, static_cast<double>(p.device_bytes)));
  out.Set("deviceBudget", Napi::Number::New(env, static_cast<double>(p.device_budget)));
  Napi::Array networks = Napi::Array::New(env, p.networks.size());
  for (size_t i = 0; i < p.networks.size(); ++i) {
    const jsd::NetworkPlacement& n = p.networks[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", n.name);
    o.Set("onCpu", n.on_cpu);
    o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(n.weight_bytes)));
    o.Set("computeBytes", Napi::Number::New(env, static_cast<double>(n.compute_bytes)));
    o.Set("reason", n.reason);
    networks.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("networks", networks);
  return out;
}

Napi::Array MemoryArray(Napi::Env env, const std::vector<jsd::ComponentMemory>& components) {
  Napi::Array out = Napi::Array::New(env, components.size());
  for (size_t i = 0; i < components.size(); ++i) {
    Napi::Object c = Napi::Object::New(env);
    const jsd::ComponentMemory& m = components[i];
    c.Set("name", m.name);
    c.Set("backend", m.backend);
    c.Set("weightBytes", Napi::Number::New(env, static_cast<double>(m.weight_bytes)));
    c.Set("mappedBytes", Napi::Number::New(env, static_cast<double>(m.mapped_bytes)));
    c.Set("packedBytes", Napi::Number::New(env, static_cast<double>(m.packed_bytes)));
    c.Set("deviceBytes", Napi::Number::New(env, static_cast<double>(m.device_bytes)));
    c.Set("computeBytes", Napi::Number::New(env, static_cast<double>(m.compute_bytes)));
    out.Set(static_cast<uint32_t>(i), c);
  }
  return out;
}

}  // namespace jsd_binding
