// layernorm and rmsnorm over the hidden dimension: {"hidden"}, which must match the input
// width. Layer norm has a gain and a shift and keeps fp32 mean and rstd per row; RMS norm has
// a gain and keeps rstd. Under parallelism a rank normalises its sequence-parallel share of
// the rows and keeps the whole gain (core/kinds/pieces.h RankSplit).
#include "core/kind_entry.h"
#include "core/kinds/pieces.h"

namespace pp {
namespace {

class Norm final : public LayerKindEntry {
 public:
  explicit Norm(NormKind norm) : rms_(norm == NormKind::kRmsNorm) {}
  std::string_view name() const override { return rms_ ? "rmsnorm" : "layernorm"; }

  void Read(FieldReader& r, Layer* spec) const override {
    spec->hidden = r.Int("hidden", 1, kMaxDim);
  }
  void Write(const Layer& s, Json* out) const override { (*out)["hidden"] = s.hidden; }

  Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const override {
    PP_RETURN_IF_ERROR(c.Expect("hidden", l.hidden));
    return c.in_width();
  }

  int64_t ParamCount(const Layer& l) const override { return rms_ ? l.hidden : 2 * l.hidden; }

  double ActivationBytes(const Layer& l, const KernelShape& sh) const override {
    const double rows = RankSplitOf(sh).sp_rows;
    const double in = rows * static_cast<double>(l.in_width) * sh.e;
    return rms_ ? in + rows * 4    // input, fp32 rstd
                : in + rows * 8;   // input, fp32 mean and rstd
  }

  void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const override {
    const PieceNames names =
        rms_ ? PieceNames{"rmsnorm", "rmsnorm_dgrad", "rmsnorm_wgrad", ""}
             : PieceNames{"layernorm", "layernorm_dgrad", "layernorm_wgrad", ""};
    AddPiece(NormPiece(WithRows(sh, RankSplitOf(sh).sp_rows), rms_ ? NormKind::kRmsNorm : NormKind::kLayerNorm,
                       static_cast<double>(l.hidden), names),
             k);
  }

 private:
  bool rms_;
};

}  // namespace

const LayerKindEntry& LayerNormKind() {
  static const Norm* const kEntry = new Norm(NormKind::kLayerNorm);
  return *kEntry;
}

const LayerKindEntry& RmsNormKind() {
  static const Norm* const kEntry = new Norm(NormKind::kRmsNorm);
  return *kEntry;
}

}  // namespace pp
