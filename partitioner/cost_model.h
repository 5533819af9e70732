// The default stage cost model of DESIGN.md over one profile, with O(1) queries for any
// contiguous layer range [first, last] (inclusive) from prefix sums.
//
//   stage time      = sum forward_ms + sum backward_ms of its layers
//   peak memory     = sum param_bytes x state multiplier + in_flight x sum activation_bytes
//   transfer        = latency_ms + 1000 x output_bytes(last layer) / bandwidth, each direction
//
// Every planner, baseline and report reads stage costs through this class, so two splits are
// always compared with the same arithmetic.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/plan.h"
#include "core/profile.h"

namespace pp {

// Wide enough that sums of 100,000 layers of up to 2^53 bytes times 16 never overflow.
using WideBytes = unsigned __int128;

// Bytes of training state per byte of parameters: adam holds 16 bytes per parameter (weights,
// gradients, fp32 master copy, two fp32 moments), so 8x bf16 or 4x fp32 param_bytes; sgd 2x
// (weights and gradients); none 1x (inference).
int64_t StateMultiplier(Optimizer optimizer, DType dtype);

class CostModel {
 public:
  // `profile` must outlive the model.
  CostModel(const Profile& profile, Optimizer optimizer);

  int num_layers() const { return static_cast<int>(layers_); }
  int64_t state_multiplier() const { return multiplier_; }

  double ForwardMs(int first, int last) const { return Diff(forward_, first, last); }
  double BackwardMs(int first, int last) const { return Diff(backward_, first, last); }
  // Forward + backward of one micro-batch: the quantity max_stage_ms maximises.
  double StageMs(int first, int last) const { return Diff(total_, first, last); }
  WideBytes ParamBytes(int first, int last) const { return params_[last + 1] - params_[first]; }
  WideBytes ActivationBytes(int first, int last) const {
    return activations_[last + 1] - activations_[first];
  }
  WideBytes PeakMemory(int first, int last, int in_flight) const {
    return ParamBytes(first, last) * static_cast<WideBytes>(multiplier_) +
           ActivationBytes(first, last) * static_cast<WideBytes>(in_flight);
  }
  // Bytes a stage ending at `last` sends forward per micro-batch (0 after the last layer).
  uint64_t SendBytes(int last) const;
  // One transfer across the boundary after layer `last`, over the profile's link or `link`.
  double TransferMs(int last) const;
  double TransferMs(int last, const Link& link) const;
  const Link& link() const { return profile_.link; }

 private:
  static double Diff(const std::vector<double>& prefix, int first, int last) {
    return prefix[last + 1] - prefix[first];
  }
  const Profile& profile_;
  size_t layers_;
  int64_t multiplier_;
  std::vector<double> forward_, backward_, total_;
  std::vector<WideBytes> params_, activations_;
};

// Stages on devices of their own (heterogeneous devices, several nodes): stage s reads its
// times from cost[s] (byte counts are equal across them: one model, micro-batch and dtype),
// must fit memory_limit[s] (nullopt: none), and the boundary after stage s crosses link[s].
struct StageSetup {
  std::vector<const CostModel*> cost;                 // p entries
  std::vector<std::optional<uint64_t>> memory_limit;  // p entries
  std::vector<Link> link;                             // p - 1 entries

  // Every stage on `cost`'s device under one limit, every boundary on its profile's link.
  static StageSetup Uniform(const CostModel& cost, int stages,
                            std::optional<uint64_t> memory_limit);
  // Whether every stage shares one cost model and one memory limit.
  bool SameDevices() const;
};

}  // namespace pp
