#include "model/config.h"

#include <cmath>

#include "model/model_file.h"
#include "model/model_keys.h"
#include "runtime/error.h"

namespace jsd {

namespace {

// Config values become tensor sizes; bound them so a hostile file cannot ask for absurd graphs.
int bounded(const ModelFile& file, const std::string& key, int lo, int hi) {
  const uint32_t v = file.u32(key);
  if (v < static_cast<uint32_t>(lo) || v > static_cast<uint32_t>(hi)) {
    throw Error(ErrorCode::BadModel, "metadata '" + key + "' = " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "]");
  }
  return static_cast<int>(v);
}

std::vector<int> bounded_array(const ModelFile& file, const std::string& key, int lo, int hi) {
  std::vector<int> out;
  for (uint32_t v : file.u32_array(key)) {
    if (v < static_cast<uint32_t>(lo) || v > static_cast<uint32_t>(hi)) {
      throw Error(ErrorCode::BadModel, "metadata '" + key + "' holds " + std::to_string(v) + ", outside [" + std::to_string(lo) + ", " +
                                           std::to_string(hi) + "]");
    }
    out.push_back(static_cast<int>(v));
  }
  return out;
}

float positive(const ModelFile& file, const std::string& key) {
  const float v = file.f32(key);
  if (!(v > 0.0f && v < 1.0f)) throw Error(ErrorCode::BadModel, "metadata '" + key + "' must be in (0, 1)");
  return v;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::BadModel, "inconsistent model config: " + what);
}

}  // namespace

TextEncoderConfig read_text_encoder_config(const ModelFile& file) {
  TextEncoderConfig c;
  c.vocab_size = bounded(file, keys::text_encoder::vocab_size, 3, 1 << 20);
  c.hidden_size = bounded(file, keys::text_encoder::hidden_size, 1, 1 << 14);
  c.intermediate_size = bounded(file, keys::text_encoder::intermediate_size, 1, 1 << 16);
  c.num_hidden_layers = bounded(file, keys::text_encoder::num_hidden_layers, 1, 256);
  c.num_attention_heads = bounded(file, keys::text_encoder::num_attention_heads, 1, 256);
  c.max_position_embeddings = bounded(file, keys::text_encoder::max_position_embeddings, 2, 4096);
  c.layer_norm_eps = positive(file, keys::text_encoder::layer_norm_eps);
  const std::string act = file.str(keys::text_encoder::hidden_act);
  require(act == "quick_gelu" || act == "gelu", "text encoder hidden_act '" + act + "' is not supported");
  c.quick_gelu = act == "quick_gelu";
  require(c.hidden_size % c.num_attention_heads == 0, "text encoder hidden_size is not a multiple of num_attention_heads");
  return c;
}

UNetConfig read_unet_config(const ModelFile& file) {
  UNetConfig c;
  c.in_channels = bounded(file, keys::unet::in_channels, 1, 64);
  c.out_channels = bounded(file, keys::unet::out_channels, 1, 64);
  c.layers_per_block = bounded(file, keys::unet::layers_per_block, 1, 16);
  c.cross_attention_dim = bounded(file, keys::unet::cross_attention_dim, 1, 1 << 14);
  c.norm_num_groups = bounded(file, keys::unet::norm_num_groups, 1, 1024);
  c.sample_size = bounded(file, keys::unet::sample_size, 1, 4096);
  c.freq_shift = bounded(file, keys::unet::freq_shift, 0, 1);
  c.norm_eps = positive(file, keys::unet::norm_eps);
  c.flip_sin_to_cos = file.boolean(keys::unet::flip_sin_to_cos);
  c.block_out_channels = bounded_array(file, keys::unet::block_out_channels, 1, 1 << 14);
  c.attention_heads = bounded_array(file, keys::unet::attention_head_dim, 1, 1024);
  const auto down = file.str_array(keys::unet::down_block_types);
  const auto up = file.str_array(keys::unet::up_block_types);
  const size_t levels = c.block_out_channels.size();
  require(levels >= 1 && levels <= 8, "the UNet needs 1 to 8 levels");
  require(down.size() == levels && up.size() == levels, "down/up block type lists must have one entry per level");
  require(c.attention_heads.size() == levels, "attention_head_dim must have one entry per level");
  for (size_t i = 0; i < levels; ++i) {
    require(down[i] == "CrossAttnDownBlock2D" || down[i] == "DownBlock2D", "unsupported down block type '" + down[i] + "'");
    require(up[i] == "CrossAttnUpBlock2D" || up[i] == "UpBlock2D", "unsupported up block type '" + up[i] + "'");
    c.down_has_attention.push_back(down[i] == "CrossAttnDownBlock2D");
    c.up_has_attention.push_back(up[i] == "CrossAttnUpBlock2D");
    require(c.block_out_channels[i] % c.norm_num_groups == 0, "block_out_channels must be multiples of norm_num_groups");
    require(c.block_out_channels[i] % c.attention_heads[i] == 0, "block_out_channels must be multiples of the head count");
  }
  return c;
}

VaeConfig read_vae_config(const ModelFile& file) {
  VaeConfig c;
  c.in_channels = bounded(file, keys::vae::in_channels, 1, 64);
  c.out_channels = bounded(file, keys::vae::out_channels, 1, 64);
  c.latent_channels = bounded(file, keys::vae::latent_channels, 1, 64);
  c.layers_per_block = bounded(file, keys::vae::layers_per_block, 1, 16);
  c.norm_num_groups = bounded(file, keys::vae::norm_num_groups, 1, 1024);
  c.scaling_factor = file.f32(keys::vae::scaling_factor);
  require(c.scaling_factor > 0.0f && c.scaling_factor < 100.0f, "vae scaling_factor out of range");
  c.block_out_channels = bounded_array(file, keys::vae::block_out_channels, 1, 1 << 14);
  require(!c.block_out_channels.empty() && c.block_out_channels.size() <= 8, "the VAE needs 1 to 8 levels");
  for (int ch : c.block_out_channels) require(ch % c.norm_num_groups == 0, "vae block_out_channels must be multiples of norm_num_groups");
  return c;
}

TokenizerConfig read_tokenizer_config(const ModelFile& file) {
  TokenizerConfig c;
  c.pad_id = file.i32(keys::tokenizer::pad_id);
  c.eos_id = file.i32(keys::tokenizer::eos_id);
  c.unk_id = file.i32(keys::tokenizer::unk_id);
  c.do_lower_case = file.boolean(keys::tokenizer::do_lower_case);
  c.model_max_length = bounded(file, keys::tokenizer::model_max_length, 2, 4096);
  return c;
}

namespace {

// The tower's input side: a checkpoint's is 224; this keeps a batch of pixel_values far from overflow.
constexpr int kTowerImageSideMax = 1024;
// Patches per image: 256 in every CLIP checkpoint the checker uses; attention is quadratic in them.
constexpr int kTowerPatchesMax = 4096;

SafetyCheckerConfig read_checker(const ModelFile& file) {
  namespace k = keys::safety_checker;
  SafetyCheckerConfig c;
  c.hidden_size = bounded(file, k::hidden_size, 1, 1 << 14);
  c.intermediate_size = bounded(file, k::intermediate_size, 1, 1 << 16);
  c.num_hidden_layers = bounded(file, k::num_hidden_layers, 1, 256);
  c.num_attention_heads = bounded(file, k::num_attention_heads, 1, 256);
  c.image_size = bounded(file, k::image_size, 1, kTowerImageSideMax);
  c.patch_size = bounded(file, k::patch_size, 1, c.image_size);
  // The feature extractor's mean and std are per RGB channel.
  c.num_channels = bounded(file, k::num_channels, 3, 3);
  c.projection_dim = bounded(file, k::projection_dim, 1, 1 << 14);
  c.layer_norm_eps = positive(file, k::layer_norm_eps);
  const std::string act = file.str(k::hidden_act);
  require(act == "quick_gelu", "safety checker hidden_act '" + act + "' is not supported (CLIP's vision tower uses quick_gelu)");
  require(c.hidden_size % c.num_attention_heads == 0, "safety checker hidden_size is not a multiple of num_attention_heads");
  require(c.image_size % c.patch_size == 0, "safety checker image_size is not a multiple of patch_size");
  require(c.patches_per_side() * c.patches_per_side() <= kTowerPatchesMax,
          "the safety checker's image_size / patch_size gives more than " + std::to_string(kTowerPatchesMax) + " patches");
  return c;
}

std::array<float, 3> rgb_values(const ModelFile& file, const std::string& key, bool positive_only) {
  const std::vector<float> v = file.f32_array(key);
  require(v.size() == 3, "'" + key + "' must hold 3 values (R, G, B)");
  for (float x : v) require(std::isfinite(x) && (!positive_only || x > 0.0f), "'" + key + "' holds " + std::to_string(x));
  return {v[0], v[1], v[2]};
}

FeatureExtractorConfig read_feature_extractor(const ModelFile& file) {
  namespace k = keys::feature_extractor;
  FeatureExtractorConfig c;
  c.size = bounded(file, k::size, 1, kTowerImageSideMax);
  c.crop_size = bounded(file, k::crop_size, 1, kTowerImageSideMax);
  c.do_resize = file.boolean(k::do_resize);
  c.do_center_crop = file.boolean(k::do_center_crop);
  c.do_normalize = file.boolean(k::do_normalize);
  c.resample = bounded(file, k::resample, 0, 5);  // PIL's filters: NEAREST 0 to HAMMING 5
  c.image_mean = rgb_values(file, k::image_mean, false);
  c.image_std = rgb_values(file, k::image_std, true);
  return c;
}

}  // namespace

std::optional<SafetyCheckerConfigs> read_safety_checker_configs(const ModelFile& file) {
  std::vector<std::string> present, missing;
  for (const char* key : keys::safety_checker::kFields) (file.has(key) ? present : missing).emplace_back(key);
  for (const char* key : keys::feature_extractor::kFields) (file.has(key) ? present : missing).emplace_back(key);
  if (present.empty()) return std::nullopt;
  if (!missing.empty()) {
    throw Error(ErrorCode::BadModel, "the model file has part of a safety checker: it holds '" + present.front() + "' but lacks '" + missing.front() + "'" +
                                         (missing.size() > 1 ? " and " + std::to_string(missing.size() - 1) + " more" : ""));
  }
  SafetyCheckerConfigs c{read_checker(file), read_feature_extractor(file)};
  require(c.feature_extractor.crop_size == c.checker.image_size, "the feature extractor's crop_size is not the safety checker's image_size");
  return c;
}

}  // namespace jsd
