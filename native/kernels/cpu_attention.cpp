#include "kernels/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "kernels/cpu_attention_isa.h"
#include "kernels/custom_op_params.h"
#include "kernels/kernel_choice.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSD_FUSED_ATTENTION 1
#endif

namespace jsd {

#if JSD_FUSED_ATTENTION

namespace {

// The ops' parameters, kept in the node (custom_op_params.h): the pack op and the attention op
// carry the same ones (the pack op ignores the scale).
struct Params {
  int heads = 0;
  float scale = 0.0f;
  bool bf16 = false;  // the op may run the bf16 kernel
};

void set_params(ggml_tensor* op, const Params& p) { set_custom_params(op, {p.heads, float_param(p.scale), p.bf16 ? 1 : 0}); }

Params params_of(const ggml_tensor* op) { return {custom_param(op, 0), param_float(custom_param(op, 1)), custom_param(op, 2) != 0}; }

// Row 0 of head h in image n: of q and the output, [C, L, N] with heads side by side in C;
// of k and v, [d, L, heads, N].
const float* head_rows(const ggml_tensor* t, int64_t n, int64_t h, int64_t d) {
  return reinterpret_cast<const float*>(static_cast<const char*>(t->data) + n * t->nb[2]) + h * d;
}
const float* head_keys(const ggml_tensor* t, int64_t n, int64_t h) {
  return reinterpret_cast<const float*>(static_cast<const char*>(t->data) + n * t->nb[3] + h * t->nb[2]);
}

// The ISA kernels this build has, best first. Each reports null where the CPU lacks its
// instructions.
const AttentionKernel* (*const candidates[])() = {attention_kernel_avx512, attention_kernel_avx2};
// Kernels that change the results beyond f32 rounding: for ops that allow it, or by name.
const AttentionKernel* (*const options[])() = {attention_kernel_amx_bf16};

// JSD_ATTENTION_KERNEL when it names a kernel: that one then runs every op.
const char* forced_kernel_name() { return forced_name("JSD_ATTENTION_KERNEL"); }

// The kernel of ops that must stay f32: the first candidate this CPU runs, or the kernel
// JSD_ATTENTION_KERNEL names (options included); none under JSD_NO_FUSED_ATTENTION=1 (ggml's ops
// then run).
const AttentionKernel* chosen_kernel() {
  static const AttentionKernel* chosen = []() -> const AttentionKernel* {
    if (std::getenv("JSD_NO_FUSED_ATTENTION") != nullptr) return nullptr;
    const char* forced = forced_kernel_name();
    const AttentionKernel* option = forced != nullptr ? first_table(options, forced) : nullptr;
    return option != nullptr ? option : first_table(candidates, forced);
  }();
  return chosen;
}

// The kernel of ops that may round to bf16: the first option this CPU runs, unless a kernel is
// named or no fused kernel runs at all (then chosen_kernel()'s).
const AttentionKernel* chosen_bf16_kernel() {
  static const AttentionKernel* chosen = [] {
    const AttentionKernel* option = chosen_kernel() != nullptr && forced_kernel_name() == nullptr ? first_table(options, nullptr) : nullptr;
    return option != nullptr ? option : chosen_kernel();
  }();
  return chosen;
}

const AttentionKernel& kernel_of(const Params& p) { return p.bf16 ? *chosen_bf16_kernel() : *chosen_kernel(); }

// One packed head per task: a kernel's own layout of its keys and values ([floats, 1, heads, N]).
void pack_op(ggml_tensor* dst, int ith, int nth, void*) {
  const Params p = params_of(dst);
  const int heads = p.heads;
  const ggml_tensor* k = dst->src[0];
  const ggml_tensor* v = dst->src[1];
  const int64_t d = k->ne[0] / heads;
  const AttentionKernel& kernel = kernel_of(p);
  for (int64_t task = ith; task < heads * k->ne[2]; task += nth) {
    const int64_t hh = task % heads, nn = task / heads;
    float* out = reinterpret_cast<float*>(static_cast<char*>(dst->data) + nn * dst->nb[3] + hh * dst->nb[2]);
    kernel.pack(head_rows(k, nn, hh, d), head_rows(v, nn, hh, d), k->nb[1] / sizeof(float), v->nb[1] / sizeof(float), d, k->ne[1], out);
  }
}

void attention_op(ggml_tensor* dst, int ith, int nth, void*) {
  const Params p = params_of(dst);
  const int heads = p.heads;
  const float scale = p.scale;
  const ggml_tensor* q = dst->src[0];
  const ggml_tensor* k = dst->src[1];
  const ggml_tensor* v = dst->src[2];
  const ggml_tensor* scratch = dst->src[3];
  const int64_t lq = q->ne[1];
  const int64_t n = q->ne[2];
  const int64_t d = q->ne[0] / heads;
  const AttentionKernel& kernel = kernel_of(p);
  const int64_t blocks = (lq + kernel.block - 1) / kernel.block;
  // One slice of scratch per thread, in the compute buffer: threads beyond its slots (a thread
  // count above the one the graph was built for) leave the work to the others.
  const int64_t per_thread = kernel.scratch_floats(d);
  const int64_t slots = scratch->ne[0] / per_thread;
  const int64_t workers = std::min<int64_t>(nth, slots);
  if (ith >= workers) return;
  float* mine = static_cast<float*>(scratch->data) + ith * per_thread;
  // Blocks of one head run one after another, so that its keys and values stay in L2.
  for (int64_t task = ith; task < n * heads * blocks; task += workers) {
    const int64_t b = task % blocks;
    const int64_t hh = (task / blocks) % heads;
    const int64_t nn = task / (blocks * heads);
    AttentionHead h;
    h.q = head_rows(q, nn, hh, d);
    h.k = head_keys(k, nn, hh);
    h.v = head_keys(v, nn, hh);
    h.out = const_cast<float*>(head_rows(dst, nn, hh, d));
    h.ldq = q->nb[1] / sizeof(float);
    h.ldk = k->nb[1] / sizeof(float);
    h.ldv = v->nb[1] / sizeof(float);
    h.ldo = dst->nb[1] / sizeof(float);
    h.d = d;
    h.lk = dst->src[4] != nullptr ? dst->src[4]->ne[1] : k->ne[1];
    h.scale = scale;
    const int64_t i0 = b * kernel.block;
    kernel.attend(h, i0, std::min<int64_t>(kernel.block, lq - i0), mine);
  }
}

}  // namespace

bool cpu_attention_available() { return chosen_kernel() != nullptr; }

const char* cpu_attention_kernel(bool bf16) {
  const AttentionKernel* k = bf16 ? chosen_bf16_kernel() : chosen_kernel();
  return k ? k->name : "";
}

ggml_tensor* cpu_attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, int heads, float scale, int threads, bool bf16) {
  // q: rows of floats with any row and batch stride (projections come as views).
  if (q->nb[0] != sizeof(float) || q->ne[3] != 1) q = ggml_cont(ctx, q);
  const int64_t d = q->ne[0] / heads;
  const Params params{heads, scale, bf16};
  const AttentionKernel& kernel = kernel_of(params);
  ggml_tensor* keys = k;
  if (!ggml_is_contiguous(k)) k = ggml_cont(ctx, k);
  if (!ggml_is_contiguous(v)) v = ggml_cont(ctx, v);
  if (kernel.pack != nullptr) {
    ggml_tensor* sources[2] = {k, v};
    k = v = ggml_custom_4d(ctx, GGML_TYPE_F32, kernel.packed_floats(d, k->ne[1]), 1, heads, k->ne[2], sources, 2, pack_op, GGML_N_TASKS_MAX, nullptr);
    set_params(k, params);
  } else {
    // Each head's rows side by side, [d, Lk, heads, N], so that a tile of keys is one block of
    // memory (the hardware prefetcher streams it, and no cache line holds two heads).
    auto per_head = [&](ggml_tensor* t) { return ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, t, d, heads, t->ne[1], t->ne[2]), 0, 2, 1, 3)); };
    k = per_head(k);
    v = per_head(v);
  }
  ggml_tensor* scratch = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, std::max(1, threads) * kernel.scratch_floats(d));
  // Packed operands have no axis of keys: the keys as given then come last, for their count.
  ggml_tensor* args[5] = {q, k, v, scratch, keys};
  const int sources = kernel.pack != nullptr ? 5 : 4;
  ggml_tensor* out = ggml_custom_4d(ctx, GGML_TYPE_F32, q->ne[0], q->ne[1], q->ne[2], 1, args, sources, attention_op, GGML_N_TASKS_MAX, nullptr);
  set_params(out, params);
  return ggml_set_name(out, "attention");
}

#else

bool cpu_attention_available() { return false; }

const char* cpu_attention_kernel(bool) { return ""; }

// Never reached: graphs use it only when cpu_attention_available().
ggml_tensor* cpu_attention(ggml_context*, ggml_tensor* q, ggml_tensor*, ggml_tensor*, int, float, int, bool) { return q; }

#endif

}  // namespace jsd
