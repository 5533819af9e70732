// The registry of layer kinds: for each kind in PP_LAYER_KINDS (core/layer_kinds.h), one
// entry that holds everything the core and the analytic profiler know about it — its JSON
// name and fields, the rules for its widths, its parameter count and its per-micro-batch
// memory and kernels. Its CPU and CUDA layers are found through the same list (layers/).
// Model reading and writing (core/model.cc), LayerParamCount, the analytic profiler
// (profiler/analytic.cc, profiler/kernels.cc) and the profiler backends ask the entry; none of
// them names a kind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/json_util.h"
#include "core/kernel_cost.h"
#include "core/model.h"
#include "core/status.h"

namespace pp {

// What a kind's width rule sees: the width of the previous layer's output (0: token ids) and
// the model's input. Its errors name the layer's JSON path ("layers[3].in: ...").
class WidthContext {
 public:
  WidthContext(std::string at, int64_t in_width, const ModelInput& input)
      : at_(std::move(at)), in_width_(in_width), input_(input) {}
  int64_t in_width() const { return in_width_; }
  const ModelInput& input() const { return input_; }
  // "<path>.<field>: <problem>" (or "<path>: <problem>" for an empty field).
  Status Fail(std::string_view field, const std::string& problem) const;
  // Ok when `got` is the input width, else the error that `field` does not match it.
  Status Expect(std::string_view field, int64_t got) const;

 private:
  std::string at_;
  int64_t in_width_;
  const ModelInput& input_;
};

// One layer kind. Entries are stateless singletons; every method is const and thread-safe.
class LayerKindEntry {
 public:
  LayerKindEntry() = default;
  LayerKindEntry(const LayerKindEntry&) = delete;
  LayerKindEntry& operator=(const LayerKindEntry&) = delete;
  virtual ~LayerKindEntry() = default;

  // The "op" of the model and profile formats.
  virtual std::string_view name() const = 0;
  // A loss is the model's last layer and outputs one fp32 value, its mean over rows.
  virtual bool is_loss() const { return false; }
  // Its input is token ids: it must be a token model's first layer, and only there.
  virtual bool reads_token_ids() const { return false; }

  // Reads the kind's own fields of one "layers" entry into `spec` (name, op and repeat are
  // read already) and checks them against each other; problems go to `r`.
  virtual void Read(FieldReader& r, Layer* spec) const = 0;
  // Writes the fields Read reads (defaults written out).
  virtual void Write(const Layer& spec, Json* out) const = 0;
  // Checks an expanded layer against its input (c.in_width()) and returns the width of its
  // output rows (0: a scalar loss).
  virtual Result<int64_t> OutWidth(const Layer& l, const WidthContext& c) const = 0;

  // Parameters the layer holds (a tied linear counts its own copy of the shared weight).
  virtual int64_t ParamCount(const Layer& l) const = 0;
  // Parameters one rank holds when the layer is split by `par` (docs/analytic.md, "Under
  // parallelism"): the kind's Megatron-style share of each split matrix, and in full every
  // part that each rank keeps whole (norm gains, row-parallel biases, a router, position
  // tables). ParamCount when nothing is split; the default keeps everything whole.
  virtual int64_t RankParamCount(const Layer& l, const ShardDegrees& par) const;
  // Of those, the routed experts' (a mixture of experts' grouped MLPs), whose data
  // parallelism is the expert-data-parallel group's (ParallelLayout::expert_dp). 0 unless the
  // kind has experts.
  virtual int64_t RankExpertParamCount(const Layer&, const ShardDegrees&) const { return 0; }
  // Of those (RankParamCount under `par`), the parameters a layer tied to another (tied_to)
  // shares with it, which the model counts once, at the other layer. 0 unless the kind can be
  // tied.
  virtual int64_t SharedParamCount(const Layer&, const ShardDegrees&) const { return 0; }
  // Ids the layer reads from the micro-batch (token ids, class labels) lie in
  // [0, IdRange): the vocabulary of an embedding, else max(in_width, 1).
  virtual int64_t IdRange(const Layer& l) const;

  // Analytic memory for one micro-batch of shape `sh`, in bytes: what the layer keeps for its
  // backward (docs/analytic.md) and what it sends to the next layer (rows x out_width x e; a
  // loss sends one fp32 value), for one rank of sh.par.
  virtual double ActivationBytes(const Layer& l, const KernelShape& sh) const = 0;
  virtual double OutputBytes(const Layer& l, const KernelShape& sh) const;
  // Of ActivationBytes, what selective recomputation of module `m` drops and rebuilds
  // (core/recompute_modules.h; for core_attn the softmax probabilities, their dropout's output
  // and mask, or the fused kernel's row statistics); 0 for a layer without that module.
  virtual double ModuleBytes(const Layer&, const KernelShape&, RecomputeModule) const { return 0; }
  // Appends the kernels of one micro-batch (kernel_cost.h conventions) to `k`. A part with
  // nothing to do (the input gradient of an embedding, the weight gradient of a relu) stays
  // empty. `l` comes from a loaded Model (its widths are filled in).
  virtual void AddKernels(const Layer& l, const KernelShape& sh, LayerKernels* k) const = 0;
};

// The entry of `kind`. Every LayerKind has one (PP_LAYER_KINDS); a value outside the enum
// gets an entry named "?" that rejects every layer and counts nothing.
const LayerKindEntry& KindEntry(LayerKind kind);

// The entries themselves, one per row of PP_LAYER_KINDS (core/kinds/*.cc).
#define PP_DECLARE_KIND_ENTRY(Name, Impl) const LayerKindEntry& Name##Kind();
PP_LAYER_KINDS(PP_DECLARE_KIND_ENTRY)
#undef PP_DECLARE_KIND_ENTRY

}  // namespace pp
