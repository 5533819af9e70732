// Per-stage activation recomputation (docs/cost-model.md, "Activation recomputation").
//
// A stage that recomputes runs its forward again inside each backward. By the plan's
// RecomputeUnit it keeps, per in-flight micro-batch, only its input (kStage: the previous
// stage's output_bytes; for stage 0 the model input) plus one micro-batch's activations while
// the whole stage's forward is run again, or every layer's input (kLayer) plus one layer's
// activations while that layer's forward is run again:
//   peak     = training state of param_bytes (StateBytes) + in_flight x kept + rebuilt
//              kStage: kept = input_bytes,            rebuilt = sum activation_bytes
//              kLayer: kept = sum of layer inputs,    rebuilt = max activation_bytes
//              kBlock: the first K transformer blocks as kLayer, the other layers' kept
//                      activation_bytes as without recomputation
//              kSelective: kept = sum activation_bytes less what the recomputed modules
//                      drop (LayerProfile::Selective), rebuilt = the most one layer drops
//   backward = backward_ms + forward_ms (one more forward per micro-batch; kBlock: of the K
//              blocks; kSelective: the recomputed modules' forward_ms)
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

// What recomputing chunks keep: the model input's bytes per micro-batch (layer 0's input,
// ModelInputBytes) and the unit they recompute by.
struct RecomputeInput {
  uint64_t model_input = 0;
  RecomputeUnit unit = RecomputeUnit::kStage;
  int blocks = 0;  // kBlock: the transformer blocks each recomputing stage recomputes
};

// The forward a recomputing stage [first, last] runs again per micro-batch: all of its
// layers' (kStage, kLayer), its first `keep.blocks` transformer blocks' (kBlock), or its core
// attention's (kSelective).
double RecomputeForwardMs(const CostModel& cost, int first, int last, const RecomputeInput& keep);

// The first of `modules` no layer of `profile` has figures for (analytic profiles of
// transformer blocks have them: core_attention_bytes, recompute_modules), or nullopt.
std::optional<RecomputeModule> MissingModule(const Profile& profile, RecomputeModules modules);

// Peak memory of stage [first, last] with in_flight micro-batches, recomputing or not.
WideBytes StagePeak(const CostModel& cost, int first, int last, int in_flight, bool recompute,
                    const RecomputeInput& keep);

// StagePeak in its three parts (ChunkMemory).
ChunkMemory ChunkMemoryOf(const CostModel& cost, int first, int last, bool recompute,
                          const RecomputeInput& keep);

// Per stage whether it recomputes: every stage (kAll), none (kNone), or exactly the stages
// over their limit without it (kAuto; each stage's peak depends only on its own choice, so
// this is the least set that can fit).
std::vector<char> RecomputeStages(RecomputeMode mode, const StageSetup& setup,
                                  const std::vector<int>& in_flight,
                                  const std::vector<int>& boundaries, const RecomputeInput& keep);

// Exact least max stage time over splits when each stage recomputes as `mode` says, the
// recomputing stages costing one more forward (O(p n^2) dynamic programme: with recomputation
// a stage's memory is no longer monotone in its range). Error when no split fits or when
// p x n^2 exceeds kMaxRecomputeWork (not available yet).
inline constexpr double kMaxRecomputeWork = 2e8;
Result<std::vector<int>> RecomputeBottleneckSplit(RecomputeMode mode, const StageSetup& setup,
                                                  const std::vector<int>& in_flight,
                                                  const RecomputeInput& keep);

// Whether some split fits every stage's limit (setup.memory_limit) with each stage
// recomputing as `mode` says (O(p n log n)).
bool RecomputeSplitExists(RecomputeMode mode, const StageSetup& setup,
                          const std::vector<int>& in_flight, const RecomputeInput& keep);

// The least limit L such that some split fits with every stage's peak under `mode` at most L
// (one cost model for every stage; bisection over integers, each test O(p n log n)).
WideBytes RecomputeLeastLimit(RecomputeMode mode, const CostModel& cost,
                              const std::vector<int>& in_flight, const RecomputeInput& keep);

// "no split ... fits the memory limit, even with --recompute all|auto", naming the least limit
// that fits when every stage is on one device type.
std::string RecomputeInfeasibleMessage(RecomputeMode mode, const StageSetup& setup,
                                       const std::vector<int>& in_flight,
                                       const RecomputeInput& keep);

}  // namespace pp
