#include "partitioner/cost_model.h"

#include <algorithm>
#include <cmath>

#include "core/model.h"
#include "partitioner/data_parallel.h"

namespace pp {

StateBytes TrainingState(Optimizer optimizer, DType dtype, int dp, int zero, int64_t expert_dp) {
  StateBytes s;
  const int64_t e = DTypeBytes(dtype);
  s.dtype_bytes = e;
  s.dp = dp < 1 ? 1 : dp;
  s.expert_dp = expert_dp < 0 ? 0 : expert_dp;
  int64_t weights = e, gradients = 0, states = 0;
  switch (optimizer) {
    case Optimizer::kAdam:
      if (zero == 0) {
        gradients = MainGradientBytes(e, zero);
        states = 16 - 2 * e;
      } else {
        gradients = MainGradientBytes(e, zero);
        states = e < 4 ? 12 : 8;
      }
      break;
    case Optimizer::kSgd:
      gradients = e;
      break;
    case Optimizer::kNone:
      break;
  }
  const bool shard_states = zero >= 1, shard_gradients = zero >= 2, shard_weights = zero >= 3;
  // ZeRO 3 gathers a layer's parameters before its forward and backward, the next layer's
  // already on the way (FSDP's prefetch), and holds the layer's gradient unsharded until it
  // is reduce-scattered: two layers' parameters and one layer's gradients at their peak.
  if (shard_weights && s.dp > 1) {
    s.gather_per_param_byte = 2 + (optimizer == Optimizer::kNone ? 0 : GradientScale(dtype));
  }
  s.replicated = (shard_weights ? 0 : weights) + (shard_gradients ? 0 : gradients) +
                 (shard_states ? 0 : states);
  s.sharded = (shard_weights ? weights : 0) + (shard_gradients ? gradients : 0) +
              (shard_states ? states : 0);
  return s;
}

StateBytes TrainingState(Optimizer optimizer, DType dtype, const ParallelLayout& layout) {
  StateBytes s = TrainingState(optimizer, dtype, layout.dp, layout.zero, layout.expert_dp());
  if (!GradientCopiesApply(layout) || optimizer == Optimizer::kNone) return s;
  const int64_t e = DTypeBytes(dtype);
  if (layout.fp32_grad_copy && optimizer == Optimizer::kAdam && e == 2) s.replicated += 4;
  if (layout.ddp_bucket_copy) s.replicated += MainGradientBytes(e, 0);
  return s;
}

ProfileTie TieOf(const Profile& profile) {
  ProfileTie tie;
  const size_t n = profile.layers.size();
  for (size_t i = 0; i < n; ++i) {
    const LayerProfile& l = profile.layers[i];
    if (l.tied_to.empty() || l.tied_param_bytes == 0) continue;
    for (size_t j = 0; j < n; ++j) {
      if (j == i || profile.layers[j].name != l.tied_to) continue;
      tie.lo = static_cast<int>(std::min(i, j));
      tie.hi = static_cast<int>(std::max(i, j));
      tie.bytes = std::min({l.tied_param_bytes, l.param_bytes, profile.layers[j].param_bytes});
      return tie;
    }
  }
  return tie;
}

CostModel::CostModel(const Profile& profile, Optimizer optimizer)
    : CostModel(profile, TrainingState(optimizer, profile.dtype)) {}

CostModel::CostModel(const Profile& profile, const StateBytes& state, RecomputeModules modules)
    : profile_(profile), layers_(profile.layers.size()), state_(state), modules_(modules) {
  // Prefix sums; long double accumulation keeps range sums close to direct sums. Prefix values
  // never decrease, so a larger range never costs less (the solvers rely on this).
  forward_.assign(layers_ + 1, 0.0);
  backward_.assign(layers_ + 1, 0.0);
  total_.assign(layers_ + 1, 0.0);
  params_.assign(layers_ + 1, 0);
  expert_params_.assign(layers_ + 1, 0);
  activations_.assign(layers_ + 1, 0);
  outputs_.assign(layers_ + 1, 0);
  std::vector<WideBytes> each(layers_), block_each, selective_each(layers_), params_each(layers_);
  selective_ms_.assign(layers_ + 1, 0.0);
  selective_bytes_.assign(layers_ + 1, 0);
  blocks_before_.assign(layers_ + 1, 0);
  block_forward_.assign(1, 0.0);
  block_activations_.assign(1, 0);
  block_inputs_.assign(1, 0);
  long double f = 0, b = 0, t = 0, selective_f = 0, block_f = 0;
  for (size_t i = 0; i < layers_; ++i) {
    const LayerProfile& l = profile.layers[i];
    f += l.forward_ms;
    b += l.backward_ms;
    t += static_cast<long double>(l.forward_ms) + l.backward_ms;
    forward_[i + 1] = static_cast<double>(f);
    backward_[i + 1] = static_cast<double>(b);
    total_[i + 1] = static_cast<double>(t);
    params_[i + 1] = params_[i] + l.param_bytes;
    expert_params_[i + 1] = expert_params_[i] + l.routed_expert_bytes();
    activations_[i + 1] = activations_[i] + l.activation_bytes;
    outputs_[i + 1] = outputs_[i] + l.output_bytes;
    each[i] = l.activation_bytes;
    params_each[i] = l.param_bytes;
    const ModuleFigures again = l.Selective(modules_);
    selective_f += again.forward_ms;
    selective_ms_[i + 1] = static_cast<double>(selective_f);
    selective_each[i] = again.bytes;
    selective_bytes_[i + 1] = selective_bytes_[i] + selective_each[i];
    // The decoder's blocks: a multi-token prediction block is not one of them (Megatron-LM
    // splits and recomputes the decoder's, and keeps the module with the loss).
    const bool block = ParseLayerKind(l.op) == LayerKind::kTransformerBlock && !l.mtp;
    blocks_before_[i + 1] = blocks_before_[i] + (block ? 1 : 0);
    if (!block) continue;
    block_layer_.push_back(static_cast<int>(i));
    block_f += l.forward_ms;
    block_forward_.push_back(static_cast<double>(block_f));
    block_activations_.push_back(block_activations_.back() + l.activation_bytes);
    block_inputs_.push_back(block_inputs_.back() +
                            (i > 0 ? profile.layers[i - 1].output_bytes : 0));
    block_each.push_back(l.activation_bytes);
  }
  tie_ = TieOf(profile);
  most_activation_ = RangeMax(std::move(each));
  block_most_activation_ = RangeMax(std::move(block_each));
  most_selective_bytes_ = RangeMax(std::move(selective_each));
  most_params_ = RangeMax(std::move(params_each));
}

WideBytes CostModel::GatherBufferBytes(int first, int last) const {
  if (state_.gather_per_param_byte <= 0 || first > last) return 0;
  return static_cast<WideBytes>(
      std::ceil(static_cast<double>(most_params_.Of(first, last)) * state_.gather_per_param_byte));
}

RangeMax::RangeMax(std::vector<WideBytes> values) {
  const size_t n = values.size();
  rows_.push_back(std::move(values));
  for (size_t width = 2; width <= n; width *= 2) {
    const std::vector<WideBytes>& below = rows_.back();
    std::vector<WideBytes> row(n - width + 1);
    for (size_t i = 0; i < row.size(); ++i) row[i] = std::max(below[i], below[i + width / 2]);
    rows_.push_back(std::move(row));
  }
}

WideBytes RangeMax::Of(int first, int last) const {
  if (first > last || rows_.empty()) return 0;
  const int len = last - first + 1;
  int j = 0;
  while ((2 << j) <= len) ++j;
  const std::vector<WideBytes>& row = rows_[j];
  return std::max(row[first], row[last + 1 - (1 << j)]);
}

FirstBlocks CostModel::BlocksOf(int first, int last, int count) const {
  FirstBlocks b;
  const int from = blocks_before_[first];  // block index of the range's first block
  b.count = std::min(count, blocks_before_[last + 1] - from);
  if (b.count <= 0) return FirstBlocks{};
  const int to = from + b.count;  // one past the last block taken
  b.forward_ms = block_forward_[to] - block_forward_[from];
  b.activations = block_activations_[to] - block_activations_[from];
  b.inputs = block_inputs_[to] - block_inputs_[from];
  b.at_layer_zero = block_layer_[from] == 0;
  b.most_activation = block_most_activation_.Of(from, to - 1);
  return b;
}

uint64_t CostModel::SendBytes(int last) const {
  return last + 1 < static_cast<int>(layers_) ? profile_.layers[last].output_bytes : 0;
}

double CostModel::TransferMs(int last) const {
  return profile_.link.TransferMs(profile_.layers[last].output_bytes);
}

double CostModel::TransferMs(int last, const Link& link) const {
  return link.TransferMs(profile_.layers[last].output_bytes);
}

StageSetup StageSetup::Uniform(const CostModel& cost, int stages,
                               std::optional<uint64_t> memory_limit) {
  StageSetup setup;
  setup.cost.assign(stages, &cost);
  setup.memory_limit.assign(stages, memory_limit);
  setup.link.assign(stages > 0 ? stages - 1 : 0, cost.link());
  return setup;
}

bool StageSetup::SameDevices() const {
  for (size_t s = 1; s < cost.size(); ++s) {
    if (cost[s] != cost[0] || memory_limit[s] != memory_limit[0]) return false;
  }
  return true;
}

}  // namespace pp
