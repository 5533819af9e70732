// Partition methods: each chooses the p-1 stage boundaries for a cost model. They implement
// one small signature and register in methods.cc's table.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "partitioner/cost_model.h"

namespace pp {

struct SplitContext {
  const CostModel* cost = nullptr;  // stage 0's device (every stage's when `devices` is empty)
  int num_stages = 0;
  std::vector<int> in_flight;              // per stage, from the schedule
  // Per device, the most micro-batches it holds at once (over all its chunks); empty: each
  // device's peak is the sum of its chunks' (cost_model.h DeviceMemory).
  std::vector<int> device_in_flight;
  std::optional<uint64_t> memory_limit;    // nullopt: none
  // Simulated step time of a split (ms); used to choose among equally good splits.
  std::function<double(const std::vector<int>&)> step_time_ms;
  // Heterogeneous devices or several nodes: each stage's cost model and memory limit and each
  // boundary's link (memory_limit is then ignored). Empty `devices.cost`: every stage on
  // `cost` under memory_limit, every boundary on its profile's link.
  StageSetup devices;
  // Per-layer times at most every stage's own (the lower envelope over the device types),
  // for the step search's bounds; nullptr: `cost`.
  const CostModel* bound_cost = nullptr;
  // Per layer, lower bounds on its part of any stage's input-gradient (I) and weight-gradient
  // (W) time, summing to at most the stage's own: the step search's bounds for split
  // backwards. Empty: half of each layer's backward each (the simulator's even split).
  std::vector<double> input_lower_ms, weight_lower_ms;
  // Whether stage s may cover layers [first, last], replacing the check of the cost model's
  // peak against the stage's limit (recomputation: a stage fits either way). For a fixed first
  // layer it must not turn true again as `last` grows. Used by the step search.
  std::function<bool(int s, int first, int last)> stage_fits;
  // Several chunks per device with recomputation: chunk s's memory over layers [first, last],
  // replacing the cost model's in the step search's per-chunk checks and device peaks (where
  // stage_fits stays empty).
  std::function<ChunkMemory(int s, int first, int last)> chunk_memory;
};

// ctx.devices, or the uniform setup it stands for when empty.
StageSetup DevicesOf(const SplitContext& ctx);

struct PartitionMethod {
  std::string_view name;
  std::string_view summary;  // one line for --help
  Result<std::vector<int>> (*split)(const SplitContext&);
};

const std::vector<PartitionMethod>& PartitionMethods();
const PartitionMethod* FindPartitionMethod(std::string_view name);
// The method named `name`, or one line naming the known ones.
Result<const PartitionMethod*> KnownPartitionMethod(std::string_view name);
std::string PartitionMethodNames();

// The methods (methods.cc).
// dp: exact least max_stage_ms under the memory limit; among the splits that reach it, the
// one with the least simulated step time of a few cheap candidates. An infeasible memory
// limit is an error naming the smallest limit that fits.
Result<std::vector<int>> DpBottleneckSplit(const SplitContext& ctx);
// The splits that reach the least max_stage_ms which dp chooses among (fewest transfer ms,
// earliest, latest boundaries; duplicates kept). Same errors as DpBottleneckSplit.
Result<std::vector<std::vector<int>>> BottleneckCandidates(const SplitContext& ctx);
// uniform: equal layer counts (the first n mod p stages take one more layer).
Result<std::vector<int>> UniformSplit(const SplitContext& ctx);
// blocks: equal transformer-block counts (the first B mod p stages take one more block), the
// layers before the first block on the first stage and every other layer on the stage of the
// block before it (Megatron-LM's split: num_layers / pp blocks a stage, the embedding first,
// the final norm, output layer and loss last). Fewer blocks than stages is an error.
Result<std::vector<int>> BlocksSplit(const SplitContext& ctx);
// parameters: least largest per-stage parameter bytes (exact).
Result<std::vector<int>> ParameterSplit(const SplitContext& ctx);
// greedy: one pass, closing a stage once it reaches the average load total / p.
Result<std::vector<int>> GreedySplit(const SplitContext& ctx);

}  // namespace pp
