// The registry: KindEntry's table is expanded from PP_LAYER_KINDS, so every kind in the list
// has its entry (a missing one fails to link) and no entry exists outside it.
#include "core/kind_entry.h"

#include <algorithm>

#include "core/kinds/pieces.h"

namespace pp {
namespace {

// Stands for a LayerKind value outside the enum.
class UnknownKind final : public LayerKindEntry {
 public:
  std::string_view name() const override { return "?"; }
  void Read(FieldReader& r, Layer*) const override { r.Fail("op", "unknown op"); }
  void Write(const Layer&, Json*) const override {}
  Result<int64_t> OutWidth(const Layer&, const WidthContext& c) const override {
    return c.Fail("op", "unknown op");
  }
  int64_t ParamCount(const Layer&) const override { return 0; }
  double ActivationBytes(const Layer&, const KernelShape&) const override { return 0; }
  void AddKernels(const Layer&, const KernelShape&, LayerKernels*) const override {}
};

}  // namespace

Status WidthContext::Fail(std::string_view field, const std::string& problem) const {
  return Status::Error(at_ + (field.empty() ? "" : "." + std::string(field)) + ": " + problem);
}

Status WidthContext::Expect(std::string_view field, int64_t got) const {
  if (got == in_width_) return Status::Ok();
  return Fail(field, std::to_string(got) + " does not match the width " +
                         std::to_string(in_width_) + " of the previous layer's output");
}

int64_t LayerKindEntry::IdRange(const Layer& l) const { return std::max<int64_t>(l.in_width, 1); }

int64_t LayerKindEntry::RankParamCount(const Layer& l, const ShardDegrees&) const {
  return ParamCount(l);
}

// One rank's rows: the sequence-parallel share where sequence parallelism splits them.
double LayerKindEntry::OutputBytes(const Layer& l, const KernelShape& sh) const {
  return is_loss() ? 4.0 : RankSplitOf(sh).sp_rows * static_cast<double>(l.out_width) * sh.e;
}

const LayerKindEntry& KindEntry(LayerKind kind) {
  switch (kind) {
#define PP_KIND_ENTRY_CASE(Name, Impl) \
  case LayerKind::k##Name:             \
    return Name##Kind();
    PP_LAYER_KINDS(PP_KIND_ENTRY_CASE)
#undef PP_KIND_ENTRY_CASE
  }
  static const UnknownKind* const kUnknown = new UnknownKind();
  return *kUnknown;
}

}  // namespace pp
