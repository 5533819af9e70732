// cross_entropy and mse: no fields, no parameters; the model's last layer, with one fp32
// output (the mean loss over rows). cross_entropy reads class labels in [0, in_width) and
// keeps the softmax of its logits; mse reads targets of the input's shape and keeps the
// difference from them.
#include "core/kind_entry.h"

namespace pp {
namespace {

class Loss final : public LayerKindEntry {
 public:
  explicit Loss(bool cross_entropy) : ce_(cross_entropy) {}
  std::string_view name() const override { return ce_ ? "cross_entropy" : "mse"; }
  bool is_loss() const override { return true; }

  void Read(FieldReader&, Layer*) const override {}
  void Write(const Layer&, Json*) const override {}
  Result<int64_t> OutWidth(const Layer&, const WidthContext&) const override { return 0; }
  int64_t ParamCount(const Layer&) const override { return 0; }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    return Tensor(l, sh);  // the softmax of the logits, or the difference from the target
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const double tensor = Tensor(l, sh);
    if (ce_) {
      // Reads the logits and int32 labels; writes the softmax (kept) and an fp32 loss per row.
      k->forward.push_back(MemoryKernel("cross_entropy", 2 * tensor + sh.n * 4 + sh.n * 4));
      // Reads the softmax and the labels; writes the logits' gradient.
      k->backward_input.push_back(MemoryKernel("cross_entropy_dgrad", 2 * tensor + sh.n * 4));
    } else {
      // Reads the prediction and the target; writes the difference (kept) and the fp32 sum.
      k->forward.push_back(MemoryKernel("mse", 3 * tensor + 4));
      // Reads the difference; writes the prediction's gradient.
      k->backward_input.push_back(MemoryKernel("mse_dgrad", 2 * tensor));
    }
  }

 private:
  // One [N x in_width] tensor in bytes.
  static double Tensor(const Layer& l, const KernelShape& sh) {
    return sh.n * static_cast<double>(l.in_width) * sh.e;
  }
  bool ce_;
};

}  // namespace

const LayerKindEntry& CrossEntropyKind() {
  static const Loss* const kEntry = new Loss(true);
  return *kEntry;
}

const LayerKindEntry& MseKind() {
  static const Loss* const kEntry = new Loss(false);
  return *kEntry;
}

}  // namespace pp
