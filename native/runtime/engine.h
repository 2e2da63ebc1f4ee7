// A loaded JSD model: the three networks, and the safety checker where the file has one, on a ggml
// backend, with one cached graph per network and input shape. Calls are not thread-safe; the binding serializes them on the
// model's own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "ggml-backend.h"
#include "networks/nn.h"
#include "networks/safety_checker.h"
#include "runtime/placement.h"

namespace jsd {

class ModelFile;
class TextEncoder;
class UNet;
class Vae;
struct CachedGraph;
struct FileWeightPlan;
struct Network;

struct EngineOptions {
  int threads = 0;  // 0: the physical core count, or 1 for graphs too small to share
  bool flash_attention = false;
  std::string backend = "cpu";  // "cpu", "cuda", "vulkan", "metal" (lib/ resolves "auto")
  int device = 0;                // index among that backend's devices
  // Run these networks on the CPU even when the backend is a GPU: their weights and compute
  // buffers then take no GPU memory (the text encoder runs once per prompt; the VAE once per image).
  bool text_encoder_on_cpu = false;
  bool vae_on_cpu = false;
  // Drop a network's pages of the mapped model file from resident memory while the others run
  // (the text encoder after each encoding, the UNet before the VAE decodes and the VAE before the
  // UNet runs): a run's peak then holds one large network, not all three, at the cost of mapping
  // the pages again from the page cache on their next use, and of interleaving q8_0 matrices
  // again (q8_gemm.h) where the CPU kernel uses them.
  bool release_idle_weights = false;
  // On a GPU: the most device memory the plan may use (0: the device's free memory), and the
  // image size it reserves compute buffers for (pixels; 0: the model's own size). The VAE decodes
  // latents of more than vae_tile_threshold pixels in tiles of vae_tile (latent pixels; lib/'s
  // rule), so its buffer is planned for one tile.
  size_t device_memory_limit = 0;
  int plan_height = 0, plan_width = 0;
  int vae_tile = 0, vae_tile_threshold = 0;
  // backend "auto" resolved to this one: a UNet that does not fit it runs on the CPU instead of failing.
  bool cpu_fallback = false;
};

struct TensorShape4 {
  int64_t n, c, h, w;  // NCHW, as the data is laid out
  int64_t numel() const { return n * c * h * w; }
};

struct ComponentMemory {
  std::string name;
  std::string backend;       // where this network computes ("cpu", "cuda", ...)
  size_t weight_bytes = 0;
  size_t mapped_bytes = 0;   // weights read in place from the memory-mapped file
  size_t packed_bytes = 0;   // weights in the CPU's repacking buffer
  size_t device_bytes = 0;   // weights copied into a backend buffer (GPU memory on a GPU)
  size_t compute_bytes = 0;  // the current cached graph's compute buffer
};

class Engine {
 public:
  Engine(const std::string& path, const EngineOptions& options);
  // The placement a load with these options would make, without loading any weight.
  static Placement plan(const std::string& path, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ids: [n, length] row-major -> last hidden state [n, length, hidden].
  std::vector<float> encode_text(const std::vector<int32_t>& ids, int64_t n, int64_t length);
  // latents NCHW, one timestep per image, text states [n, length, dim] -> noise prediction NCHW.
  std::vector<float> predict_noise(const float* latents, const TensorShape4& shape, const std::vector<float>& timesteps,
                                   const float* text_states, int64_t text_length, int64_t text_dim);
  // z NCHW (latent channels; already multiplied by 1/scaling_factor) -> image NCHW (3 channels, 8x).
  std::vector<float> decode_latents(const float* z, const TensorShape4& shape);
  // image NCHW in [-1, 1] -> moments NCHW (2 * latent channels: mean, then log-variance).
  std::vector<float> encode_image(const float* image, const TensorShape4& shape);
  // The safety checker's pixel_values [n, channels, size, size] -> image_embeds [n, projection_dim].
  // Throws NoSafetyChecker when the file has none.
  std::vector<float> embed_images(const float* pixel_values, int64_t n);

  const TextEncoderConfig& text_encoder_config() const { return text_config_; }
  const UNetConfig& unet_config() const { return unet_config_; }
  const VaeConfig& vae_config() const { return vae_config_; }
  // The safety checker's and feature extractor's configs, or null when the file has no checker.
  const SafetyCheckerConfigs* safety_checker_configs() const { return safety_configs_ ? &*safety_configs_ : nullptr; }
  // Its concept tables (empty without a checker).
  const ConceptTables& concept_tables() const { return concepts_; }
  // The VAE's pixels per latent (2 to the number of its down-sampling levels).
  int64_t vae_scale_factor() const;
  const TokenizerConfig& tokenizer_config() const { return tokenizer_config_; }
  const std::string& sentencepiece_model() const { return sentencepiece_; }
  // Metadata strings (configs as JSON text, source, file type) for the TS side.
  std::vector<std::pair<std::string, std::string>> metadata() const;
  // Memory per network as of the last graph change. Safe to call from any thread, also while a
  // computation runs on the model's thread (it reads a snapshot, never the live graphs).
  std::vector<ComponentMemory> memory() const;
  // The largest total of compute buffers held at once since the last reset (or load); any thread.
  size_t peak_compute_bytes() const;
  void reset_peak_compute_bytes();
  // Frees every cached graph and its compute buffer: an idle model then holds only its weights.
  // The next call of each network builds its graph and faults its buffer in again (measured on
  // the full-size q4_0 UNet, 2 threads: +28 ms at 64x64 px, +320 ms on a 1.84 s step at 256x256).
  void release_compute_buffers();
  int threads() const { return threads_; }
  // The backend the model runs on ("cpu", "cuda", ...).
  const std::string& backend_name() const { return backend_name_; }
  // Where each network was placed, and why (decided before the weights were loaded).
  const Placement& placement() const { return placement_; }

  // Makes the graph being computed stop at the next node; the call then throws Aborted.
  void request_abort() { abort_.store(true); }

 private:
  // Reads configs and creates the weight stores; with load, also places and loads the networks.
  Engine(const std::string& path, const EngineOptions& options, bool load);
  int threads_for(ggml_cgraph* graph) const;
  // (Re)builds the networks' layer structs from the weight stores: before loading, for the plan's
  // measurements, and after, when each weight's layout on its backend is known.
  void bind_networks();
  // The networks the file has: text encoder, UNet, VAE, then the safety checker where there is one.
  std::vector<Network*> networks() const;
  // Reads the safety checker's configs and, where the file has one, makes its network.
  void create_safety_checker(const FileWeightPlan& plan);
  // Frees the layer structs and the networks (weights and graphs), before the backends.
  void free_networks();
  // The largest latent side an image of limits::kImageSideMax gives.
  int64_t max_latent_side() const;
  size_t current_compute_bytes() const;
  std::vector<ComponentMemory> measure_memory() const;
  void update_memory_snapshot();
  // The compute device and the plan for it; backend_name_ is set.
  Placement make_placement(ggml_backend_dev_t device);
  ggml_backend_t cpu_backend();
  std::string backend_name_of(ggml_backend_t backend) const;
  void release_idle(Network& network);
  void make_resident(Network& network);
  void free_other_graphs(const Network& keep);
  std::vector<float> run(Network& network, size_t kind, const std::string& key, const std::function<void(CachedGraph&)>& build,
                         const std::vector<std::pair<const void*, size_t>>& inputs);
  // The graph builders, shared by run() and by the plan's measurements.
  void build_text(CachedGraph& g, int64_t n, int64_t length, const nn::Options& options) const;
  void build_unet(CachedGraph& g, const TensorShape4& s, int64_t text_length, const nn::Options& options) const;
  void build_decode(CachedGraph& g, const TensorShape4& s, const nn::Options& options) const;
  void build_safety_checker(CachedGraph& g, int64_t n, const nn::Options& options) const;

  EngineOptions options_;
  int threads_ = 1;
  nn::Options nn_options_;
  // nn_options_ for a network computed on `backend`.
  nn::Options nn_options_for(ggml_backend_t backend) const;
  std::unique_ptr<ModelFile> file_;
  ggml_backend_t backend_ = nullptr;
  // A CPU backend of its own for networks placed on the CPU beside a GPU backend (else null).
  ggml_backend_t cpu_backend_ = nullptr;
  mutable std::mutex memory_mutex_;  // guards the two fields below
  std::vector<ComponentMemory> memory_snapshot_;
  size_t peak_compute_bytes_ = 0;
  bool cpu_ = true;
  std::string backend_name_ = "cpu";
  Placement placement_;
  TextEncoderConfig text_config_;
  UNetConfig unet_config_;
  VaeConfig vae_config_;
  TokenizerConfig tokenizer_config_;
  std::string sentencepiece_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::optional<SafetyCheckerConfigs> safety_configs_;
  ConceptTables concepts_;
  std::unique_ptr<Network> text_, unet_net_, vae_net_, safety_net_;
  std::unique_ptr<TextEncoder> text_encoder_;
  std::unique_ptr<UNet> unet_;
  std::unique_ptr<Vae> vae_;
  std::unique_ptr<SafetyChecker> safety_checker_;
  std::atomic<bool> abort_{false};
};

}  // namespace jsd
