// transformer_block (pre-norm): {"hidden", "heads", "kv_heads" (default heads; must divide
// heads), "head_dim" (default hidden / heads, which heads must then divide), "ffn", "norm":
// layernorm|rmsnorm, "mlp": gelu|relu2|swiglu|geglu, "bias", "qkv_bias" (default bias), "qk_norm",
// "dropout" (a probability in [0, 1), default 0), "causal", "rotary" (an even head size),
// "window" (causal only: each query attends to its `window` latest keys), for a
// mixture-of-experts MLP "experts", "top_k", "expert_ffn", "shared_experts", "shared_ffn" in place
// of "ffn", and for multi-latent attention "kv_lora", "q_lora" (default 0), "rope_dim",
// "v_head_dim" (default head_dim), and for a multi-token prediction module "mtp": true with
// "vocab" and "tied_to" (the embedding whose table it looks the next tokens up in;
// core/kinds/block_mtp.h)}.
//   h1 = x + Wo . attention(rotary(qk_norm(norm1(x) . Wqkv)));  y = h1 + mlp(norm2(h1))
// q is heads x head_dim wide, k and v kv_heads x head_dim each (grouped-query attention: each
// key/value head serves heads / kv_heads query heads). A mixture-of-experts MLP routes each
// token to top_k of `experts` expert MLPs (router: an h x experts linear, softmax, top-k) and
// sums their outputs weighted by the router's probabilities, plus shared_experts MLPs every
// token passes through. Needs a token model; its input and output width is hidden.
//
// Multi-latent attention (kv_lora > 0; DeepSeek-V2/V3): q = q_up(rms(q_down(x))) (or q_proj(x)
// when q_lora is 0), [c_kv, k_rope] = kv_down(x), [k_nope, v] = kv_up(rms(c_kv)) per head; the
// last rope_dim of each q head and the one k_rope (shared by the heads) are rotated, and each
// k head is [k_nope, k_rope]. q and k heads are head_dim wide, v heads v_head_dim; every head
// has its own k and v (no grouping). Under tensor parallelism the down projections are
// replicated on every rank and run on its own rows (with sequence parallelism its share), the
// latents gathered to the up projections, split by heads, proj by rows (Megatron-Core's
// MLASelfAttention with Transformer Engine's duplicated down projections).
//
// Under KernelShape::par every count is one rank's (docs/analytic.md, "Under parallelism"):
// Megatron-style tensor parallelism (qkv and fc1 column-split, proj and fc2 row-split, heads
// and key/value heads divided, key/value heads replicated where fewer than tp), sequence
// parallelism, context parallelism (a ring exchange of K and V) and expert parallelism (the
// experts divided over ep ranks, all-to-all dispatch and combine).
#include "core/kind_entry.h"
#include "core/kinds/block_mlp.h"
#include "core/kinds/block_mtp.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

// One rank's attention widths: q and k heads of head_dim, v (and the attention output) heads
// of v_dim.
struct AttentionWidths {
  int64_t heads = 0, kv_heads = 0, head_dim = 0, v_dim = 0;
  int64_t q() const { return heads * head_dim; }
  int64_t k() const { return kv_heads * head_dim; }
  int64_t v() const { return kv_heads * v_dim; }
  int64_t o() const { return heads * v_dim; }
};
AttentionWidths RankAttention(const Layer& l, int64_t tp) {
  // Key/value heads fewer than the tensor ranks are replicated: each rank keeps one.
  const int64_t heads = Share(l.heads, tp);
  const int64_t kv_heads = l.kv_lora > 0 ? heads : l.kv_heads >= tp ? Share(l.kv_heads, tp) : 1;
  return {heads, kv_heads, l.head_dim, l.v_head_dim};
}

// Multi-latent attention's projections on one rank (one rank's heads `w`): q_down and kv_down
// whole, q_up and kv_up of its heads.
int64_t MlaProjectionParams(const Layer& l, const AttentionWidths& w) {
  const int64_t h = l.hidden, nope = l.head_dim - l.rope_dim;
  const int64_t q = l.q_lora > 0 ? h * l.q_lora + l.q_lora + l.q_lora * w.q() : h * w.q();
  return q + h * (l.kv_lora + l.rope_dim) + l.kv_lora + l.kv_lora * w.heads * (nope + w.v_dim);
}

int64_t NormParams(const Layer& l) {
  return l.norm == NormKind::kLayerNorm ? 2 * l.hidden : l.hidden;
}

// Which of the block's norms are modules of their own, and so recomputable ("layernorm"), in
// Megatron-Core's Transformer Engine layer specs (megatron/core/models/gpt/gpt_layer_specs.py):
// a norm is fused into the product after it (TELayerNormColumnParallelLinear) except norm1
// before multi-latent attention's separate down projections and norm2 before a mixture of
// experts' router.
bool SeparateNorm1(const Layer& l) { return l.kv_lora > 0; }
bool SeparateNorm2(const Layer& l) { return l.experts > 0; }
double SeparateNorms(const Layer& l) {
  return (SeparateNorm1(l) ? 1.0 : 0.0) + (SeparateNorm2(l) ? 1.0 : 0.0);
}

class TransformerBlock final : public LayerKindEntry {
 public:
  std::string_view name() const override { return "transformer_block"; }

  void Read(FieldReader& r, Layer* spec) const override;
  void Write(const Layer& s, Json* out) const override;

  Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const override {
    if (!c.input().tokens()) {
      return c.Fail("op", "a transformer_block needs a token model (input.seq_len)");
    }
    PP_RETURN_IF_ERROR(c.Expect("hidden", l.hidden));
    return c.in_width();
  }

  int64_t ParamCount(const Layer& l) const override { return RankParamCount(l, ShardDegrees{}); }

  int64_t RankParamCount(const Layer& l, const ShardDegrees& par) const override {
    const int64_t h = l.hidden;
    const AttentionWidths w = RankAttention(l, par.tp);
    const int64_t qkv = w.q() + w.k() + w.v();
    const int64_t projections = l.kv_lora > 0 ? MlaProjectionParams(l, w)
                                              : h * qkv + (l.qkv_bias ? qkv : 0);  // column-split
    const int64_t attention = projections + w.o() * h + (l.bias ? h : 0)           // row-split proj
                              + (l.qk_norm ? 2 * l.head_dim : 0);
    return 2 * NormParams(l) + attention + MlpRankParams(l, par) + MtpRankParams(l, par);
  }
  // A multi-token prediction block's copy of the embedding's table.
  int64_t SharedParamCount(const Layer& l, const ShardDegrees& par) const override {
    return MtpSharedParams(l, par);
  }
  int64_t IdRange(const Layer& l) const override {
    return l.mtp ? l.vocab : LayerKindEntry::IdRange(l);
  }
  int64_t RankExpertParamCount(const Layer& l, const ShardDegrees& par) const override {
    return MlpRankExpertParams(l, par);
  }

  // What the block keeps for its backward (docs/analytic.md; the CPU and CUDA layers keep
  // the same tensors, transformer_block_layout.h).
  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    const RankSplit r = RankSplitOf(sh);
    const AttentionWidths w = RankAttention(l, r.tp);
    const double h = static_cast<double>(l.hidden);
    const double q = static_cast<double>(w.q()), k = static_cast<double>(w.k());
    const double v = static_cast<double>(w.v()), o = static_cast<double>(w.o());
    // At e_inputs: the products' inputs, the norms' outputs and (a copy of its own where the
    // inputs are kept quantized) the attention output; at e the rest.
    const bool copies = sh.e_inputs != sh.e;
    double inputs = 2 * r.sp_rows * h             // norm1 and norm2 outputs
                    + (copies ? r.rows * o : 0);  // proj input, quantized
    double elements = 2 * r.sp_rows * h           // norm1 and norm2 inputs
                      + r.rows * (q + k + v)      // q, k (after rotary, when used) and v
                      + r.rows * o;               // attention output (= proj input)
    double bytes = 2 * r.sp_rows * (l.norm == NormKind::kLayerNorm ? 8.0 : 4.0);  // fp32 stats
    if (l.qk_norm) {
      elements += r.rows * (q + k);                                     // q and k before it
      bytes += r.rows * static_cast<double>(w.heads + w.kv_heads) * 4;  // fp32 rstd per head
    }
    if (l.kv_lora > 0) {
      // The latents before and after their norms (q_up's and kv_up's inputs), the rotary key
      // before rotation, and the two norms' fp32 rstd.
      // The latents on the rank's own rows (its sequence-parallel share: the up projections
      // keep their inputs sharded, as the standard block's products do).
      const double lq = static_cast<double>(l.q_lora), lkv = static_cast<double>(l.kv_lora);
      elements += r.sp_rows * (2 * lq + 2 * lkv) + r.rows * static_cast<double>(l.rope_dim);
      bytes += r.sp_rows * (lq > 0 ? 8.0 : 4.0);
    }
    // One-byte masks of the two branch dropouts.
    if (l.dropout > 0) bytes += 2 * r.sp_rows * h;
    const MlpKept mlp = MlpActivationElements(l, sh);
    inputs += mlp.inputs;
    return (elements + mlp.elements) * sh.e + inputs * sh.e_inputs + bytes +
           MlpActivationExtraBytes(l, sh) + CoreAttentionBytes(l, sh) + MtpActivationBytes(l, sh);
  }

  // Of those, what each recomputation module drops (docs/cost-model.md, "Some modules of
  // each block").
  double ModuleBytes(const Layer& l, const KernelShape& sh, RecomputeModule m) const override {
    const RankSplit r = RankSplitOf(sh);
    switch (m) {
      case RecomputeModule::kCoreAttn:
        return CoreAttentionBytes(l, sh);
      case RecomputeModule::kLayerNorm:
        // The outputs (the products' inputs) and fp32 statistics of the norms that are modules
        // of their own (SeparateNorms).
        return SeparateNorms(l) * r.sp_rows *
               (static_cast<double>(l.hidden) * sh.e_inputs +
                (l.norm == NormKind::kLayerNorm ? 8.0 : 4.0));
      case RecomputeModule::kMlaUpProj: {
        // q, k (assembled and rotated) and v, the core attention's inputs.
        if (l.kv_lora == 0) return 0;
        const AttentionWidths w = RankAttention(l, r.tp);
        return r.rows * static_cast<double>(w.q() + w.k() + w.v()) * sh.e;
      }
      case RecomputeModule::kMlp:
      case RecomputeModule::kMoe:
      case RecomputeModule::kMoeAct:
      case RecomputeModule::kSharedExperts:
        break;
    }
    return MlpModuleBytes(l, sh, m);
  }

 private:
  double CoreAttentionBytes(const Layer& l, const KernelShape& sh) const {
    const RankSplit r = RankSplitOf(sh);
    const double heads = sh.b * static_cast<double>(RankAttention(l, r.tp).heads);
    if (sh.flash_attention) return heads * r.seq * 4;  // fp32 log-sum-exp per query row
    // The softmax probabilities (own queries, all keys); with dropout also its output and
    // one-byte mask (the fused kernel regenerates its mask from the random seed).
    const double scores = heads * r.seq * sh.s;
    return scores * sh.e + (l.dropout > 0 ? scores * (sh.e + 1) : 0);
  }

 public:
  double OutputBytes(const Layer& l, const KernelShape& sh) const override {
    return static_cast<double>(MtpStreamsOut(l)) * RankSplitOf(sh).sp_rows *
           static_cast<double>(l.hidden) * sh.e;
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    if (!l.mtp) return AddBlockKernels(l, sh, k);
    LayerKernels block;
    AddBlockKernels(l, sh, &block);
    AddMtpKernels(l, sh, block, k);
  }

 private:
  void AddBlockKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const;
};

void TransformerBlock::Read(FieldReader& r, Layer* spec) const {
  spec->hidden = r.Int("hidden", 1, kMaxDim);
  spec->heads = r.Int("heads", 1, kMaxDim);
  spec->kv_heads = r.OptInt("kv_heads", 1, kMaxDim).value_or(spec->heads);
  const std::optional<int64_t> head_dim = r.OptInt("head_dim", 1, kMaxDim);
  spec->experts = r.OptInt("experts", 0, kMaxDim).value_or(0);
  if (spec->experts == 0) {
    spec->ffn = r.Int("ffn", 1, kMaxDim);
    for (const char* key : {"top_k", "expert_ffn", "shared_experts", "shared_ffn"}) {
      if (r.Has(key)) r.Fail(key, "is a field of mixture-of-experts blocks; set experts too");
    }
  } else {
    if (r.Has("ffn")) {
      r.Fail("ffn", "a mixture-of-experts block (experts > 0) has expert_ffn and shared_ffn, "
                    "not ffn");
    }
    spec->ffn = 0;
    spec->top_k = r.Int("top_k", 1, spec->experts);
    spec->expert_ffn = r.Int("expert_ffn", 1, kMaxDim);
    spec->shared_experts = r.OptInt("shared_experts", 0, kMaxDim).value_or(0);
    if (spec->shared_experts > 0) {
      spec->shared_ffn = r.Int("shared_ffn", 1, kMaxDim);
    } else if (r.Has("shared_ffn")) {
      r.Fail("shared_ffn", "needs shared_experts > 0");
    }
  }
  spec->bias = r.Bool("bias", true);
  spec->qkv_bias = r.Bool("qkv_bias", spec->bias);
  spec->qk_norm = r.Bool("qk_norm", false);
  spec->kv_lora = r.OptInt("kv_lora", 1, kMaxDim).value_or(0);
  for (const char* key : {"q_lora", "rope_dim", "v_head_dim"}) {
    if (spec->kv_lora == 0 && r.Has(key)) {
      r.Fail(key, "is a field of multi-latent attention; set kv_lora too");
    }
  }
  spec->q_lora = r.OptInt("q_lora", 0, kMaxDim).value_or(0);
  spec->rope_dim = r.OptInt("rope_dim", 0, kMaxDim).value_or(0);
  const std::optional<int64_t> v_head_dim = r.OptInt("v_head_dim", 1, kMaxDim);
  spec->dropout = r.OptNonNegative("dropout").value_or(0);
  if (spec->dropout >= 1) r.Fail("dropout", "is a probability below 1");
  spec->causal = r.Bool("causal", false);
  spec->rotary = r.Bool("rotary", false);
  spec->window = r.OptInt("window", 1, kMaxDim).value_or(0);
  spec->mtp = r.Bool("mtp", false);
  if (spec->mtp) {
    spec->vocab = r.Int("vocab", 1, kMaxDim);
    spec->tied_to = r.String("tied_to");
  } else {
    for (const char* key : {"vocab", "tied_to"}) {
      if (r.Has(key)) r.Fail(key, "is a field of multi-token prediction blocks; set mtp too");
    }
  }
  if (r.ok() && spec->window > 0 && !spec->causal) {
    r.Fail("window", "a sliding window needs a causal block (\"causal\": true)");
  }
  const std::string norm = r.OptString("norm").value_or("layernorm");
  const std::string mlp = r.OptString("mlp").value_or("gelu");
  if (!r.ok()) return;
  if (norm == "layernorm") spec->norm = NormKind::kLayerNorm;
  else if (norm == "rmsnorm") spec->norm = NormKind::kRmsNorm;
  else r.Fail("norm", "must be \"layernorm\" or \"rmsnorm\" (got " + DescribeValue(Json(norm)) + ")");
  bool known = false;
  std::string names;
  for (size_t k = 0; k < std::size(kMlpNames); ++k) {
    names += std::string(names.empty() ? "" : ", ") + "\"" + std::string(kMlpNames[k]) + "\"";
    if (mlp == kMlpNames[k]) {
      spec->mlp = static_cast<MlpKind>(k);
      known = true;
    }
  }
  if (!known) r.Fail("mlp", "must be one of " + names + " (got " + DescribeValue(Json(mlp)) + ")");
  if (r.ok() && spec->heads % spec->kv_heads != 0) {
    r.Fail("kv_heads", std::to_string(spec->kv_heads) + " key/value heads do not divide " +
                           std::to_string(spec->heads) + " heads");
  }
  if (r.ok() && !head_dim && spec->hidden % spec->heads != 0) {
    r.Fail("heads", std::to_string(spec->heads) + " heads do not divide hidden size " +
                        std::to_string(spec->hidden) + " (give head_dim)");
  }
  if (!r.ok()) return;
  spec->head_dim = head_dim.value_or(spec->hidden / spec->heads);
  spec->v_head_dim = v_head_dim.value_or(spec->head_dim);
  if (spec->kv_lora > 0) {
    // Multi-latent attention: every head its own k and v, no biases or q/k norms.
    if (r.Has("kv_heads") && spec->kv_heads != spec->heads) {
      r.Fail("kv_heads", "multi-latent attention gives every head its own k and v");
    } else if (spec->qkv_bias) {
      r.Fail("qkv_bias", "multi-latent attention has no q, k or v biases (set qkv_bias false)");
    } else if (spec->qk_norm) {
      r.Fail("qk_norm", "multi-latent attention normalises its latents, not q and k");
    } else if (spec->rope_dim >= spec->head_dim) {
      r.Fail("rope_dim", "must be less than head_dim (" + std::to_string(spec->head_dim) + ")");
    } else if (spec->rotary && spec->rope_dim % 2 != 0) {
      r.Fail("rope_dim",
             "needs to be even to be rotated (got " + std::to_string(spec->rope_dim) + ")");
    }
    return;
  }
  if (spec->rotary && spec->head_dim % 2 != 0) {
    r.Fail("rotary", "needs an even head size (head_dim " + std::to_string(spec->head_dim) + ")");
  }
}

void TransformerBlock::Write(const Layer& s, Json* out) const {
  Json& l = *out;
  l["hidden"] = s.hidden;
  l["heads"] = s.heads;
  // Fields at their defaults are left out, so that documents without them read and write
  // back unchanged.
  if (s.kv_heads != s.heads) l["kv_heads"] = s.kv_heads;
  if (s.hidden % s.heads != 0 || s.head_dim != s.hidden / s.heads) l["head_dim"] = s.head_dim;
  if (s.experts == 0) {
    l["ffn"] = s.ffn;
  } else {
    l["experts"] = s.experts;
    l["top_k"] = s.top_k;
    l["expert_ffn"] = s.expert_ffn;
    if (s.shared_experts > 0) {
      l["shared_experts"] = s.shared_experts;
      l["shared_ffn"] = s.shared_ffn;
    }
  }
  l["norm"] = s.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm";
  l["mlp"] = MlpName(s.mlp);
  l["bias"] = s.bias;
  if (s.qkv_bias != s.bias) l["qkv_bias"] = s.qkv_bias;
  if (s.qk_norm) l["qk_norm"] = true;
  if (s.kv_lora > 0) {
    l["kv_lora"] = s.kv_lora;
    if (s.q_lora > 0) l["q_lora"] = s.q_lora;
    if (s.rope_dim > 0) l["rope_dim"] = s.rope_dim;
    if (s.v_head_dim != s.head_dim) l["v_head_dim"] = s.v_head_dim;
  }
  if (s.dropout > 0) l["dropout"] = s.dropout;
  l["causal"] = s.causal;
  l["rotary"] = s.rotary;
  if (s.window > 0) l["window"] = s.window;
  if (s.mtp) {
    l["mtp"] = true;
    l["vocab"] = s.vocab;
    l["tied_to"] = s.tied_to;
  }
}

void Add(std::vector<Kernel>& list, Kernel k) { list.push_back(k); }

// The share of the s x s score square a fused kernel computes: all of it; half when causal;
// with a sliding window of w < s keys, the w-wide band below the diagonal, (s w - w^2 / 2) /
// s^2 of it (the causal half at w = s; like it, leaving out the diagonal's s / 2).
double ScoreShare(bool causal, double window, double s) {
  if (!causal) return 1.0;
  if (window <= 0 || window >= s) return 0.5;
  return (s * window - window * window / 2) / (s * s);
}

// The fused attention kernel of one direction: matrix products of [s_q x d_i] by [d_i x s]
// per head, their inner sizes summing to `dims` (forward S = QK^T and PV: d + d_v; backward,
// S recomputed, dP = dO V^T, dV, dQ and dK: 3 d + 2 d_v), of which `share` is computed
// (ScoreShare); its bytes are `tensors`. `d` is the q/k head.
Kernel FlashKernel(std::string_view name, double dims, double heads, double sq, double s, double d,
                   double share, double tensors) {
  Kernel f{name, heads * 2 * sq * s * dims * share, tensors, KernelClass::kAttention};
  f.m = sq;
  f.k = d;
  f.n = s;
  f.batch = heads;
  return f;
}

void TransformerBlock::AddBlockKernels(const Layer& l, const KernelShape& sh,
                                       LayerKernels* k) const {
  const RankSplit r = RankSplitOf(sh);
  const AttentionWidths w = RankAttention(l, r.tp);
  const double h = static_cast<double>(l.hidden);
  const double d = static_cast<double>(w.head_dim), dv = static_cast<double>(w.v_dim);
  const double qw = static_cast<double>(w.q()), kw = static_cast<double>(w.k());
  const double vw = static_cast<double>(w.v()), ow = static_cast<double>(w.o());
  const bool mla = l.kv_lora > 0;
  const double s = sh.s, sq = r.seq;               // all keys; this rank's queries
  const double heads = sh.b * static_cast<double>(w.heads);  // independent attention problems
  const double scores = heads * sq * s * sh.e;     // one [b x a x s_q x s] tensor
  const double add = 3 * r.sp_rows * h * sh.e;     // residual add: reads two, writes one
  // Dropout (l.dropout > 0): each residual add also drops out its branch and writes the
  // one-byte mask; the mask's backward reads dy and the mask and writes the branch gradient.
  const bool dropout = l.dropout > 0;
  const double branch_mask = dropout ? r.sp_rows * h : 0;
  const double branch_dgrad = (2 * sh.e + 1) * r.sp_rows * h;
  const double score_mask = heads * sq * s;  // one byte per score
  const double qk = r.rows * (qw + kw) * sh.e;        // q and k
  const double q_bytes = r.rows * qw * sh.e;          // q (and dQ)
  const double o_bytes = r.rows * ow * sh.e;          // O (and dO)
  const double kv_all = sh.b * s * (kw + vw) * sh.e;  // k and v of the whole sequence
  const double kv_local = r.rows * (kw + vw) * sh.e;  // this rank's k and v
  const double stats = heads * sq * 4;             // fp32 statistics per query row
  // What a fused kernel computes of the score square (a window skips the keys before it; the
  // unfused kernels compute all of it and mask).
  const double share = ScoreShare(l.causal, static_cast<double>(l.window), s);
  const KernelShape tp_rows = WithRows(sh, r.rows);
  const KernelShape sp_rows = WithRows(sh, r.sp_rows);

  // Marks a forward kernel as part of a recomputation module.
  const auto in = [](RecomputeModule m, Kernel kernel) {
    kernel.modules |= ModuleBit(m);
    return kernel;
  };
  Piece norm1 = NormPiece(sp_rows, l.norm, h, {"norm1", "norm1_dgrad", "norm1_wgrad", ""});
  if (SeparateNorm1(l)) norm1.forward = in(RecomputeModule::kLayerNorm, norm1.forward);
  // The projections to q, k and v: one column-split product, or multi-latent attention's
  // down projections (whole on every rank), latent norms and up projections (split by heads).
  std::vector<Piece> to_qkv;
  if (!mla) {
    to_qkv.push_back(LinearPiece(tp_rows, h, qw + kw + vw, l.qkv_bias,
                                 {"qkv", "qkv_dgrad", "qkv_wgrad", "qkv_bias_grad"}));
  } else {
    const double lq = static_cast<double>(l.q_lora), lkv = static_cast<double>(l.kv_lora);
    const double nope = d - static_cast<double>(l.rope_dim);
    const double heads_r = static_cast<double>(w.heads);
    if (lq > 0) {
      to_qkv.push_back(
          LinearPiece(sp_rows, h, lq, false, {"q_down", "q_down_dgrad", "q_down_wgrad", ""}));
      to_qkv.push_back(NormPiece(sp_rows, NormKind::kRmsNorm, lq,
                                 {"q_norm", "q_norm_dgrad", "q_norm_wgrad", ""}));
      to_qkv.push_back(
          LinearPiece(tp_rows, lq, qw, false, {"q_up", "q_up_dgrad", "q_up_wgrad", ""}));
    } else {
      to_qkv.push_back(
          LinearPiece(tp_rows, h, qw, false, {"q_proj", "q_proj_dgrad", "q_proj_wgrad", ""}));
    }
    // The up projection of q (or its one projection) runs again under mla_up_proj.
    to_qkv.back().forward = in(RecomputeModule::kMlaUpProj, to_qkv.back().forward);
    to_qkv.push_back(LinearPiece(sp_rows, h, lkv + static_cast<double>(l.rope_dim), false,
                                 {"kv_down", "kv_down_dgrad", "kv_down_wgrad", ""}));
    to_qkv.push_back(NormPiece(sp_rows, NormKind::kRmsNorm, lkv,
                               {"kv_norm", "kv_norm_dgrad", "kv_norm_wgrad", ""}));
    to_qkv.push_back(LinearPiece(tp_rows, lkv, heads_r * (nope + dv), false,
                                 {"kv_up", "kv_up_dgrad", "kv_up_wgrad", ""}));
    to_qkv.back().forward = in(RecomputeModule::kMlaUpProj, to_qkv.back().forward);
  }
  // Multi-latent attention's q and k heads put together from their parts: reads q, k_nope and
  // the shared k_rope, writes q and k (and the same back in the backward).
  const double rope = static_cast<double>(l.rope_dim);
  const double assemble =
      mla ? r.rows * (qw + static_cast<double>(w.heads) * (d - rope) + rope + qw + kw) * sh.e : 0;
  // What the rotary embedding reads and writes: q and k, or multi-latent attention's rotated
  // parts only (each q head's last rope_dim and the one k_rope).
  const double rotated =
      mla ? 2 * r.rows * (static_cast<double>(w.heads) * rope + rope) * sh.e : 2 * qk;
  const Piece proj =
      LinearPiece(tp_rows, ow, h, l.bias, {"proj", "proj_dgrad", "proj_wgrad", "proj_bias_grad"});
  Piece norm2 = NormPiece(sp_rows, l.norm, h, {"norm2", "norm2_dgrad", "norm2_wgrad", ""});
  if (SeparateNorm2(l)) norm2.forward = in(RecomputeModule::kLayerNorm, norm2.forward);
  const double head_rows = r.rows * static_cast<double>(w.heads + w.kv_heads);
  const double qk_gain = 2 * d * sh.e;

  // Forward: x -> norm1 -> qkv -> (qk_norm) -> (rotary) -> attention -> proj -> + x
  //            -> norm2 -> mlp -> + residual.
  std::vector<Kernel>& fwd = k->forward;
  Add(fwd, norm1.forward);
  for (const Piece& p : to_qkv) Add(fwd, p.forward);
  // Reads q, k and the gains; writes both and an fp32 rstd per head.
  if (l.qk_norm) Add(fwd, MemoryKernel("qk_norm", 2 * qk + qk_gain + head_rows * 4));
  // Reads q and k; writes both (under mla_up_proj with multi-latent attention).
  if (l.rotary) {
    const Kernel rotary = MemoryKernel("rotary", rotated);
    Add(fwd, mla ? in(RecomputeModule::kMlaUpProj, rotary) : rotary);
  }
  if (mla) Add(fwd, in(RecomputeModule::kMlaUpProj, MemoryKernel("qk_assemble", assemble)));
  const auto core = [&in](Kernel kernel) { return in(RecomputeModule::kCoreAttn, kernel); };
  if (sh.flash_attention) {
    // Reads Q, K, V, writes O (and the row statistics).
    Add(fwd, core(FlashKernel("attention", d + dv, heads, sq, s, d, share,
                              q_bytes + o_bytes + kv_all + stats)));
  } else {
    Add(fwd, core(BatchedGemmKernel("attention_scores", heads, sq, d, s, sh.e)));
    Add(fwd, core(MemoryKernel("softmax", 2 * scores)));  // scale, mask and softmax in one pass
    // Reads P, writes the dropped-out P and the mask.
    if (dropout) Add(fwd, core(MemoryKernel("attention_dropout", 2 * scores + score_mask)));
    Add(fwd, core(BatchedGemmKernel("attention_context", heads, sq, s, dv, sh.e)));
  }
  Add(fwd, proj.forward);
  Add(fwd, MemoryKernel("residual_add1", add + branch_mask));
  Add(fwd, norm2.forward);
  AddMlpForward(l, sh, k);
  Add(fwd, MemoryKernel("residual_add2", add + branch_mask));

  // Input gradient: the same chain backwards. Where a branch rejoins its skip connection the
  // two gradients are summed (reads two, writes one).
  std::vector<Kernel>& bwd = k->backward_input;
  if (dropout) Add(bwd, MemoryKernel("dropout2_dgrad", branch_dgrad));
  AddMlpInputGrad(l, sh, k);
  Add(bwd, norm2.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add2", add));
  if (dropout) Add(bwd, MemoryKernel("dropout1_dgrad", branch_dgrad));
  Add(bwd, proj.input_grad);
  if (sh.flash_attention) {
    // Reads Q, K, V, O, dO and the statistics; writes dQ, dK, dV.
    Add(bwd, FlashKernel("attention_dgrad", 3 * d + 2 * dv, heads, sq, s, d, share,
                         2 * q_bytes + 2 * o_bytes + 2 * kv_all + stats));
  } else {
    // Context = P.V: dP = dO.V^T and dV = P^T.dO.
    Add(bwd, BatchedGemmKernel("attention_context_dgrad_p", heads, sq, dv, s, sh.e));
    Add(bwd, BatchedGemmKernel("attention_context_dgrad_v", heads, s, sq, dv, sh.e));
    // Reads the gradient of the dropped-out P and the mask; writes dP.
    if (dropout) Add(bwd, MemoryKernel("attention_dropout_dgrad", 2 * scores + score_mask));
    Add(bwd, MemoryKernel("softmax_dgrad", 3 * scores));  // reads dP and P; writes dS
    // Scores = Q.K^T: dQ = dS.K and dK = dS^T.Q.
    Add(bwd, BatchedGemmKernel("attention_scores_dgrad_q", heads, sq, s, d, sh.e));
    Add(bwd, BatchedGemmKernel("attention_scores_dgrad_k", heads, s, sq, d, sh.e));
  }
  if (mla) Add(bwd, MemoryKernel("qk_assemble_dgrad", assemble));
  if (l.rotary) Add(bwd, MemoryKernel("rotary_dgrad", rotated));
  // Reads dy, x, rstd and the gains; writes dx.
  if (l.qk_norm) Add(bwd, MemoryKernel("qk_norm_dgrad", 3 * qk + head_rows * 4 + qk_gain));
  for (auto p = to_qkv.rbegin(); p != to_qkv.rend(); ++p) Add(bwd, p->input_grad);
  Add(bwd, norm1.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add1", add));

  // Weight gradients, in the order the backward produces them.
  AddMlpWeightGrads(l, sh, k);
  for (const Piece* p : std::initializer_list<const Piece*>{&norm2, &proj}) {
    for (const Kernel& g : p->weight_grads) Add(k->backward_weight, g);
  }
  if (l.qk_norm) {
    // Reads dy, x and rstd; writes the two gains' gradients.
    Add(k->backward_weight, MemoryKernel("qk_norm_wgrad", 2 * qk + head_rows * 4 + qk_gain));
  }
  for (auto p = to_qkv.rbegin(); p != to_qkv.rend(); ++p) {
    for (const Kernel& g : p->weight_grads) Add(k->backward_weight, g);
  }
  for (const Kernel& g : norm1.weight_grads) Add(k->backward_weight, g);

  // Collectives (docs/analytic.md lists each with its bytes).
  const double act = r.rows * h * sh.e;  // one [N/cp x h] tensor: what the tensor ranks share
  if (r.tp > 1) {
    // What crosses the tensor ranks into the split projections: x for qkv (or multi-latent
    // attention's q_proj), else the latents (and the rotary key with sequence parallelism),
    // each with the weight gradient its input-gradient reduction may hide under (the latents'
    // gathers are the up projections' own: mla_up_proj runs them again).
    struct Into {
      std::string_view gather, scatter, reduce;
      double bytes;
      std::string_view under;
      uint8_t modules = 0;
    };
    std::vector<Into> into;
    if (!mla || l.q_lora == 0) {
      into.push_back({"qkv_allgather", "qkv_dgrad_reducescatter", "qkv_dgrad_allreduce", act,
                      mla ? std::string_view("q_proj_wgrad") : std::string_view("qkv_wgrad"),
                      mla ? ModuleBit(RecomputeModule::kMlaUpProj) : uint8_t{0}});
    }
    if (mla) {
      const double e = r.rows * sh.e;
      if (l.q_lora > 0) {
        into.push_back({"q_latent_allgather", "q_latent_dgrad_reducescatter",
                        "q_latent_dgrad_allreduce", e * static_cast<double>(l.q_lora), "q_up_wgrad",
                        ModuleBit(RecomputeModule::kMlaUpProj)});
      }
      into.push_back({"kv_latent_allgather", "kv_latent_dgrad_reducescatter",
                      "kv_latent_dgrad_allreduce", e * static_cast<double>(l.kv_lora),
                      "kv_up_wgrad", ModuleBit(RecomputeModule::kMlaUpProj)});
      // The rotary key comes from the replicated kv_down: gathered only from the shares.
      if (r.sp) {
        into.push_back({"k_rope_allgather", "k_rope_dgrad_reducescatter", "",
                        e * static_cast<double>(l.rope_dim), ""});
      }
    }
    std::vector<Collective> gathers;
    if (r.sp) {
      for (const Into& i : into) {
        gathers.push_back({i.gather, CollectiveKind::kAllGather, CommGroup::kTensor, i.bytes, "",
                           TokenExchange::kNone, i.modules});
      }
      gathers.push_back(
          {"proj_reducescatter", CollectiveKind::kReduceScatter, CommGroup::kTensor, act, ""});
      k->backward_input_comm.push_back({"proj_dgrad_allgather", CollectiveKind::kAllGather,
                                        CommGroup::kTensor, act, ""});
      for (const Into& i : into) {
        k->backward_input_comm.push_back(
            {i.scatter, CollectiveKind::kReduceScatter, CommGroup::kTensor, i.bytes, i.under});
      }
    } else {
      gathers.push_back(
          {"proj_allreduce", CollectiveKind::kAllReduce, CommGroup::kTensor, act, ""});
      for (const Into& i : into) {
        k->backward_input_comm.push_back(
            {i.reduce, CollectiveKind::kAllReduce, CommGroup::kTensor, i.bytes, i.under});
      }
    }
    k->forward_comm.insert(k->forward_comm.begin(), gathers.begin(), gathers.end());
  }
  if (r.cp > 1) {
    // The ring: cp - 1 steps, each sending this rank's K and V on and receiving the previous
    // rank's, each under the attention of the block of K and V already here.
    const double ring = static_cast<double>(r.cp - 1) * kv_local;
    const std::string_view fwd_kernel = sh.flash_attention ? "attention" : "attention_scores";
    const std::string_view bwd_kernel =
        sh.flash_attention ? "attention_dgrad" : "attention_scores_dgrad_q";
    // Part of the core attention: its recomputation exchanges K and V again.
    k->forward_comm.push_back({"attention_kv_ring", CollectiveKind::kSendRecv, CommGroup::kContext,
                               ring, fwd_kernel, TokenExchange::kNone,
                               ModuleBit(RecomputeModule::kCoreAttn)});
    k->backward_input_comm.push_back({"attention_kv_ring_dgrad", CollectiveKind::kSendRecv,
                                      CommGroup::kContext, ring, bwd_kernel});
    k->backward_input_comm.push_back({"attention_dkv_ring", CollectiveKind::kSendRecv,
                                      CommGroup::kContext, ring, bwd_kernel});
  }
}

}  // namespace

const LayerKindEntry& TransformerBlockKind() {
  static const TransformerBlock* const kEntry = new TransformerBlock();
  return *kEntry;
}

}  // namespace pp
