// Per-stage activation recomputation (docs/cost-model.md, "Activation recomputation").
//
// A stage that recomputes keeps, per in-flight micro-batch, only its input (the previous
// stage's output_bytes; for stage 0 the model input), plus one micro-batch's activations
// while that micro-batch's forward is run again inside its backward:
//   peak     = training state of param_bytes (StateBytes) + in_flight x input_bytes
//              + sum activation_bytes
//   backward = backward_ms + forward_ms (one more forward per micro-batch)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/profile.h"
#include "core/status.h"
#include "partitioner/cost_model.h"

namespace pp {

enum class RecomputeMode { kNone, kAll, kAuto };
std::optional<RecomputeMode> ParseRecomputeMode(std::string_view name);

// Bytes of the model input per micro-batch: 4 per token id for token models, features x dtype
// bytes for feature models. Error without a model.
Result<uint64_t> ModelInputBytes(const std::optional<Model>& model, const Profile& profile);

// What a stage [first, last] keeps per in-flight micro-batch when it recomputes.
inline uint64_t RecomputeInputBytes(const CostModel& cost, uint64_t model_input, int first) {
  return first == 0 ? model_input : cost.SendBytes(first - 1);
}

// Peak memory of stage [first, last] with in_flight micro-batches, recomputing or not.
WideBytes StagePeak(const CostModel& cost, int first, int last, int in_flight, bool recompute,
                    uint64_t model_input);

// StagePeak in its three parts (ChunkMemory).
ChunkMemory ChunkMemoryOf(const CostModel& cost, int first, int last, bool recompute,
                          uint64_t model_input);

// Per stage whether it recomputes: every stage (kAll), none (kNone), or exactly the stages
// over their limit without it (kAuto; each stage's peak depends only on its own choice, so
// this is the least set that can fit).
std::vector<char> RecomputeStages(RecomputeMode mode, const StageSetup& setup,
                                  const std::vector<int>& in_flight,
                                  const std::vector<int>& boundaries, uint64_t model_input);

// Exact least max stage time over splits when each stage recomputes as `mode` says, the
// recomputing stages costing one more forward (O(p n^2) dynamic programme: with recomputation
// a stage's memory is no longer monotone in its range). Error when no split fits or when
// p x n^2 exceeds kMaxRecomputeWork (not available yet).
inline constexpr double kMaxRecomputeWork = 2e8;
Result<std::vector<int>> RecomputeBottleneckSplit(RecomputeMode mode, const StageSetup& setup,
                                                  const std::vector<int>& in_flight,
                                                  uint64_t model_input);

// Whether some split fits every stage's limit (setup.memory_limit) with each stage
// recomputing as `mode` says (O(p n log n)).
bool RecomputeSplitExists(RecomputeMode mode, const StageSetup& setup,
                          const std::vector<int>& in_flight, uint64_t model_input);

// The least limit L such that some split fits with every stage's peak under `mode` at most L
// (one cost model for every stage; bisection over integers, each test O(p n log n)).
WideBytes RecomputeLeastLimit(RecomputeMode mode, const CostModel& cost,
                              const std::vector<int>& in_flight, uint64_t model_input);

// "no split ... fits the memory limit, even with --recompute all|auto", naming the least limit
// that fits when every stage is on one device type.
std::string RecomputeInfeasibleMessage(RecomputeMode mode, const StageSetup& setup,
                                       const std::vector<int>& in_flight, uint64_t model_input);

}  // namespace pp
