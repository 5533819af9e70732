// linear: {"in", "out", "bias" (default true), "tied_to" (an embedding whose table it shares;
// core/model.cc checks the tie)}. y = x W + b. Output width: out.
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

  int64_t ParamCount(const Layer& l) const override { return l.in * l.out + (l.bias ? l.out : 0); }
  // A tied linear shares its weight with the embedding; only its bias is its own.
  int64_t SharedParamCount(const Layer& l) const override { return l.in * l.out; }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    return sh.n * static_cast<double>(l.in_width) * sh.e;  // the input
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    AddPiece(LinearPiece(sh, static_cast<double>(l.in), static_cast<double>(l.out), l.bias,
                         {"linear", "linear_dgrad", "linear_wgrad", "linear_bias_grad"}),
             k);
  }
};

}  // namespace

const LayerKindEntry& LinearKind() {
  static const Linear* const kEntry = new Linear();
  return *kEntry;
}

}  // namespace pp
