// transformer_block (pre-norm): {"hidden", "heads" (dividing hidden), "ffn", "norm":
// layernorm|rmsnorm, "mlp": gelu|swiglu, "bias", "causal", "rotary" (an even head size)}.
//   h1 = x + Wo . attention(rotary(norm1(x) . Wqkv));  y = h1 + mlp(norm2(h1))
// Needs a token model; its input and output width is hidden.
#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

class TransformerBlock final : public LayerKindEntry {
 public:
  std::string_view name() const override { return "transformer_block"; }

  void Read(FieldReader& r, Layer* spec) const override {
    spec->hidden = r.Int("hidden", 1, kMaxDim);
    spec->heads = r.Int("heads", 1, kMaxDim);
    spec->ffn = r.Int("ffn", 1, kMaxDim);
    spec->bias = r.Bool("bias", true);
    spec->causal = r.Bool("causal", false);
    spec->rotary = r.Bool("rotary", false);
    const std::string norm = r.OptString("norm").value_or("layernorm");
    const std::string mlp = r.OptString("mlp").value_or("gelu");
    if (!r.ok()) return;
    if (norm == "layernorm") spec->norm = NormKind::kLayerNorm;
    else if (norm == "rmsnorm") spec->norm = NormKind::kRmsNorm;
    else r.Fail("norm", "must be \"layernorm\" or \"rmsnorm\" (got " + DescribeValue(Json(norm)) + ")");
    if (mlp == "gelu") spec->mlp = MlpKind::kGelu;
    else if (mlp == "swiglu") spec->mlp = MlpKind::kSwiglu;
    else r.Fail("mlp", "must be \"gelu\" or \"swiglu\" (got " + DescribeValue(Json(mlp)) + ")");
    if (r.ok() && spec->hidden % spec->heads != 0) {
      r.Fail("heads", std::to_string(spec->heads) + " heads do not divide hidden size " +
                          std::to_string(spec->hidden));
    }
    if (r.ok() && spec->rotary && (spec->hidden / spec->heads) % 2 != 0) {
      r.Fail("rotary", "needs an even head size (hidden / heads = " +
                           std::to_string(spec->hidden / spec->heads) + ")");
    }
  }

  void Write(const Layer& s, Json* out) const override {
    Json& l = *out;
    l["hidden"] = s.hidden;
    l["heads"] = s.heads;
    l["ffn"] = s.ffn;
    l["norm"] = s.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm";
    l["mlp"] = s.mlp == MlpKind::kGelu ? "gelu" : "swiglu";
    l["bias"] = s.bias;
    l["causal"] = s.causal;
    l["rotary"] = s.rotary;
  }

  Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const override {
    if (!c.input().tokens()) {
      return c.Fail("op", "a transformer_block needs a token model (input.seq_len)");
    }
    PP_RETURN_IF_ERROR(c.Expect("hidden", l.hidden));
    return c.in_width();
  }

  int64_t ParamCount(const Layer& l) const override {
    const int64_t h = l.hidden, f = l.ffn;
    const int64_t norms = 2 * (l.norm == NormKind::kLayerNorm ? 2 * h : h);
    const int64_t attention = 4 * h * h + (l.bias ? 4 * h : 0);
    const int64_t mlp = l.mlp == MlpKind::kGelu ? 2 * h * f + (l.bias ? f + h : 0)
                                                : 3 * h * f + (l.bias ? 2 * f + h : 0);
    return norms + attention + mlp;
  }

  // What the block keeps for its backward (docs/analytic.md; the CPU and CUDA layers keep
  // the same tensors, transformer_block_layout.h).
  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    const double n = sh.n, b = sh.b, s = sh.s;
    const double h = static_cast<double>(l.hidden);
    const double f = static_cast<double>(l.ffn);
    const double a = static_cast<double>(l.heads);
    const double elements = 2 * n * h        // norm1 input and output
                            + 2 * n * h      // q and k (after rotary, when used)
                            + n * h          // v
                            + a * s * s * b  // softmax probabilities
                            + n * h          // attention output = proj input
                            + 2 * n * h      // norm2 input and output
                            + (l.mlp == MlpKind::kGelu ? 2 * n * f    // fc1 and gelu outputs
                                                       : 3 * n * f);  // gate, up, product
    const double stats_per_row = l.norm == NormKind::kLayerNorm ? 8.0 : 4.0;  // fp32
    return elements * sh.e + 2 * n * stats_per_row;
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override;
};

void Add(std::vector<Kernel>& list, Kernel k) { list.push_back(k); }

void TransformerBlock::AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const {
  const double h = static_cast<double>(l.hidden);
  const double f = static_cast<double>(l.ffn);
  const double a = static_cast<double>(l.heads);
  const double d = h / a;
  const double s = sh.s;
  const double heads = sh.b * a;               // independent attention problems
  const double act = sh.n * h * sh.e;          // one [N x h] tensor
  const double scores = heads * s * s * sh.e;  // one [b x a x s x s] tensor
  const double rows_f = sh.n * f * sh.e;       // one [N x f] tensor
  const double add = 3 * act;                  // residual add: reads two, writes one
  const bool gelu = l.mlp == MlpKind::kGelu;

  const Piece norm1 = NormPiece(sh, l.norm, h, {"norm1", "norm1_dgrad", "norm1_wgrad", ""});
  const Piece qkv =
      LinearPiece(sh, h, 3 * h, l.bias, {"qkv", "qkv_dgrad", "qkv_wgrad", "qkv_bias_grad"});
  const Piece proj =
      LinearPiece(sh, h, h, l.bias, {"proj", "proj_dgrad", "proj_wgrad", "proj_bias_grad"});
  const Piece norm2 = NormPiece(sh, l.norm, h, {"norm2", "norm2_dgrad", "norm2_wgrad", ""});
  // The gelu MLP's first map is fc1 (h -> f); swiglu's is gate and up fused (h -> 2f).
  const Piece fc1 =
      gelu ? LinearPiece(sh, h, f, l.bias, {"fc1", "fc1_dgrad", "fc1_wgrad", "fc1_bias_grad"})
           : LinearPiece(sh, h, 2 * f, l.bias,
                         {"gate_up", "gate_up_dgrad", "gate_up_wgrad", "gate_up_bias_grad"});
  const Piece fc2 =
      LinearPiece(sh, f, h, l.bias, {"fc2", "fc2_dgrad", "fc2_wgrad", "fc2_bias_grad"});

  // Forward: x -> norm1 -> qkv -> (rotary) -> QK^T -> softmax -> PV -> proj -> + x
  //            -> norm2 -> fc1 -> gelu | silu(gate) * up -> fc2 -> + residual.
  std::vector<Kernel>& fwd = k->forward;
  Add(fwd, norm1.forward);
  Add(fwd, qkv.forward);
  if (l.rotary) Add(fwd, MemoryKernel("rotary", 4 * act));  // reads q and k; writes both
  Add(fwd, BatchedGemmKernel("attention_scores", heads, s, d, s, sh.e));
  Add(fwd, MemoryKernel("softmax", 2 * scores));  // scale, mask and softmax in one pass
  Add(fwd, BatchedGemmKernel("attention_context", heads, s, s, d, sh.e));
  Add(fwd, proj.forward);
  Add(fwd, MemoryKernel("residual_add1", add));
  Add(fwd, norm2.forward);
  Add(fwd, fc1.forward);
  // gelu reads fc1's output and writes its own; swiglu reads gate and up, writes the product.
  Add(fwd, gelu ? MemoryKernel("gelu", 2 * rows_f) : MemoryKernel("swiglu", 3 * rows_f));
  Add(fwd, fc2.forward);
  Add(fwd, MemoryKernel("residual_add2", add));

  // Input gradient: the same chain backwards. Where a branch rejoins its skip connection the
  // two gradients are summed (reads two, writes one).
  std::vector<Kernel>& bwd = k->backward_input;
  Add(bwd, fc2.input_grad);
  // gelu: reads dy and fc1's output, writes dx. swiglu: reads d(product), gate and up,
  // writes d(gate) and d(up).
  Add(bwd,
      gelu ? MemoryKernel("gelu_dgrad", 3 * rows_f) : MemoryKernel("swiglu_dgrad", 5 * rows_f));
  Add(bwd, fc1.input_grad);
  Add(bwd, norm2.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add2", add));
  Add(bwd, proj.input_grad);
  // Context = P.V: dP = dO.V^T and dV = P^T.dO.
  Add(bwd, BatchedGemmKernel("attention_context_dgrad_p", heads, s, d, s, sh.e));
  Add(bwd, BatchedGemmKernel("attention_context_dgrad_v", heads, s, s, d, sh.e));
  Add(bwd, MemoryKernel("softmax_dgrad", 3 * scores));  // reads dP and P; writes dS
  // Scores = Q.K^T: dQ = dS.K and dK = dS^T.Q.
  Add(bwd, BatchedGemmKernel("attention_scores_dgrad_q", heads, s, s, d, sh.e));
  Add(bwd, BatchedGemmKernel("attention_scores_dgrad_k", heads, s, s, d, sh.e));
  if (l.rotary) Add(bwd, MemoryKernel("rotary_dgrad", 4 * act));
  Add(bwd, qkv.input_grad);
  Add(bwd, norm1.input_grad);
  Add(bwd, MemoryKernel("residual_grad_add1", add));

  // Weight gradients, in the order the backward produces them.
  for (const Piece* p : {&fc2, &fc1, &norm2, &proj, &qkv, &norm1}) {
    for (const Kernel& w : p->weight_grads) Add(k->backward_weight, w);
  }
}

}  // namespace

const LayerKindEntry& TransformerBlockKind() {
  static const TransformerBlock* const kEntry = new TransformerBlock();
  return *kEntry;
}

}  // namespace pp
