// linear: {"in", "out", "bias" (default true), "tied_to" (an embedding whose table it shares;
// core/model.cc checks the tie)}. y = x W + b. Output width: out.
// Under tensor parallelism the map is column-split (Megatron's ColumnParallelLinear, the
// vocabulary-parallel output head): each rank holds ceil(out / tp) of the columns and their
// biases and writes that share of the output; its input is all-gathered from the sequence-
// parallel shares first (or, without sequence parallelism, the input gradient is all-reduced).
#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

class Linear final : public LayerKindEntry {
 public:
  std::string_view name() const override { return "linear"; }

  void Read(FieldReader& r, Layer* spec) const override {
    spec->in = r.Int("in", 1, kMaxDim);
    spec->out = r.Int("out", 1, kMaxDim);
    spec->bias = r.Bool("bias", true);
    spec->tied_to = r.OptString("tied_to").value_or("");
  }

  void Write(const Layer& s, Json* out) const override {
    Json& l = *out;
    l["in"] = s.in;
    l["out"] = s.out;
    l["bias"] = s.bias;
    if (!s.tied_to.empty()) l["tied_to"] = s.tied_to;
  }

  Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const override {
    PP_RETURN_IF_ERROR(c.Expect("in", l.in));
    return l.out;
  }

  int64_t ParamCount(const Layer& l) const override { return RankParamCount(l, ShardDegrees{}); }
  int64_t RankParamCount(const Layer& l, const ShardDegrees& par) const override {
    const int64_t out = Share(l.out, par.tp);
    return l.in * out + (l.bias ? out : 0);
  }
  // A tied linear shares its weight with the embedding; only its bias is its own.
  int64_t SharedParamCount(const Layer& l, const ShardDegrees& par) const override {
    return l.in * Share(l.out, par.tp);
  }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    // The input (its sequence-parallel share, gathered again for the weight gradient).
    return RankSplitOf(sh).sp_rows * static_cast<double>(l.in_width) * sh.e_inputs;
  }

  double OutputBytes(const Layer& l, const KernelShape& sh) const override {
    return RankSplitOf(sh).rows * static_cast<double>(Share(l.out, sh.par.tp)) * sh.e;
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const RankSplit r = RankSplitOf(sh);
    const double in = static_cast<double>(l.in);
    AddPiece(LinearPiece(WithRows(sh, r.rows), in, static_cast<double>(Share(l.out, r.tp)),
                         l.bias, {"linear", "linear_dgrad", "linear_wgrad", "linear_bias_grad"}),
             k);
    if (r.tp == 1) return;
    const double x = r.rows * in * sh.e;  // the gathered input, or its gradient
    if (r.sp) {
      k->forward_comm.push_back(
          {"linear_allgather", CollectiveKind::kAllGather, CommGroup::kTensor, x, ""});
      k->backward_input_comm.push_back({"linear_dgrad_reducescatter",
                                        CollectiveKind::kReduceScatter, CommGroup::kTensor, x,
                                        ""});
    } else {
      k->backward_input_comm.push_back(
          {"linear_dgrad_allreduce", CollectiveKind::kAllReduce, CommGroup::kTensor, x, ""});
    }
  }
};

}  // namespace

const LayerKindEntry& LinearKind() {
  static const Linear* const kEntry = new Linear();
  return *kEntry;
}

}  // namespace pp
