// relu and gelu (tanh approximation): no fields, no parameters; elementwise, so the output
// width is the input's. They keep their input for the backward. Under parallelism a rank
// works on its sequence-parallel share of the rows (core/kinds/pieces.h RankSplit).
#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

class Activation final : public LayerKindEntry {
 public:
  explicit Activation(bool gelu) : gelu_(gelu) {}
  std::string_view name() const override { return gelu_ ? "gelu" : "relu"; }

  void Read(FieldReader&, Layer*) const override {}
  void Write(const Layer&, Json*) const override {}
  Result<int64_t> OutWidth(const Layer&, const WidthContext& c) const override {
    return c.in_width();
  }
  int64_t ParamCount(const Layer&) const override { return 0; }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    return Tensor(l, sh);  // the input
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    k->forward.push_back(MemoryKernel(gelu_ ? "gelu" : "relu", 2 * Tensor(l, sh)));
    // Reads dy and the kept input; writes dx.
    k->backward_input.push_back(
        MemoryKernel(gelu_ ? "gelu_dgrad" : "relu_dgrad", 3 * Tensor(l, sh)));
  }

 private:
  // One rank's [rows x in_width] tensor in bytes.
  static double Tensor(const Layer& l, const KernelShape& sh) {
    return RankSplitOf(sh).sp_rows * static_cast<double>(l.in_width) * sh.e;
  }
  bool gelu_;
};

}  // namespace

const LayerKindEntry& ReluKind() {
  static const Activation* const kEntry = new Activation(false);
  return *kEntry;
}

const LayerKindEntry& GeluKind() {
  static const Activation* const kEntry = new Activation(true);
  return *kEntry;
}

}  // namespace pp
