// cross_entropy and mse: no fields, no parameters; the model's last layer, with one fp32
// output (the mean loss over rows). cross_entropy reads class labels in [0, in_width) and
// keeps the softmax of its logits; mse reads targets of the input's shape and keeps the
// difference from them. Under tensor parallelism cross_entropy is vocabulary-parallel (its
// input is the column-split logits of the head, ceil(in_width / tp) columns a rank): the row
// maximum, the target's logit and the sum of exponentials are all-reduced over the tensor
// ranks (three fp32 values a row); mse works on the sequence-parallel share of the rows.
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
    return Tensor(l, sh);  // the softmax of the logits, or the difference from the target
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const double tensor = Tensor(l, sh);
    const RankSplit r = RankSplitOf(sh);
    const double rows = r.rows;
    if (ce_) {
      // Reads the logits and int32 labels; writes the softmax (kept) and an fp32 loss per row.
      k->forward.push_back(MemoryKernel("cross_entropy", 2 * tensor + rows * 4 + rows * 4));
      // Reads the softmax and the labels; writes the logits' gradient.
      k->backward_input.push_back(MemoryKernel("cross_entropy_dgrad", 2 * tensor + rows * 4));
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
