// The engine's side of the placement plan (placement.h): the facts the plan needs about this
// model on this device, i.e. each network's weight bytes in the device's buffers and the compute
// buffer its graph needs at the planned image size, measured over placeholder weights before
// anything is loaded.
#include <algorithm>
#include <string>

#include "runtime/engine.h"
#include "runtime/network.h"
#include "model/weights.h"

namespace jsd {

Placement Engine::make_placement(ggml_backend_dev_t device) {
  PlacementInput input;
  input.gpu = ggml_backend_dev_type(device) != GGML_BACKEND_DEVICE_TYPE_CPU;
  input.cpu_fallback = options_.cpu_fallback;
  input.device = std::string(ggml_backend_dev_name(device)) + " (" + ggml_backend_dev_description(device) + ")";
  const std::vector<Network*> all = networks();
  const bool forced[] = {options_.text_encoder_on_cpu, false, options_.vae_on_cpu, false};
  for (size_t i = 0; i < all.size(); ++i) input.networks.push_back({all[i]->name, 0, 0, forced[i]});
  if (!input.gpu) return plan_placement(input);

  size_t free_bytes = 0, total_bytes = 0;
  ggml_backend_dev_memory(device, &free_bytes, &total_bytes);
  input.device_budget = options_.device_memory_limit > 0 ? std::min(options_.device_memory_limit, free_bytes) : free_bytes;
  // The planned latent size: the caller's image size, else the model's sample size. The UNet's
  // batch of 2 runs the prompt and the negative prompt together; the VAE decodes one image (or tile),
  // and the safety checker embeds one.
  const int64_t factor = vae_scale_factor();
  auto latent = [&](int pixels) { return pixels > 0 ? std::max<int64_t>(1, pixels / factor) : static_cast<int64_t>(unet_config_.sample_size); };
  const int64_t h = latent(options_.plan_height), w = latent(options_.plan_width);
  const bool tiled = options_.vae_tile > 0 && h * w > options_.vae_tile_threshold;
  const TensorShape4 unet_shape{2, unet_config_.in_channels, h, w};
  const TensorShape4 vae_shape{1, vae_config_.latent_channels, tiled ? std::min<int64_t>(h, options_.vae_tile) : h, tiled ? std::min<int64_t>(w, options_.vae_tile) : w};
  ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(device);
  nn::Options gpu_options = nn_options_;
  gpu_options.threads = threads_;
  const GraphBuilder builders[] = {
      [&](CachedGraph& g) { build_text(g, 2, text_config_.max_position_embeddings, gpu_options); },
      [&](CachedGraph& g) { build_unet(g, unet_shape, text_config_.max_position_embeddings, gpu_options); },
      [&](CachedGraph& g) { build_decode(g, vae_shape, gpu_options); },
      [&](CachedGraph& g) { build_safety_checker(g, 1, gpu_options); },
  };
  for (size_t i = 0; i < all.size(); ++i) {
    input.networks[i].weight_bytes = all[i]->weights->buffer_bytes(buft);
    input.networks[i].compute_bytes = measure_compute_bytes(*all[i]->weights, buft, builders[i]);
  }
  return plan_placement(input);
}

}  // namespace jsd
