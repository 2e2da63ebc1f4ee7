// The engine's safety checker: the optional fourth network (model/config.h's SafetyCheckerConfigs;
// networks/safety_checker.h), made where the file has one, placed and loaded like the others, and
// run on pixel_values the TypeScript side's feature extractor made.
#include <string>

#include "model/model_file.h"
#include "model/weights.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/limits.h"
#include "runtime/network.h"

namespace jsd {

namespace {

constexpr const char* kPrefix = "sc.";

}  // namespace

void Engine::create_safety_checker(const FileWeightPlan& plan) {
  safety_configs_ = read_safety_checker_configs(*file_);
  if (!safety_configs_) {
    // Its tensors without its metadata: a file the converter did not write.
    const auto stray = file_->tensor_names(kPrefix);
    if (!stray.empty()) throw Error(ErrorCode::BadModel, "model file holds tensor '" + stray.front() + "' but no safety checker metadata");
    return;
  }
  safety_net_ = std::make_unique<Network>("safety_checker", std::make_unique<WeightStore>(*file_, kPrefix, plan), 1);
}

void Engine::build_safety_checker(CachedGraph& g, int64_t n, const nn::Options& options) const {
  const SafetyCheckerConfig& c = safety_configs_->checker;
  ggml_tensor* input = ggml_new_tensor_4d(g.ctx, GGML_TYPE_F32, c.image_size, c.image_size, c.num_channels, n);
  ggml_set_input(input);
  g.inputs = {input};
  g.output = safety_checker_->build(g.ctx, input, options);
  ggml_set_output(g.output);
}

std::vector<float> Engine::embed_images(const float* pixel_values, int64_t n) {
  if (!safety_net_) throw Error(ErrorCode::NoSafetyChecker, "embedImages: the model file has no safety checker");
  if (n < 1 || n > limits::kBatchMax) throw Error(ErrorCode::InvalidArgument, "embedImages: batch must be 1 to " + std::to_string(limits::kBatchMax));
  const SafetyCheckerConfig& c = safety_configs_->checker;
  // It runs after the VAE, once per batch of images: one large compute buffer at a time.
  free_other_graphs(*safety_net_);
  release_idle(*unet_net_);
  release_idle(*vae_net_);
  safety_net_->weights->make_resident(*file_, threads_);
  const std::string key = "safety_checker " + std::to_string(n);
  const nn::Options options = nn_options_for(safety_net_->backend);
  const size_t bytes = static_cast<size_t>(n) * c.num_channels * c.image_size * c.image_size * sizeof(float);
  std::vector<float> embeds = run(*safety_net_, 0, key, [&](CachedGraph& g) { build_safety_checker(g, n, options); }, {{pixel_values, bytes}});
  if (options_.release_idle_weights) safety_net_->weights->release_resident_pages();
  return embeds;
}

}  // namespace jsd
