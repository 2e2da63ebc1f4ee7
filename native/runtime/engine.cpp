#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <set>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "runtime/compute_buffer.h"
#include "kernels/cpu_attention.h"
#include "kernels/cpu_conv.h"
#include "runtime/error.h"
#include "runtime/limits.h"
#include "ggml-alloc.h"
#include "runtime/cpu_backend.h"
#include "runtime/devices.h"
#include "runtime/log.h"
#include "model/model_file.h"
#include "model/model_keys.h"
#include "runtime/network.h"
#include "tools/profile.h"
#include "runtime/system_info.h"
#include "networks/text_encoder.h"
#include "networks/unet.h"
#include "networks/vae.h"
#include "model/weights.h"

namespace jsd {

namespace {

void check_shape(const TensorShape4& s, int64_t channels, int64_t max_side, const char* what) {
  if (s.n < 1 || s.n > limits::kBatchMax) {
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": batch must be 1 to " + std::to_string(limits::kBatchMax));
  }
  if (s.c != channels) {
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": expected " + std::to_string(channels) + " channels, got " + std::to_string(s.c));
  }
  if (s.h < 1 || s.w < 1 || s.h > max_side || s.w > max_side) {
    throw Error(ErrorCode::InvalidArgument, std::string(what) + ": height and width must be 1 to " + std::to_string(max_side));
  }
}

}  // namespace

namespace {

// Compute buffers are large and change with every switch between networks; glibc keeps freed
// blocks of that size on its heap (its mmap threshold rises after the first free), so a process
// would grow across runs without this.
void return_freed_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Matrix-product work of a graph, in FLOPs.
double graph_flops(ggml_cgraph* graph) {
  double flops = 0;
  for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
    const ggml_tensor* t = ggml_graph_node(graph, i);
    if (t->op == GGML_OP_MUL_MAT) flops += 2.0 * static_cast<double>(t->src[0]->ne[0]) * static_cast<double>(ggml_nelements(t));
  }
  return flops;
}

// Below this much work per graph, extra threads cost more in synchronisation (ggml's threads
// meet at a barrier after every node) than they save, badly so on a busy machine.
constexpr double kMultiThreadFlops = 2e9;

}  // namespace

namespace {

void set_up_cpu_backend(ggml_backend_t backend, int threads, std::atomic<bool>* abort) {
  set_cpu_threads(backend, threads);
  set_cpu_abort_callback(
      backend, [](void* flag) { return static_cast<std::atomic<bool>*>(flag)->load(); }, abort);
}

}  // namespace

int Engine::threads_for(ggml_cgraph* graph) const {
  if (options_.threads > 0) return options_.threads;  // the caller's explicit choice
  return graph_flops(graph) >= kMultiThreadFlops ? threads_ : 1;
}

Engine::Engine(const std::string& path, const EngineOptions& options) : Engine(path, options, true) {}

Placement Engine::plan(const std::string& path, const EngineOptions& options) { return Engine(path, options, false).placement_; }

Engine::Engine(const std::string& path, const EngineOptions& options, bool load) : options_(options) {
  install_ggml_logger();
  threads_ = options.threads > 0 ? options.threads : physical_core_count();
  nn_options_.flash_attention = options.flash_attention;
  file_ = std::make_unique<ModelFile>(path);

  // Configs and weight shapes are all checked before anything large is allocated.
  text_config_ = read_text_encoder_config(*file_);
  unet_config_ = read_unet_config(*file_);
  vae_config_ = read_vae_config(*file_);
  tokenizer_config_ = read_tokenizer_config(*file_);
  sentencepiece_ = file_->bytes(keys::tokenizer::sentencepiece);
  for (const auto& [key, id] : {std::pair<const char*, int>{keys::tokenizer::pad_id, tokenizer_config_.pad_id},
                                {keys::tokenizer::eos_id, tokenizer_config_.eos_id},
                                {keys::tokenizer::unk_id, tokenizer_config_.unk_id}}) {
    if (id < 0 || id >= text_config_.vocab_size) {
      throw Error(ErrorCode::BadModel, std::string("metadata '") + key + "' = " + std::to_string(id) + " is outside the text encoder's vocabulary [0, " +
                                           std::to_string(text_config_.vocab_size) + ")");
    }
  }
  if (unet_config_.cross_attention_dim != text_config_.hidden_size) {
    throw Error(ErrorCode::BadModel, "the UNet's cross_attention_dim does not match the text encoder's hidden size");
  }
  if (unet_config_.in_channels != vae_config_.latent_channels) {
    throw Error(ErrorCode::BadModel, "the UNet's in_channels does not match the VAE's latent_channels");
  }
  for (const char* key : {keys::kModelIndex, keys::text_encoder::config, keys::unet::config, keys::vae::config, keys::scheduler::config,
                          keys::tokenizer::config, keys::safety_checker::config, keys::feature_extractor::config, keys::kSource, keys::kFileType,
                          keys::kConverter, keys::kName, keys::kDataSha256}) {
    if (file_->has(key)) metadata_.emplace_back(key, file_->str(key));
  }
  const FileWeightPlan weight_plan = FileWeightPlan::read(*file_);
  text_ = std::make_unique<Network>("text_encoder", std::make_unique<WeightStore>(*file_, "te.", weight_plan), 1);
  unet_net_ = std::make_unique<Network>("unet", std::make_unique<WeightStore>(*file_, "unet.", weight_plan), 1);
  vae_net_ = std::make_unique<Network>("vae", std::make_unique<WeightStore>(*file_, "vae.", weight_plan), 2);
  create_safety_checker(weight_plan);
  bind_networks();
  if (safety_checker_) concepts_ = safety_checker_->read_concepts(*file_);

  ggml_backend_dev_t device = choose_device(options.backend, options.device, &backend_name_);
  // GPU backends set their devices up on first use, and ggml-vulkan's is not safe to race: two
  // models loading at once (each on its own thread) take turns here.
  static std::mutex device_setup;
  std::unique_lock<std::mutex> setup(device_setup);
  placement_ = make_placement(device);
  if (!load) return;

  try {
    if (placement_.gpu) {
      backend_ = ggml_backend_dev_init(device, nullptr);
      if (backend_ == nullptr) throw Error(ErrorCode::Internal, "cannot initialise ggml's " + backend_name_ + " backend");
    } else {
      backend_name_ = "cpu";
      backend_ = init_cpu_backend();
    }
    setup.unlock();
    cpu_ = is_cpu_backend(backend_);
    if (cpu_) set_up_cpu_backend(backend_, threads_, &abort_);
    const std::vector<Network*> all = networks();
    for (size_t i = 0; i < all.size(); ++i) {
      all[i]->backend = placement_.networks[i].on_cpu ? cpu_backend() : backend_;
      all[i]->weights->load(*file_, all[i]->backend, threads_);
    }
    bind_networks();
  } catch (...) {
    free_networks();
    if (cpu_backend_) ggml_backend_free(cpu_backend_);
    if (backend_) ggml_backend_free(backend_);
    throw;
  }
  update_memory_snapshot();
}

int64_t Engine::vae_scale_factor() const { return int64_t{1} << (vae_config_.block_out_channels.size() - 1); }

int64_t Engine::max_latent_side() const { return limits::kImageSideMax / vae_scale_factor(); }

void Engine::bind_networks() {
  text_encoder_ = std::make_unique<TextEncoder>(*text_->weights, text_config_);
  unet_ = std::make_unique<UNet>(*unet_net_->weights, unet_config_);
  vae_ = std::make_unique<Vae>(*vae_net_->weights, vae_config_, true, true);
  if (safety_net_) safety_checker_ = std::make_unique<SafetyChecker>(*safety_net_->weights, safety_configs_->checker);
}

std::vector<Network*> Engine::networks() const {
  std::vector<Network*> out{text_.get(), unet_net_.get(), vae_net_.get()};
  if (safety_net_) out.push_back(safety_net_.get());
  return out;
}

void Engine::free_networks() {
  text_encoder_.reset();
  unet_.reset();
  vae_.reset();
  safety_checker_.reset();
  text_.reset();
  unet_net_.reset();
  vae_net_.reset();
  safety_net_.reset();
}

nn::Options Engine::nn_options_for(ggml_backend_t backend) const {
  nn::Options options = nn_options_;
  options.cpu_attention = is_cpu_backend(backend) && cpu_attention_available();
  options.cpu_conv = is_cpu_backend(backend) && cpu_conv_available();
  options.cpu_fused = is_cpu_backend(backend);
  options.threads = threads_;
  return options;
}

ggml_backend_t Engine::cpu_backend() {
  if (cpu_) return backend_;
  if (cpu_backend_ == nullptr) {
    cpu_backend_ = init_cpu_backend();
    set_up_cpu_backend(cpu_backend_, threads_, &abort_);
  }
  return cpu_backend_;
}

std::string Engine::backend_name_of(ggml_backend_t backend) const { return backend == backend_ ? backend_name_ : "cpu"; }

Engine::~Engine() {
  free_networks();  // graphs and weights before the backends they were allocated on
  if (cpu_backend_) ggml_backend_free(cpu_backend_);
  if (backend_) ggml_backend_free(backend_);
}

std::vector<float> Engine::run(Network& network, size_t kind, const std::string& key, const std::function<void(CachedGraph&)>& build,
                               const std::vector<std::pair<const void*, size_t>>& inputs) {
  abort_.store(false);
  ggml_backend_t backend = network.backend;
  std::unique_ptr<CachedGraph>& slot = network.graphs[kind];
  if (!slot || slot->key != key) {
    slot.reset();  // free the old compute buffer before allocating the new one
    return_freed_memory();
    std::unique_ptr<CachedGraph> graph = build_graph(key, build);
    graph->allocr = ggml_gallocr_new(is_cpu_backend(backend) ? cpu_compute_buffer_type() : ggml_backend_get_default_buffer_type(backend));
    LogCapture capture;
    if (!ggml_gallocr_alloc_graph(graph->allocr, graph->graph)) {
      throw Error(ErrorCode::OutOfMemory, "cannot allocate the compute buffer for " + key + ": " + capture.last_error("out of memory"));
    }
    graph->threads = threads_for(graph->graph);
    slot = std::move(graph);
  }
  update_memory_snapshot();  // also after the other networks' graphs were freed for this one
  CachedGraph& g = *slot;
  if (is_cpu_backend(backend)) set_cpu_threads(backend, g.threads);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (ggml_nbytes(g.inputs[i]) != inputs[i].second) throw Error(ErrorCode::Internal, "input size mismatch for " + key);
    ggml_backend_tensor_set(g.inputs[i], inputs[i].first, 0, inputs[i].second);
  }
  const ggml_status status = profiling_enabled() ? compute_profiled(backend, g.graph, key.c_str()) : ggml_backend_graph_compute(backend, g.graph);
  if (status == GGML_STATUS_ABORTED) throw Error(ErrorCode::Aborted, "the computation was aborted");
  if (status != GGML_STATUS_SUCCESS) throw Error(ErrorCode::Internal, "ggml could not compute " + key);
  std::vector<float> out(ggml_nelements(g.output));
  ggml_backend_tensor_get(g.output, out.data(), 0, out.size() * sizeof(float));
  return out;
}

void Engine::build_text(CachedGraph& g, int64_t n, int64_t length, const nn::Options& options) const {
  ggml_tensor* input = ggml_new_tensor_2d(g.ctx, GGML_TYPE_I32, length, n);
  ggml_set_input(input);
  g.inputs = {input};
  g.output = text_encoder_->build(g.ctx, input, options);
  ggml_set_output(g.output);
}

void Engine::build_unet(CachedGraph& g, const TensorShape4& s, int64_t text_length, const nn::Options& options) const {
  const int64_t temb_dim = unet_config_.block_out_channels[0];
  ggml_tensor* sample = ggml_new_tensor_4d(g.ctx, GGML_TYPE_F32, s.w, s.h, s.c, s.n);
  ggml_tensor* t = ggml_new_tensor_2d(g.ctx, GGML_TYPE_F32, temb_dim, s.n);
  ggml_tensor* context = ggml_new_tensor_3d(g.ctx, GGML_TYPE_F32, unet_config_.cross_attention_dim, text_length, s.n);
  for (ggml_tensor* in : {sample, t, context}) ggml_set_input(in);
  g.inputs = {sample, t, context};
  g.output = unet_->build(g.ctx, sample, t, context, options);
  ggml_set_output(g.output);
}

void Engine::build_decode(CachedGraph& g, const TensorShape4& s, const nn::Options& options) const {
  ggml_tensor* input = ggml_new_tensor_4d(g.ctx, GGML_TYPE_F32, s.w, s.h, s.c, s.n);
  ggml_set_input(input);
  g.inputs = {input};
  g.output = vae_->decode(g.ctx, input, options);
  ggml_set_output(g.output);
}

std::vector<float> Engine::encode_text(const std::vector<int32_t>& ids, int64_t n, int64_t length) {
  if (n < 1 || n > limits::kBatchMax) throw Error(ErrorCode::InvalidArgument, "encodeText: batch must be 1 to " + std::to_string(limits::kBatchMax));
  if (length < 1 || length > text_config_.max_position_embeddings) {
    throw Error(ErrorCode::InvalidArgument, "encodeText: sequences must hold 1 to " + std::to_string(text_config_.max_position_embeddings) + " ids");
  }
  if (static_cast<int64_t>(ids.size()) != n * length) throw Error(ErrorCode::InvalidArgument, "encodeText: ids do not fill [batch, length]");
  for (int32_t id : ids) {
    if (id < 0 || id >= text_config_.vocab_size) {
      throw Error(ErrorCode::InvalidArgument, "encodeText: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                  std::to_string(text_config_.vocab_size) + ")");
    }
  }
  const std::string key = "text_encoder " + std::to_string(n) + "x" + std::to_string(length);
  text_->weights->make_resident(*file_, threads_);
  const nn::Options options = nn_options_for(text_->backend);
  std::vector<float> states = run(*text_, 0, key, [&](CachedGraph& g) { build_text(g, n, length, options); }, {{ids.data(), ids.size() * sizeof(int32_t)}});
  if (options_.release_idle_weights) text_->weights->release_resident_pages();
  return states;
}

void Engine::release_idle(Network& network) {
  if (!options_.release_idle_weights || !network.resident) return;
  network.weights->release_resident_pages();
  network.resident = false;
}

void Engine::make_resident(Network& network) {
  network.weights->make_resident(*file_, threads_);
  network.resident = true;
}

// Only one large compute buffer at a time: the UNet's, the VAE's and the safety checker's are never
// needed together, and holding two would add hundreds of MB to the peak of a txt2img run.
void Engine::free_other_graphs(const Network& keep) {
  for (Network* other : {unet_net_.get(), vae_net_.get(), safety_net_.get()}) {
    if (other == nullptr || other == &keep || !other->graphs_built()) continue;
    other->release_graphs();
    return_freed_memory();
  }
}

std::vector<float> Engine::predict_noise(const float* latents, const TensorShape4& s, const std::vector<float>& timesteps,
                                         const float* text_states, int64_t text_length, int64_t text_dim) {
  check_shape(s, unet_config_.in_channels, max_latent_side(), "predictNoise");
  if (static_cast<int64_t>(timesteps.size()) != s.n) throw Error(ErrorCode::InvalidArgument, "predictNoise: give one timestep per latent");
  if (text_dim != unet_config_.cross_attention_dim) {
    throw Error(ErrorCode::InvalidArgument, "predictNoise: text states must be " + std::to_string(unet_config_.cross_attention_dim) + " wide");
  }
  // A long prompt is encoded in chunks of the tokenizer's length, at most kPromptChunksMax of them.
  const int64_t max_text = int64_t{tokenizer_config_.model_max_length} * limits::kPromptChunksMax;
  if (text_length < 1 || text_length > max_text) {
    throw Error(ErrorCode::InvalidArgument, "predictNoise: text states must have 1 to " + std::to_string(max_text) + " positions");
  }
  free_other_graphs(*unet_net_);
  release_idle(*vae_net_);
  make_resident(*unet_net_);
  const std::vector<float> temb = unet_->timestep_embedding(timesteps);
  const std::string key = "unet " + std::to_string(s.n) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w) + " text " + std::to_string(text_length);
  nn::Options options = nn_options_for(unet_net_->backend);
  // With quantized weights the UNet's error is the weights' (q8_0: about 20 times what bf16
  // attention adds, docs/benchmark.md), so its attention may take the bf16 tiles where the CPU has them.
  options.cpu_attention_bf16 = unet_->quantized();
  return run(*unet_net_, 0, key, [&](CachedGraph& g) { build_unet(g, s, text_length, options); },
             {{latents, s.numel() * sizeof(float)},
              {temb.data(), temb.size() * sizeof(float)},
              {text_states, static_cast<size_t>(s.n * text_length * text_dim) * sizeof(float)}});
}

namespace {

// The VAE's graph kinds (Network::graphs).
constexpr size_t kDecode = 0;
constexpr size_t kEncode = 1;

}  // namespace

std::vector<float> Engine::decode_latents(const float* z, const TensorShape4& s) {
  check_shape(s, vae_config_.latent_channels, max_latent_side(), "decodeLatents");
  free_other_graphs(*vae_net_);
  release_idle(*unet_net_);
  make_resident(*vae_net_);
  const std::string key = "vae decode " + std::to_string(s.n) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
  const nn::Options options = nn_options_for(vae_net_->backend);
  return run(*vae_net_, kDecode, key, [&](CachedGraph& g) { build_decode(g, s, options); }, {{z, s.numel() * sizeof(float)}});
}

std::vector<float> Engine::encode_image(const float* image, const TensorShape4& s) {
  check_shape(s, vae_config_.in_channels, limits::kImageSideMax, "encodeImage");
  const int64_t factor = vae_scale_factor();
  if (s.h % factor != 0 || s.w % factor != 0) {
    throw Error(ErrorCode::InvalidArgument, "encodeImage: height and width must be multiples of " + std::to_string(factor));
  }
  free_other_graphs(*vae_net_);
  vae_net_->graphs[kDecode].reset();  // see free_other_graphs: one large buffer at a time
  release_idle(*unet_net_);
  make_resident(*vae_net_);
  const std::string key = "vae encode " + std::to_string(s.n) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
  const nn::Options options = nn_options_for(vae_net_->backend);
  return run(*vae_net_, kEncode, key,
             [&](CachedGraph& g) {
               ggml_tensor* input = ggml_new_tensor_4d(g.ctx, GGML_TYPE_F32, s.w, s.h, s.c, s.n);
               ggml_set_input(input);
               g.inputs = {input};
               g.output = vae_->encode(g.ctx, input, options);
               ggml_set_output(g.output);
             },
             {{image, s.numel() * sizeof(float)}});
}

std::vector<std::pair<std::string, std::string>> Engine::metadata() const { return metadata_; }

void Engine::release_compute_buffers() {
  for (Network* n : networks()) n->release_graphs();
  return_freed_memory();
  update_memory_snapshot();
}

}  // namespace jsd
