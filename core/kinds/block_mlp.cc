#include "core/kinds/block_mlp.h"

#include <algorithm>
#include <iterator>

#include "core/kinds/pieces.h"

namespace pp {
namespace {

bool Gated(const Layer& l) { return GatedMlp(l.mlp); }

// The activation kernels' names of a dense, shared or routed-expert MLP, by MlpKind (in its
// order: gelu, swiglu, relu2, geglu) and role.
struct ActNames {
  std::string_view fwd, dgrad;
};
enum class MlpRole { kDense, kShared, kExpert };
constexpr ActNames kActNames[][3] = {
    {{"gelu", "gelu_dgrad"},
     {"shared_gelu", "shared_gelu_dgrad"},
     {"expert_gelu", "expert_gelu_dgrad"}},
    {{"swiglu", "swiglu_dgrad"},
     {"shared_swiglu", "shared_swiglu_dgrad"},
     {"expert_swiglu", "expert_swiglu_dgrad"}},
    {{"relu2", "relu2_dgrad"},
     {"shared_relu2", "shared_relu2_dgrad"},
     {"expert_relu2", "expert_relu2_dgrad"}},
    {{"geglu", "geglu_dgrad"},
     {"shared_geglu", "shared_geglu_dgrad"},
     {"expert_geglu", "expert_geglu_dgrad"}},
};
static_assert(std::size(kActNames) == std::size(kMlpNames));
ActNames ActNamesOf(const Layer& l, MlpRole role) {
  return kActNames[static_cast<int>(l.mlp)][static_cast<int>(role)];
}

// The activation and its gradient on a [rows x w] tensor of `tensor` bytes: an ungated one
// (gelu, relu2) reads fc1's output and writes its own; a gated one (swiglu, geglu) reads gate
// and up and writes the product. Backward: an ungated one reads dy and fc1's output and writes
// dx; a gated one reads d(product), gate and up and writes d(gate) and d(up).
void AddActivation(const Layer& l, MlpRole role, double tensor, Kernel* act, Kernel* act_grad) {
  const ActNames n = ActNamesOf(l, role);
  *act = MemoryKernel(n.fwd, (Gated(l) ? 3 : 2) * tensor);
  *act_grad = MemoryKernel(n.dgrad, (Gated(l) ? 5 : 3) * tensor);
}

// Parameters of one MLP of width w (its fc2 bias whole on every tensor rank).
int64_t MlpParams(const Layer& l, int64_t w) {
  const int64_t h = l.hidden;
  return !Gated(l) ? 2 * h * w + (l.bias ? w + h : 0) : 3 * h * w + (l.bias ? 2 * w + h : 0);
}

// One rank's widths and token counts.
struct MlpSplit {
  RankSplit r;
  double f = 0;         // dense: fc1's output width on this rank
  double local = 0;     // experts on this rank
  double expert_f = 0;  // one expert's width on this rank (split over etp)
  double shared_f = 0;  // the shared experts' width together on this rank (split over tp)
  double routed = 0;    // rows this rank routes: its sequence-parallel share (sp_rows)
  double copies = 0;    // token copies this rank's rows send out: routed x top_k
  double received = 0;  // copies the expert group sends this rank (balanced routing)
  double tokens = 0;    // rows this rank's experts compute: received, gathered over etp
  double experts = 0, top_k = 0;
};
MlpSplit SplitOf(const Layer& l, const KernelShape& sh) {
  MlpSplit m;
  m.r = RankSplitOf(sh);
  m.f = static_cast<double>(Share(l.ffn, m.r.tp));
  if (l.experts > 0) {
    const int64_t local = Share(l.experts, m.r.ep);
    m.local = static_cast<double>(local);
    m.expert_f = static_cast<double>(Share(l.expert_ffn, m.r.etp));
    m.shared_f = static_cast<double>(l.shared_experts * Share(l.shared_ffn, m.r.tp));
    m.experts = static_cast<double>(l.experts);
    m.top_k = static_cast<double>(l.top_k);
    m.routed = m.r.sp_rows;
    m.copies = m.routed * m.top_k;
    m.received = m.copies * static_cast<double>(m.r.ep * local) / m.experts;
    m.tokens = m.received * static_cast<double>(m.r.etp);
  }
  return m;
}

// The pieces of a dense MLP of width w on `rows` rows: fc1 (gate and up fused for swiglu)
// and fc2.
struct DensePieces {
  Piece fc1, fc2;
  Kernel act, act_grad;
};
DensePieces Dense(const Layer& l, const KernelShape& sh, double rows, double w, bool shared) {
  const double h = static_cast<double>(l.hidden);
  const KernelShape at = WithRows(sh, rows);
  const double tensor = rows * w * sh.e;  // one [rows x w] tensor
  DensePieces p;
  if (shared) {
    p.fc1 = !Gated(l) ? LinearPiece(at, h, w, l.bias,
                                    {"shared_fc1", "shared_fc1_dgrad", "shared_fc1_wgrad",
                                     "shared_fc1_bias_grad"})
                      : LinearPiece(at, h, 2 * w, l.bias,
                                    {"shared_gate_up", "shared_gate_up_dgrad",
                                     "shared_gate_up_wgrad", "shared_gate_up_bias_grad"});
    p.fc2 = LinearPiece(at, w, h, l.bias, {"shared_fc2", "shared_fc2_dgrad", "shared_fc2_wgrad",
                                           "shared_fc2_bias_grad"});
    AddActivation(l, MlpRole::kShared, tensor, &p.act, &p.act_grad);
    return p;
  }
  p.fc1 = !Gated(l)
              ? LinearPiece(at, h, w, l.bias, {"fc1", "fc1_dgrad", "fc1_wgrad", "fc1_bias_grad"})
              : LinearPiece(at, h, 2 * w, l.bias,
                            {"gate_up", "gate_up_dgrad", "gate_up_wgrad", "gate_up_bias_grad"});
  p.fc2 = LinearPiece(at, w, h, l.bias, {"fc2", "fc2_dgrad", "fc2_wgrad", "fc2_bias_grad"});
  AddActivation(l, MlpRole::kDense, tensor, &p.act, &p.act_grad);
  return p;
}

// The routed experts' pieces.
DensePieces Experts(const Layer& l, const KernelShape& sh, const MlpSplit& m) {
  const double h = static_cast<double>(l.hidden);
  const double w = m.expert_f;
  const double tensor = m.tokens * w * sh.e;
  DensePieces p;
  p.fc1 = !Gated(l) ? ExpertPiece(sh, m.tokens, m.local, h, w, l.bias,
                                  {"expert_fc1", "expert_fc1_dgrad", "expert_fc1_wgrad",
                                   "expert_fc1_bias_grad"})
                    : ExpertPiece(sh, m.tokens, m.local, h, 2 * w, l.bias,
                                  {"expert_gate_up", "expert_gate_up_dgrad", "expert_gate_up_wgrad",
                                   "expert_gate_up_bias_grad"});
  p.fc2 = ExpertPiece(sh, m.tokens, m.local, w, h, l.bias,
                      {"expert_fc2", "expert_fc2_dgrad", "expert_fc2_wgrad",
                       "expert_fc2_bias_grad"});
  AddActivation(l, MlpRole::kExpert, tensor, &p.act, &p.act_grad);
  for (Piece* piece : {&p.fc1, &p.fc2}) {
    piece->forward.routed_expert = piece->input_grad.routed_expert = true;
    for (Kernel& g : piece->weight_grads) g.routed_expert = true;
  }
  p.act.routed_expert = p.act_grad.routed_expert = true;
  return p;
}

// The collectives of a dense MLP over the tensor ranks in one direction: the gather of the
// sequence-parallel rows before it, and the reduce-scatter (or, without sequence parallelism,
// the all-reduce) after it.
struct DenseComm {
  std::string_view gather, scatter, reduce;
};

Collective Tensor(std::string_view name, CollectiveKind kind, double bytes,
                  std::string_view hidden_behind = "") {
  return {name, kind, CommGroup::kTensor, bytes, hidden_behind};
}
// An all-to-all of the token exchange, with the routing it carries (Collective::experts).
Collective Expert(std::string_view name, TokenExchange step, double bytes, const Layer& l) {
  Collective c{name, CollectiveKind::kAllToAll, CommGroup::kExpert, bytes, "", step};
  c.experts = static_cast<double>(l.experts);
  c.top_k = static_cast<double>(l.top_k);
  return c;
}
Collective ExpertTensor(std::string_view name, TokenExchange step, CollectiveKind kind,
                        double bytes) {
  return {name, kind, CommGroup::kExpertTensor, bytes, "", step};
}

// A dense MLP of width w on the rank's rows (the MLP itself, or the shared experts) in one
// direction: forward fc1, activation, fc2; input gradient the reverse; with its collectives.
void AddDense(const Layer& l, const KernelShape& sh, const MlpSplit& m, double w, bool shared,
              bool forward, const DenseComm& names, LayerKernels* k) {
  const double x = m.r.rows * static_cast<double>(l.hidden) * sh.e;
  std::vector<Collective>& comm = forward ? k->forward_comm : k->backward_input_comm;
  std::vector<Kernel>& part = forward ? k->forward : k->backward_input;
  if (m.r.sp) comm.push_back(Tensor(names.gather, CollectiveKind::kAllGather, x));
  const DensePieces p = Dense(l, sh, m.r.rows, w, shared);
  if (forward) {
    part.insert(part.end(), {p.fc1.forward, p.act, p.fc2.forward});
  } else {
    part.insert(part.end(), {p.fc2.input_grad, p.act_grad, p.fc1.input_grad});
  }
  if (m.r.tp > 1) {
    // Backward: fc1's input-gradient reduction, which can run under fc1's weight gradient
    // (ParallelLayout::overlap_tp_dgrad).
    const std::string_view under = forward ? "" : p.fc1.weight_grads.front().name;
    comm.push_back(m.r.sp ? Tensor(names.scatter, CollectiveKind::kReduceScatter, x, under)
                          : Tensor(names.reduce, CollectiveKind::kAllReduce, x, under));
  }
}

// Marks the kernels and collectives appended to `k`'s forward since (kernels, comm) as parts
// of the recomputation modules `bits`.
void MarkForward(LayerKernels* k, size_t kernels, size_t comm, uint8_t bits) {
  for (size_t i = kernels; i < k->forward.size(); ++i) k->forward[i].modules |= bits;
  for (size_t i = comm; i < k->forward_comm.size(); ++i) k->forward_comm[i].modules |= bits;
}

void AddWeightGrads(const Piece& p, LayerKernels* k) {
  for (const Kernel& g : p.weight_grads) k->backward_weight.push_back(g);
}

}  // namespace

int64_t MlpRankExpertParams(const Layer& l, const ShardDegrees& par) {
  if (l.experts == 0) return 0;
  return Share(l.experts, par.ep) * MlpParams(l, Share(l.expert_ffn, par.expert_tp()));
}

int64_t MlpRankParams(const Layer& l, const ShardDegrees& par) {
  const int64_t tp = std::max(1, par.tp);
  if (l.experts == 0) return MlpParams(l, Share(l.ffn, tp));
  return l.hidden * l.experts  // the router, whole on every rank
         + MlpRankExpertParams(l, par) + l.shared_experts * MlpParams(l, Share(l.shared_ffn, tp));
}

MlpKept MlpActivationElements(const Layer& l, const KernelShape& sh) {
  const MlpSplit m = SplitOf(l, sh);
  // Per width: fc1's output (gelu's input), or gate and up (swiglu's); and the activation's
  // output, fc2's input.
  const double before = Gated(l) ? 2 : 1;
  if (l.experts == 0) return {m.r.rows * m.f * before, m.r.rows * m.f};
  const double h = static_cast<double>(l.hidden);
  MlpKept kept;
  kept.elements = m.routed * m.experts               // the router's probabilities
                  + m.copies                         // the top-k weights
                  + m.tokens * m.expert_f * before   // the experts' fc1 outputs
                  + m.tokens * h                     // the experts' outputs (the weights' gradient)
                  + m.r.rows * m.shared_f * before;  // the shared experts' fc1 outputs
  kept.inputs = m.tokens * h                         // the experts' inputs (permuted tokens)
                + m.tokens * m.expert_f              // the experts' fc2 inputs
                + m.r.rows * m.shared_f;             // the shared experts' fc2 inputs
  return kept;
}

double MlpActivationExtraBytes(const Layer& l, const KernelShape& sh) {
  return l.experts == 0 ? 0 : SplitOf(l, sh).copies * 4;  // int32 expert ids
}

double MlpModuleBytes(const Layer& l, const KernelShape& sh, RecomputeModule m) {
  const MlpSplit s = SplitOf(l, sh);
  const double before = Gated(l) ? 2 : 1;
  const bool moe = l.experts > 0;
  switch (m) {
    case RecomputeModule::kMlp:
      return moe ? 0 : s.r.rows * s.f * (before * sh.e + sh.e_inputs);
    case RecomputeModule::kMoe: {
      if (!moe) return 0;
      const MlpKept kept = MlpActivationElements(l, sh);
      return kept.elements * sh.e + kept.inputs * sh.e_inputs + MlpActivationExtraBytes(l, sh);
    }
    case RecomputeModule::kMoeAct:
      return moe ? s.tokens * s.expert_f * sh.e_inputs : 0;
    case RecomputeModule::kSharedExperts:
      return moe ? s.r.rows * s.shared_f * (before * sh.e + sh.e_inputs) : 0;
    case RecomputeModule::kCoreAttn:
    case RecomputeModule::kLayerNorm:
    case RecomputeModule::kMlaUpProj:
      break;
  }
  return 0;
}

void AddMlpForward(const Layer& l, const KernelShape& sh, LayerKernels* k) {
  const MlpSplit m = SplitOf(l, sh);
  const double h = static_cast<double>(l.hidden);
  std::vector<Kernel>& fwd = k->forward;
  const size_t first_kernel = fwd.size(), first_comm = k->forward_comm.size();
  if (l.experts == 0) {
    AddDense(l, sh, m, m.f, false, true, {"fc1_allgather", "fc2_reducescatter", "fc2_allreduce"},
             k);
    MarkForward(k, first_kernel, first_comm, ModuleBit(RecomputeModule::kMlp));
    return;
  }
  const double own = m.routed * h * sh.e;     // the rows this rank routes
  const double copies = m.copies * h * sh.e;  // their permuted token copies
  const double gathered = m.tokens * h * sh.e;
  fwd.push_back(GemmKernel("router", m.routed, h, m.experts, sh.e));
  // Reads the logits; writes the probabilities, the top-k weights and int32 ids.
  fwd.push_back(MemoryKernel("router_topk", 2 * m.routed * m.experts * sh.e +
                                                m.copies * (sh.e + 4)));
  // Reads the tokens and ids; writes top_k copies of each, grouped by expert.
  fwd.push_back(MemoryKernel("permute", own + m.copies * 4 + copies));
  if (m.r.ep > 1) {
    k->forward_comm.push_back(Expert("moe_dispatch_alltoall", TokenExchange::kDispatch, copies, l));
  }
  if (m.r.etp > 1) {
    k->forward_comm.push_back(ExpertTensor("moe_etp_allgather", TokenExchange::kDispatch,
                                           CollectiveKind::kAllGather, gathered));
  }
  const DensePieces e = Experts(l, sh, m);
  fwd.push_back(e.fc1.forward);
  fwd.push_back(e.act);
  fwd.back().modules |= ModuleBit(RecomputeModule::kMoeAct);
  fwd.push_back(e.fc2.forward);
  if (m.r.etp > 1) {
    k->forward_comm.push_back(ExpertTensor("moe_etp_reducescatter", TokenExchange::kCombine,
                                           CollectiveKind::kReduceScatter, gathered));
  }
  if (m.r.ep > 1) {
    k->forward_comm.push_back(Expert("moe_combine_alltoall", TokenExchange::kCombine, copies, l));
  }
  // Reads the copies' outputs and the weights; writes their weighted sum per token.
  fwd.push_back(MemoryKernel("unpermute", copies + m.copies * sh.e + own));
  if (l.shared_experts > 0) {
    // A dense MLP over the tensor ranks: gathered from and scattered back to the
    // sequence-parallel share.
    const size_t shared_kernel = fwd.size(), shared_comm = k->forward_comm.size();
    AddDense(l, sh, m, m.shared_f, true, true,
             {"shared_fc1_allgather", "shared_fc2_reducescatter", "shared_fc2_allreduce"}, k);
    MarkForward(k, shared_kernel, shared_comm, ModuleBit(RecomputeModule::kSharedExperts));
    fwd.push_back(MemoryKernel("shared_add", 3 * own));
  }
  MarkForward(k, first_kernel, first_comm, ModuleBit(RecomputeModule::kMoe));
}

void AddMlpInputGrad(const Layer& l, const KernelShape& sh, LayerKernels* k) {
  const MlpSplit m = SplitOf(l, sh);
  const double h = static_cast<double>(l.hidden);
  std::vector<Kernel>& bwd = k->backward_input;
  if (l.experts == 0) {
    AddDense(l, sh, m, m.f, false, false,
             {"fc2_dgrad_allgather", "fc1_dgrad_reducescatter", "fc1_dgrad_allreduce"}, k);
    return;
  }
  const double own = m.routed * h * sh.e;
  const double copies = m.copies * h * sh.e;
  const double gathered = m.tokens * h * sh.e;
  if (l.shared_experts > 0) {
    AddDense(l, sh, m, m.shared_f, true, false,
             {"shared_fc2_dgrad_allgather", "shared_fc1_dgrad_reducescatter",
              "shared_fc1_dgrad_allreduce"},
             k);
  }
  // Reads dy, the copies' outputs and the weights; writes the copies' output gradients and
  // the weights' gradients.
  bwd.push_back(MemoryKernel("unpermute_dgrad", own + 2 * copies + 2 * m.copies * sh.e));
  if (m.r.ep > 1) {
    k->backward_input_comm.push_back(
        Expert("moe_combine_dgrad_alltoall", TokenExchange::kCombine, copies, l));
  }
  if (m.r.etp > 1) {
    k->backward_input_comm.push_back(ExpertTensor(
        "moe_etp_dgrad_allgather", TokenExchange::kCombine, CollectiveKind::kAllGather, gathered));
  }
  const DensePieces e = Experts(l, sh, m);
  bwd.push_back(e.fc2.input_grad);
  bwd.push_back(e.act_grad);
  bwd.push_back(e.fc1.input_grad);
  if (m.r.etp > 1) {
    k->backward_input_comm.push_back(ExpertTensor("moe_etp_dgrad_reducescatter",
                                                  TokenExchange::kDispatch,
                                                  CollectiveKind::kReduceScatter, gathered));
  }
  if (m.r.ep > 1) {
    k->backward_input_comm.push_back(
        Expert("moe_dispatch_dgrad_alltoall", TokenExchange::kDispatch, copies, l));
  }
  // Reads the copies' gradients and the ids; writes the tokens' gradient.
  bwd.push_back(MemoryKernel("permute_dgrad", copies + m.copies * 4 + own));
  // Reads the weights' gradients and the probabilities; writes the logits' gradient.
  bwd.push_back(MemoryKernel("router_topk_dgrad",
                             m.copies * sh.e + 2 * m.routed * m.experts * sh.e));
  bwd.push_back(GemmKernel("router_dgrad", m.routed, m.experts, h, sh.e));
  // Sums the router's, the experts' (and the shared experts') input gradients.
  bwd.push_back(MemoryKernel("moe_grad_add", (l.shared_experts > 0 ? 4 : 3) * own));
}

void AddMlpWeightGrads(const Layer& l, const KernelShape& sh, LayerKernels* k) {
  const MlpSplit m = SplitOf(l, sh);
  if (l.experts == 0) {
    const DensePieces p = Dense(l, sh, m.r.rows, m.f, false);
    AddWeightGrads(p.fc2, k);
    AddWeightGrads(p.fc1, k);
    return;
  }
  const DensePieces e = Experts(l, sh, m);
  AddWeightGrads(e.fc2, k);
  AddWeightGrads(e.fc1, k);
  if (l.shared_experts > 0) {
    const DensePieces s = Dense(l, sh, m.r.rows, m.shared_f, true);
    AddWeightGrads(s.fc2, k);
    AddWeightGrads(s.fc1, k);
  }
  k->backward_weight.push_back(
      GemmKernel("router_wgrad", static_cast<double>(l.hidden), m.routed, m.experts, sh.e));
}

}  // namespace pp
