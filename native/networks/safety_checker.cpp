#include "networks/safety_checker.h"

#include "model/model_file.h"
#include "runtime/error.h"

namespace jsd {

namespace {

// diffusers' checker has 17 concepts and 3 special-care ones; this only bounds a hostile file.
constexpr int64_t kConceptsMax = 4096;

std::vector<float> host_copy(const ModelFile& file, const ggml_tensor* t) {
  std::vector<float> out(ggml_nelements(t));
  file.read_tensor(ggml_get_name(t), out.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace

SafetyChecker::SafetyChecker(WeightStore& w, const SafetyCheckerConfig& c) : config_(c) {
  const int64_t h = c.hidden_size;
  class_embedding_ = w.require("embeddings.class_embedding", {h}, true);
  patch_embedding_ = w.conv("embeddings.patch_embedding", c.patch_size, c.num_channels, h, /*bias=*/false);
  position_embedding_ = w.rows("embeddings.position_embedding.weight", {h, c.num_positions()}, true);
  pre_layrnorm_ = w.norm("pre_layrnorm", h);
  encoder_ = ClipEncoder::bind(w, "encoder.layers.", c.num_hidden_layers, h, c.intermediate_size);
  encoder_.heads = c.num_attention_heads;
  encoder_.layer_norm_eps = c.layer_norm_eps;
  encoder_.quick_gelu = true;
  encoder_.causal = false;
  post_layernorm_ = w.norm("post_layernorm", h);
  visual_projection_ = w.linear("visual_projection", h, c.projection_dim, /*bias=*/false);
  // The counts are the tables' own: the config does not give them.
  auto table = [&](const char* embeds, const char* weights, ggml_tensor** e, ggml_tensor** t) {
    const int64_t count = w.extent(embeds, 1);
    if (count < 1 || count > kConceptsMax) {
      throw Error(ErrorCode::BadModel, std::string("the safety checker's '") + embeds + "' holds " + std::to_string(count) + " rows, outside [1, " +
                                           std::to_string(kConceptsMax) + "]");
    }
    *e = w.require(embeds, {c.projection_dim, count}, true);
    *t = w.require(weights, {count}, true);
  };
  table("concept_embeds", "concept_embeds_weights", &concept_embeds_, &concept_weights_);
  table("special_care_embeds", "special_care_embeds_weights", &special_care_embeds_, &special_care_weights_);
  w.check_all_used();
}

ggml_tensor* SafetyChecker::build(ggml_context* ctx, ggml_tensor* pixel_values, const nn::Options& options) const {
  const int64_t n = pixel_values->ne[3];
  const int64_t h = config_.hidden_size;
  ggml_tensor* x = nn::conv2d(ctx, pixel_values, patch_embedding_, config_.patch_size, 0);  // [side, side, hidden, N]
  x = nn::image_to_sequence(ctx, x);                                                       // [hidden, patches, N], row by row
  ggml_tensor* cls = ggml_repeat_4d(ctx, class_embedding_, h, 1, n, 1);
  x = ggml_concat(ctx, cls, x, 1);  // [hidden, positions, N], the class token first
  x = ggml_add(ctx, x, position_embedding_);
  x = nn::layer_norm(ctx, x, pre_layrnorm_, config_.layer_norm_eps);
  x = encoder_.build(ctx, x, options);
  // The pooled output: each image's class token, after post_layernorm.
  ggml_tensor* pooled = ggml_cont(ctx, ggml_view_2d(ctx, x, h, n, x->nb[2], 0));
  pooled = nn::layer_norm(ctx, pooled, post_layernorm_, config_.layer_norm_eps);
  return nn::linear(ctx, pooled, visual_projection_);
}

ConceptTables SafetyChecker::read_concepts(const ModelFile& file) const {
  ConceptTables t;
  t.concepts = concept_weights_->ne[0];
  t.special_care = special_care_weights_->ne[0];
  t.concept_embeds = host_copy(file, concept_embeds_);
  t.concept_weights = host_copy(file, concept_weights_);
  t.special_care_embeds = host_copy(file, special_care_embeds_);
  t.special_care_weights = host_copy(file, special_care_weights_);
  return t;
}

}  // namespace jsd
