// One planning call: what `plan` is asked, for one plan (MakePlan, partitioner/planner.h) or
// for the search over shapes (SearchPlans, partitioner/search.h). The CLI fills it from its
// flags, and partitioner/plan_inputs.h loads the profiles it names.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/plan.h"
#include "core/profile.h"
#include "executor/schedule.h"
#include "partitioner/devices.h"

namespace pp {

// The profiles of one more micro-batch size for the search: the base profile (stage 0's
// device type) and, with --device-types, every other type's at the same size.
struct ProfilesAtSize {
  Profile profile;
  std::map<std::string, Profile> device_profiles;
};

// What `--stages auto` varies beyond one plan's request (partitioner/planner.h PlanRequest
// carries it as `search`; the request's own fields are shared by every candidate).
struct SearchSpace {
  int gpus_total = 0;        // G
  int64_t global_batch = 0;  // N samples per step, over all replicas
  // Schedules tried for every shape (by default the registered kinds that opt in,
  // executor/schedule.h); interleaved with the request's `virtual_stages` chunks per device
  // where m is a multiple of p. Chunked schedules need p >= 2 and at least one layer per chunk.
  std::vector<std::string> schedules = SearchedScheduleNames();
  // Also plan each shape with --recompute auto (needs the request's model; gpipe and 1f1b).
  bool recompute_lever = true;
  size_t top = 10;
  // Micro-batch sizes besides the request's own profile's (their micro_batch_size fields
  // differ), all of the same model's layers, tried in this order after it.
  std::vector<ProfilesAtSize> other_sizes;
};

struct PlanRequest {
  Profile profile;
  std::optional<Model> model;  // embedded as model_spec when present
  std::string schedule = "1f1b";
  int num_stages = 0;     // devices p
  int virtual_stages = 2;  // interleaved: chunks per device (--virtual-stages V)
  int num_micro_batches = 0;
  std::string method = "dp";  // a PartitionMethods() name, or "given" with `boundaries`
  std::string objective = "step";  // "step" or "bottleneck" (docs/cost-model.md)
  // --objective step with dp: wall-clock budget of the exact search; past it the plan carries
  // the best split found and a proven lower bound (objective_bound.exact = false). With a
  // search: the whole search's, shared out over its candidates.
  double step_budget_s = 1.0;
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit;  // nullopt: no limit
  std::vector<int> boundaries;           // method "given": first layer of chunks 1..chunks-1
  // Heterogeneous devices and nodes (--device-types, --gpus-per-node); `profile` is device 0's
  // type's.
  DeviceLayout devices;
  // Activation recomputation per stage: "none", "all" or "auto" (the stages over their limit
  // without it). gpipe and 1f1b only; needs `model` for the model input size.
  std::string recompute = "none";
  // What a recomputing stage keeps and rebuilds (core/plan.h RecomputeUnit).
  RecomputeUnit recompute_unit = RecomputeUnit::kStage;
  int recompute_blocks = 0;  // kBlock: the transformer blocks each recomputing stage recomputes
  // kSelective: the modules each recomputing stage recomputes.
  RecomputeModules recompute_modules = RecomputeModules::Default();
  // `plan --stages auto` (partitioner/search.h SearchPlans): what the search varies; the
  // fields above hold for every candidate (num_stages, num_micro_batches, schedule, method,
  // boundaries and recompute are the search's to choose).
  std::optional<SearchSpace> search;
  // The degrees beside the pipeline (--tp, --cp, --ep, --zero, --gpus-total): the profile is
  // one rank's of its tensor, context and expert groups; the training state is sharded and
  // the gradients synchronised over `dp` ranks (partitioner/data_parallel.h); the plan records
  // it as "parallelism" and predicts the time per global batch. nullopt: no layout (today's
  // plans). Its pp and vp are the plan's num_stages and chunks per device.
  std::optional<ParallelLayout> layout;
};

}  // namespace pp
