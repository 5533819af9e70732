// The default stage cost model of DESIGN.md over one profile, with O(1) queries for any
// contiguous layer range [first, last] (inclusive) from prefix sums.
//
//   stage time      = sum forward_ms + sum backward_ms of its layers
//   peak memory     = state bytes of sum param_bytes + in_flight x sum activation_bytes
//   transfer        = latency_ms + 1000 x output_bytes(last layer) / bandwidth, each direction
//
// Every planner, baseline and report reads stage costs through this class, so two splits are
// always compared with the same arithmetic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/parallelism.h"
#include "core/plan.h"
#include "core/profile.h"

namespace pp {

// Wide enough that sums of 100,000 layers of up to 2^53 bytes times 16 never overflow.
using WideBytes = unsigned __int128;

// Bytes of training state of `param_bytes` of parameters over dp data-parallel ranks:
// ceil(param_bytes x (replicated x dp + sharded) / (dtype_bytes x dp)), exact in integers
// (replicated and sharded are bytes per parameter, one parameter being dtype_bytes of
// param_bytes). The default is today's Adam state without sharding: 16 bytes per parameter.
struct StateBytes {
  int64_t replicated = 16;
  int64_t sharded = 0;
  int64_t dtype_bytes = 2;
  int64_t dp = 1;
  // The routed experts' parameters shard over the expert-data-parallel degree instead
  // (ParallelLayout::expert_dp; 0: dp).
  int64_t expert_dp = 0;
  // ZeRO 3's working buffer, per byte of the largest layer's parameters (0: none): the
  // gathered parameters of it and of the next layer, and its unsharded gradients.
  double gather_per_param_byte = 0;
  // The state of `param_bytes` of parameters, `expert_bytes` of them the routed experts'.
  WideBytes Of(WideBytes param_bytes, WideBytes expert_bytes = 0) const {
    return Shard(param_bytes - expert_bytes, dp) +
           Shard(expert_bytes, expert_dp > 0 ? expert_dp : dp);
  }
  WideBytes Shard(WideBytes bytes, int64_t over) const {
    if (bytes == 0) return 0;
    const WideBytes num = bytes * static_cast<WideBytes>(replicated * over + sharded);
    const WideBytes den = static_cast<WideBytes>(dtype_bytes * over);
    return (num + den - 1) / den;
  }
  // Bytes of state per byte of parameters, as a double (reports).
  double PerParamByte() const {
    return (static_cast<double>(replicated) + static_cast<double>(sharded) / dp) / dtype_bytes;
  }
};

// The training state of `optimizer` on parameters of `dtype` under ZeRO stage `zero` over dp
// ranks (docs/cost-model.md, "Data parallelism and ZeRO"). Adam, zero 0: 16 bytes per
// parameter replicated (weights e, gradients e, fp32 master copy and two fp32 moments; 8x bf16
// param_bytes, 4x fp32); zero >= 1 (Megatron's distributed optimizer, fp32 main gradients):
// weights e, gradients 4, optimizer state 12 (8 when e = 4), sharded by stage: 1 the
// optimizer state, 2 also the gradients, 3 also the weights. SGD: weights and gradients (e
// each); none: the weights.
// expert_dp: the routed experts' data-parallel degree (0: dp).
StateBytes TrainingState(Optimizer optimizer, DType dtype, int dp = 1, int zero = 0,
                         int64_t expert_dp = 0);
// The same for `layout`'s dp, ZeRO stage and expert degree, with the gradient copies its
// software keeps (ParallelLayout::fp32_grad_copy, ddp_bucket_copy; ZeRO 0 only).
StateBytes TrainingState(Optimizer optimizer, DType dtype, const ParallelLayout& layout);

// A chunk's peak in three parts: state + in_flight x per_micro_batch + transient (when it
// recomputes: its activations of the one micro-batch it rebuilds in its backward).
struct ChunkMemory {
  WideBytes state = 0, per_micro_batch = 0, transient = 0;
  WideBytes Peak(int in_flight) const {
    return state + per_micro_batch * static_cast<WideBytes>(in_flight) + transient;
  }
};

// The peak of a device over its chunks, added one at a time (each at the most micro-batches
// it ever holds): at most the sum of their own peaks, and at most their state plus the most
// micro-batches the device ever holds at once (`device_in_flight`) times the largest
// per-micro-batch part plus the largest transient (a device runs one op at a time). Peak is
// the less of the two: the second is far below the first in interleaved schedules, whose
// chunks hold their most at different times.
struct DeviceMemory {
  WideBytes sum = 0, state = 0, most = 0, transient = 0;
  void Add(const ChunkMemory& m, int in_flight) {
    sum += m.Peak(in_flight);
    state += m.state;
    most = std::max(most, m.per_micro_batch);
    transient = std::max(transient, m.transient);
  }
  WideBytes Peak(int device_in_flight) const {
    return std::min(sum, state + most * static_cast<WideBytes>(device_in_flight) + transient);
  }
};

// Range maxima in O(1) after O(n log n) set-up (a sparse table).
class RangeMax {
 public:
  RangeMax() = default;
  explicit RangeMax(std::vector<WideBytes> values);
  WideBytes Of(int first, int last) const;  // over [first, last]; 0 when empty

 private:
  std::vector<std::vector<WideBytes>> rows_;  // rows_[j][i]: the most of [i, i + 2^j)
};

// The first transformer blocks (layers whose op is transformer_block) of a layer range: what
// a stage that recomputes by block (RecomputeUnit::kBlock) runs again and keeps the inputs of.
struct FirstBlocks {
  int count = 0;                  // blocks taken (at most the number asked)
  double forward_ms = 0;          // their forward
  WideBytes activations = 0;      // their activation bytes
  WideBytes inputs = 0;           // the output bytes of the layer before each (none for layer 0)
  bool at_layer_zero = false;     // one of them is layer 0, whose input is the model input
  WideBytes most_activation = 0;  // the largest one's activation bytes
};

// The profile's first tie (a layer with tied_to that names another layer): the two layers'
// indices, lo < hi, and the bytes they share (at most either one's param_bytes, so that a
// larger range never holds fewer bytes); lo = -1 when there is none. Later ties are ignored.
struct ProfileTie {
  int lo = -1, hi = -1;
  WideBytes bytes = 0;
};
ProfileTie TieOf(const Profile& profile);

class CostModel {
 public:
  // `profile` must outlive the model.
  CostModel(const Profile& profile, Optimizer optimizer);
  // With the training state sharded as `state` says (data parallelism with ZeRO), and
  // selective recomputation recomputing `modules` (RecomputeUnit::kSelective).
  CostModel(const Profile& profile, const StateBytes& state,
            RecomputeModules modules = RecomputeModules::Default());

  int num_layers() const { return static_cast<int>(layers_); }
  const StateBytes& state() const { return state_; }
  // Training state of layers [first, last].
  WideBytes StateMemory(int first, int last) const {
    return state_.Of(ParamBytes(first, last), ExpertParamBytes(first, last));
  }

  double ForwardMs(int first, int last) const { return Diff(forward_, first, last); }
  double BackwardMs(int first, int last) const { return Diff(backward_, first, last); }
  // Forward + backward of one micro-batch: the quantity max_stage_ms maximises.
  double StageMs(int first, int last) const { return Diff(total_, first, last); }
  // Less the bytes a tied output layer shares with its embedding when [first, last] holds
  // both (one copy on one stage; docs/cost-model.md, "Tied embeddings").
  WideBytes ParamBytes(int first, int last) const {
    const bool both = tie_.lo >= first && tie_.hi <= last && tie_.lo >= 0;
    return params_[last + 1] - params_[first] - (both ? tie_.bytes : 0);
  }
  const ProfileTie& tie() const { return tie_; }
  // Of those, the routed experts'.
  WideBytes ExpertParamBytes(int first, int last) const {
    return expert_params_[last + 1] - expert_params_[first];
  }
  WideBytes ActivationBytes(int first, int last) const {
    return activations_[last + 1] - activations_[first];
  }
  // The inputs of layers [first, last] except layer 0's (the model input): what a chunk that
  // recomputes layer by layer keeps per micro-batch beside the model input.
  WideBytes LayerInputBytes(int first, int last) const {
    const int from = first < 1 ? 1 : first;
    return from > last ? 0 : outputs_[last] - outputs_[from - 1];
  }
  // The most activation bytes of one layer of [first, last] (O(1), a sparse table).
  WideBytes MaxLayerActivationBytes(int first, int last) const {
    return most_activation_.Of(first, last);
  }
  // The first `count` transformer blocks of [first, last] (O(1)).
  FirstBlocks BlocksOf(int first, int last, int count) const;
  // The transformer blocks of the profile, and the layer of block k (k < NumBlocks()).
  int NumBlocks() const { return static_cast<int>(block_layer_.size()); }
  int BlockLayer(int k) const { return block_layer_[k]; }
  // What selective recomputation of the model's modules runs again and drops in [first, last]
  // (LayerProfile::Selective; 0 where a layer has none of them), and the most one layer drops.
  double SelectiveMs(int first, int last) const { return Diff(selective_ms_, first, last); }
  WideBytes SelectiveBytes(int first, int last) const {
    return selective_bytes_[last + 1] - selective_bytes_[first];
  }
  WideBytes MaxSelectiveBytes(int first, int last) const {
    return most_selective_bytes_.Of(first, last);
  }
  // ZeRO 3's gathered parameters and unsharded gradients at their peak over [first, last]
  // (StateBytes::gather_per_param_byte times its largest layer's param_bytes; 0 otherwise).
  WideBytes GatherBufferBytes(int first, int last) const;
  WideBytes PeakMemory(int first, int last, int in_flight) const {
    return StateMemory(first, last) +
           ActivationBytes(first, last) * static_cast<WideBytes>(in_flight) +
           GatherBufferBytes(first, last);
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
  StateBytes state_;
  RecomputeModules modules_;
  ProfileTie tie_;
  std::vector<double> forward_, backward_, total_;
  std::vector<WideBytes> params_, expert_params_, activations_, outputs_;
  RangeMax most_activation_;
  // Transformer blocks: how many come before layer i (n + 1 entries), the layer of each, and
  // prefix sums in block order of their forward, activation and input bytes.
  std::vector<int> blocks_before_, block_layer_;
  std::vector<double> block_forward_;
  std::vector<WideBytes> block_activations_, block_inputs_;
  RangeMax block_most_activation_;
  std::vector<double> selective_ms_;
  std::vector<WideBytes> selective_bytes_;
  RangeMax most_selective_bytes_;
  RangeMax most_params_;
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
