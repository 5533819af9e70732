// Plan: the chosen stage boundaries and what the cost model predicts for them
// (format "pp-partition.plan/v1", see DESIGN.md). A plan is self-contained: it embeds the
// profile it was planned from and, when planned from a model file, the model (model_spec).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"
#include "core/parallelism.h"
#include "core/profile.h"
#include "core/status.h"

namespace pp {

inline constexpr std::string_view kPlanFormat = "pp-partition.plan/v1";
inline constexpr int64_t kMaxMicroBatches = 1 << 20;

enum class Optimizer { kAdam, kSgd, kNone };
std::string_view OptimizerName(Optimizer o);
std::optional<Optimizer> ParseOptimizer(std::string_view name);

// What a recomputing stage (chunk) keeps per micro-batch it holds, and what it rebuilds:
// kStage keeps the stage's input and runs the whole stage's forward again at the start of
// each backward; kLayer keeps every layer's input and runs each layer's forward again just
// before that layer's backward (Megatron-LM's --recompute-num-layers 1, torchtitan's full
// activation checkpointing); kBlock does so for the stage's first K transformer blocks only
// and keeps the other layers' activations (Megatron-LM's --recompute-method block
// --recompute-num-layers K); kSelective keeps everything but the core attention's
// probabilities (or the fused kernel's statistics) and runs the core attention's forward again
// before each layer's backward (Megatron-LM's --recompute-granularity selective).
// "recompute_unit" in plans, absent for kStage.
enum class RecomputeUnit { kStage, kLayer, kBlock, kSelective };
std::string_view RecomputeUnitName(RecomputeUnit u);
std::optional<RecomputeUnit> ParseRecomputeUnit(std::string_view name);
// Whether Megatron-LM runs its experts' all-to-all overlap beside recomputation by `unit` of
// `modules` (megatron/core/transformer/transformer_config.py): only selective recomputation
// outside the MoE layer (no full recomputation, no "moe" module).
bool ExpertOverlapAllowsRecompute(RecomputeUnit unit, RecomputeModules modules);

struct StagePlan {
  int index = 0;
  int first_layer = 0;  // inclusive
  int last_layer = 0;   // inclusive
  std::vector<std::string> layer_names;
  double forward_ms = 0;   // one micro-batch
  double backward_ms = 0;  // one micro-batch
  uint64_t param_bytes = 0;
  uint64_t peak_memory_bytes = 0;
  uint64_t send_bytes = 0;  // to the next stage per micro-batch (0 for the last stage)
  // Optional (absent in older plans): the device that runs this stage (chunk), written when a
  // device runs several chunks, and the device's own idle share 1 - busy / step time.
  std::optional<int> device;
  std::optional<double> bubble_ratio;
  // Optional, heterogeneous devices: the stage's device type (a --device-types key), and its
  // memory limit when that is its device's own memory (no --memory-limit).
  std::optional<std::string> device_type;
  std::optional<uint64_t> memory_limit_bytes;
  // Optional: the stage recomputes its activations in the backward (absent: it does not).
  bool recompute = false;
};

struct Prediction {
  double step_time_ms = 0;
  double bubble_ratio = 0;  // 1 - sum(busy) / (stages * step time)
  double throughput_samples_per_s = 0;
  int bottleneck_stage = 0;
  double max_stage_ms = 0;  // largest stage forward + backward
  // (devices * step time - sum(busy)) / sum(busy): idle per unit of work. Optional in JSON.
  std::optional<double> bubble_over_ideal = std::nullopt;
  // Optional, plans with a layout (Plan::parallelism): the time per global batch (the step
  // plus the exposed data-parallel synchronisation and the optimizer step,
  // partitioner/data_parallel.h), its data-parallel part, tokens per second per GPU over the
  // whole global batch, and the model TFLOP/s per GPU (partitioner/model_flops.h's count).
  std::optional<double> batch_time_ms = std::nullopt;
  std::optional<double> data_parallel_ms = std::nullopt;
  std::optional<double> tokens_per_s_per_gpu = std::nullopt;
  std::optional<double> model_tflops_per_gpu = std::nullopt;
};

// What `run` measured: predicted's figures (median over the timed steps) plus per-stage
// busy time and peak memory, and how it was measured.
struct Measurement : Prediction {
  std::vector<double> stage_busy_ms;               // per stage (device), median over steps
  std::vector<uint64_t> stage_peak_memory_bytes;   // per stage (device)
  int steps = 0;                                   // timed steps (after warm-up)
  std::string backend;                             // "cpu" or "cuda"
  std::string device;                              // what ran it
};

// How far --objective step got (optional in JSON as "objective_bound"): whether the least
// simulated step over all splits was proven, and a proven lower bound on it (equal to the
// plan's step time when exact; below it when the search ran out of its time budget).
struct ObjectiveBound {
  bool exact = true;
  double lower_bound_ms = 0;
};

struct Plan {
  std::string tool_version;
  // Content hashes (core/content_hash.h) of model_spec and profile as read from a file; ""
  // when the file had none. PlanToJson always writes freshly computed ones.
  std::string model_hash;
  std::string profile_hash;
  std::string model;
  std::string schedule;  // an executor/schedule.h kind: "1f1b", "interleaved", ...
  int num_stages = 0;  // devices p
  // Model chunks per device (interleaved: --virtual-stages V; zbv: 2); 1 when absent. The
  // model is cut into num_stages * virtual_stages chunks, listed in `stages`.
  int virtual_stages = 1;
  int num_micro_batches = 0;
  int64_t micro_batch_size = 0;
  std::string method;     // "dp", "uniform", "parameters", "greedy", "given"
  std::string objective;  // "bottleneck" or "step"
  std::optional<ObjectiveBound> objective_bound;  // written by dp with objective "step"
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit_bytes;  // nullopt: no limit
  // How the stages marked `recompute` recompute (RecomputeUnit).
  RecomputeUnit recompute_unit = RecomputeUnit::kStage;
  // kBlock: K, the transformer blocks each recomputing stage recomputes ("recompute_blocks").
  int recompute_blocks = 0;
  // kSelective: the modules it recomputes ("recompute_modules", Megatron-LM's names; absent:
  // the core attention alone).
  RecomputeModules recompute_modules = RecomputeModules::Default();
  std::vector<int> boundaries;                 // first layer of chunks 1..p*V-1
  std::vector<StagePlan> stages;
  Prediction predicted;
  // Present when the plan was run.
  std::optional<Measurement> measured;
  Profile profile;
  std::optional<Model> model_spec;
  // Optional, heterogeneous devices: the profile of every device type named by the stages
  // other than stage 0's, whose profile is `profile` ("device_profiles" in JSON).
  std::map<std::string, Profile> device_profiles;
  // Optional, several nodes: GPUs per node and the link between nodes.
  std::optional<int> gpus_per_node;
  std::optional<Link> inter_node_link;
  // Optional ("parallelism" in JSON): the degrees beside the pipeline the plan was made for
  // (pp equals num_stages, vp virtual_stages); absent in plans without a layout, which are
  // tp = cp = ep = dp = 1, zero 0.
  std::optional<ParallelLayout> parallelism;
};

// Parses and validates the plan's own consistency (boundaries against stages and the
// profile's layer count). Does not recompute costs. "model_hash", "profile_hash" and
// "measured" are optional; the hashes are kept as read, not checked.
Result<Plan> PlanFromJson(const Json& doc);
Result<Plan> LoadPlan(const std::string& path);
// Writes "model_hash" (when model_spec is present) and "profile_hash" computed from the
// embedded documents, so equal inputs give byte-identical plans.
Json PlanToJson(const Plan& plan);

// num_stages * virtual_stages: how many entries `stages` has.
inline int NumChunks(const Plan& plan) { return plan.num_stages * plan.virtual_stages; }

}  // namespace pp
