// cross_entropy and mse: no fields, no parameters; the model's last layer, with one fp32
// output (the mean loss over rows). cross_entropy reads class labels in [0, in_width) and
// keeps the softmax of its logits, in one fused kernel per direction or in Megatron-Core's
// unfused passes (KernelShape::fused_cross_entropy); mse reads targets of the input's shape
// and keeps the difference from them. Under tensor parallelism cross_entropy is
// vocabulary-parallel (its input is the column-split logits of the head, ceil(in_width / tp)
// columns a rank): the row maximum, the target's logit and the sum of exponentials are
// all-reduced over the tensor ranks (three fp32 values a row); mse works on the
// sequence-parallel share of the rows.
#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

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
    // The softmax of the logits (fp32 when unfused), or the difference from the target.
    if (ce_ && !sh.fused_cross_entropy) return Tensor(l, sh) / sh.e * kFp32;
    return Tensor(l, sh);
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const double tensor = Tensor(l, sh);
    const RankSplit r = RankSplitOf(sh);
    const double rows = r.rows;
    if (ce_) {
      if (sh.fused_cross_entropy) {
        // Reads the logits and int32 labels; writes the softmax (kept) and an fp32 loss per
        // row.
        k->forward.push_back(MemoryKernel("cross_entropy", 2 * tensor + rows * 4 + rows * 4));
        // Reads the softmax and the labels; writes the logits' gradient.
        k->backward_input.push_back(MemoryKernel("cross_entropy_dgrad", 2 * tensor + rows * 4));
      } else {
        AddUnfusedCrossEntropy(tensor / sh.e, sh.e, rows, k);
      }
      if (r.tp > 1) {
        for (std::string_view name : {"cross_entropy_max_allreduce",
                                      "cross_entropy_target_allreduce",
                                      "cross_entropy_sum_allreduce"}) {
          k->forward_comm.push_back(
              {name, CollectiveKind::kAllReduce, CommGroup::kTensor, rows * 4, ""});
        }
      }
    } else {
      // Reads the prediction and the target; writes the difference (kept) and the fp32 sum.
      k->forward.push_back(MemoryKernel("mse", 3 * tensor + 4));
      // Reads the difference; writes the prediction's gradient.
      k->backward_input.push_back(MemoryKernel("mse_dgrad", 2 * tensor));
    }
  }

 private:
  // Megatron-Core's vocab_parallel_cross_entropy without its loss fusion, pass by pass, over
  // `elements` logits of `e` bytes (megatron/core/tensor_parallel/cross_entropy.py): the cast
  // to fp32 (none for fp32 logits), the row maximum, its subtraction in place, the
  // exponential in place, the row sum, the division in place that leaves the softmax; the
  // target's logit and the loss per row. In the backward, the target's entry lowered (a few
  // bytes a row), the multiplication by the loss's gradient in place, and the cast back to
  // the logits' dtype.
  static void AddUnfusedCrossEntropy(double elements, double e, double rows, LayerKernels* k) {
    const double f = kFp32 * elements;
    const bool cast = e != kFp32;
    if (cast) k->forward.push_back(MemoryKernel("cross_entropy_cast", elements * e + f));
    k->forward.push_back(MemoryKernel("cross_entropy_max", f + rows * 4));
    k->forward.push_back(MemoryKernel("cross_entropy_shift", 2 * f + rows * 4));
    k->forward.push_back(MemoryKernel("cross_entropy_exp", 2 * f));
    k->forward.push_back(MemoryKernel("cross_entropy_sum", f + rows * 4));
    k->forward.push_back(MemoryKernel("cross_entropy_softmax", 2 * f + rows * 4 * 3));
    k->backward_input.push_back(MemoryKernel("cross_entropy_dgrad", 2 * f + rows * 4 * 3));
    if (cast) {
      k->backward_input.push_back(MemoryKernel("cross_entropy_dgrad_cast", f + elements * e));
    }
  }
  static constexpr double kFp32 = 4;

  // One rank's [rows x in_width] tensor in bytes.
  double Tensor(const Layer& l, const KernelShape& sh) const {
    const RankSplit r = RankSplitOf(sh);
    if (!ce_) return r.sp_rows * static_cast<double>(l.in_width) * sh.e;
    return r.rows * static_cast<double>(Share(l.in_width, r.tp)) * sh.e;
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
