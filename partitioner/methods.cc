#include "partitioner/methods.h"

#include <algorithm>

#include "core/units.h"
#include "partitioner/split_search.h"

namespace pp {
namespace {

std::string WideToString(WideBytes v) {
  if (v <= WideBytes{kMaxBytes}) return FormatBytes(static_cast<uint64_t>(v)) + " (" +
                                          std::to_string(static_cast<uint64_t>(v)) + " bytes)";
  return "more than 8 PiB";
}

}  // namespace

const std::vector<PartitionMethod>& PartitionMethods() {
  static const std::vector<PartitionMethod> kMethods = {
      {"dp", "exact least bottleneck stage under the memory limit", DpBottleneckSplit},
      {"uniform", "equal layer counts per stage", UniformSplit},
      {"blocks", "equal transformer blocks per stage, the other layers at the ends (Megatron-LM's)",
       BlocksSplit},
      {"parameters", "balanced parameter bytes per stage", ParameterSplit},
      {"greedy", "one pass, closing a stage at the average load", GreedySplit},
  };
  return kMethods;
}

const PartitionMethod* FindPartitionMethod(std::string_view name) {
  for (const PartitionMethod& m : PartitionMethods()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

Result<const PartitionMethod*> KnownPartitionMethod(std::string_view name) {
  if (const PartitionMethod* m = FindPartitionMethod(name)) return m;
  return Status::Error("unknown --method " + Quote(name) + " (known: " + PartitionMethodNames() +
                       ")");
}

std::string PartitionMethodNames() {
  std::string names;
  for (const PartitionMethod& m : PartitionMethods()) {
    names += (names.empty() ? "" : ", ") + std::string(m.name);
  }
  return names;
}

StageSetup DevicesOf(const SplitContext& ctx) {
  if (!ctx.devices.cost.empty()) return ctx.devices;
  return StageSetup::Uniform(*ctx.cost, ctx.num_stages, ctx.memory_limit);
}

Result<std::vector<std::vector<int>>> BottleneckCandidates(const SplitContext& ctx) {
  const SplitSearch search(DevicesOf(ctx), ctx.in_flight);
  if (!search.MemoryFeasible() && !ctx.devices.cost.empty()) {
    return Status::Error("no split of the " + std::to_string(ctx.cost->num_layers()) +
                         " layers into " + std::to_string(ctx.num_stages) +
                         " stages fits each device's memory; one limit for every stage that "
                         "fits would be " + WideToString(search.SmallestMemoryLimit()));
  }
  if (!search.MemoryFeasible()) {
    return Status::Error("no split of the " + std::to_string(ctx.cost->num_layers()) +
                         " layers into " + std::to_string(ctx.num_stages) +
                         " stages fits the memory limit of " + WideToString(*ctx.memory_limit) +
                         "; the smallest limit that fits is " +
                         WideToString(search.SmallestMemoryLimit()));
  }
  const double best = search.MinBottleneckMs();
  std::vector<std::vector<int>> candidates;
  for (SplitTie tie : {SplitTie::kFewestTransferMs, SplitTie::kEarly, SplitTie::kLate}) {
    std::optional<std::vector<int>> candidate = search.Split(best, tie);
    if (candidate) candidates.push_back(std::move(*candidate));
  }
  if (candidates.empty()) return Status::Error("internal error: the bottleneck search found no split");
  return candidates;
}

Result<std::vector<int>> DpBottleneckSplit(const SplitContext& ctx) {
  Result<std::vector<std::vector<int>>> candidates = BottleneckCandidates(ctx);
  if (!candidates.ok()) return candidates.status();
  // Equally good splits differ in transfers and in how the schedule overlaps them: simulate a
  // few cheap candidates and keep the fastest (the first on a tie, for reproducible plans).
  size_t chosen = 0;
  double chosen_step = 0;
  for (size_t i = 0; i < candidates->size(); ++i) {
    const double step = ctx.step_time_ms ? ctx.step_time_ms((*candidates)[i]) : 0;
    if (i == 0 || step < chosen_step) {
      chosen = i;
      chosen_step = step;
    }
  }
  return (*candidates)[chosen];
}

Result<std::vector<int>> UniformSplit(const SplitContext& ctx) {
  const int n = ctx.cost->num_layers(), p = ctx.num_stages;
  std::vector<int> boundaries;
  int first = 0;
  for (int s = 0; s + 1 < p; ++s) {
    first += n / p + (s < n % p ? 1 : 0);
    boundaries.push_back(first);
  }
  return boundaries;
}

Result<std::vector<int>> BlocksSplit(const SplitContext& ctx) {
  const int blocks = ctx.cost->NumBlocks(), p = ctx.num_stages;
  if (blocks < p) {
    return Status::Error("--method blocks splits transformer blocks evenly, and the profile has " +
                         std::to_string(blocks) + " for " + std::to_string(p) + " stages");
  }
  std::vector<int> boundaries;
  int block = 0;  // the first block of the next stage
  for (int s = 0; s + 1 < p; ++s) {
    block += blocks / p + (s < blocks % p ? 1 : 0);
    boundaries.push_back(ctx.cost->BlockLayer(block));
  }
  return boundaries;
}

Result<std::vector<int>> ParameterSplit(const SplitContext& ctx) {
  const int n = ctx.cost->num_layers();
  std::vector<uint64_t> weights(n);
  for (int i = 0; i < n; ++i) weights[i] = static_cast<uint64_t>(ctx.cost->ParamBytes(i, i));
  return MinMaxWeightSplit(weights, ctx.num_stages);
}

Result<std::vector<int>> GreedySplit(const SplitContext& ctx) {
  const int n = ctx.cost->num_layers(), p = ctx.num_stages;
  const double target = ctx.cost->StageMs(0, n - 1) / p;
  std::vector<int> boundaries;
  int first = 0;
  for (int s = 0; s + 1 < p; ++s) {
    // Leave at least one layer for each later stage.
    const int last_allowed = n - (p - s);
    int last = first;
    while (last < last_allowed && ctx.cost->StageMs(first, last) < target) ++last;
    // Close before the layer that overshot when that lands nearer the target.
    if (last > first && ctx.cost->StageMs(first, last) - target > target - ctx.cost->StageMs(first, last - 1)) {
      --last;
    }
    boundaries.push_back(last + 1);
    first = last + 1;
  }
  return boundaries;
}

}  // namespace pp
