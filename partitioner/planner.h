// Planning: from a profile (and optionally its model) to a Plan with stages and a predicted
// timeline, for a chosen method, schedule and memory limit. The prediction always comes from
// the executor's simulator over the schedule's op lists.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "executor/schedule.h"
#include "executor/simulator.h"
#include "partitioner/devices.h"

namespace pp {

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
  // the best split found and a proven lower bound (objective_bound.exact = false).
  double step_budget_s = 1.0;
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit;  // nullopt: no limit
  std::vector<int> boundaries;           // method "given": first layer of chunks 1..chunks-1
  // Heterogeneous devices and nodes (--device-types, --gpus-per-node); `profile` is stage 0's
  // device type's. Schedules with one chunk per device only.
  DeviceLayout devices;
  // Activation recomputation per stage: "none", "all" or "auto" (the stages over their limit
  // without it). gpipe and 1f1b only; needs `model` for the model input size.
  std::string recompute = "none";
};

// The request's schedule (with its virtual stages).
Result<Schedule> RequestSchedule(const PlanRequest& request);

// Whether every layer of the profile has backward_input_ms and backward_weight_ms. Schedules
// that split the backward (zb-h1, zbv) split it evenly when not, and the tool warns.
bool HasBackwardSplit(const Profile& profile);

// Chooses boundaries with the request's method and evaluates them. Errors: unknown method,
// schedule or objective; more stages than layers; bad given boundaries; an infeasible memory
// limit (dp), naming the smallest limit that fits.
Result<Plan> MakePlan(const PlanRequest& request);

// Evaluates the given boundaries under the request's schedule, optimizer and memory limit;
// `method` is recorded in the plan.
Result<Plan> EvaluateSplit(const PlanRequest& request, const std::vector<int>& boundaries,
                           const std::string& method);

// Re-derives the stage costs from the plan's embedded profile and boundaries and simulates
// its schedule.
Result<Timeline> SimulatePlan(const Plan& plan);
// The plan's schedule, rebuilt from its name, devices, micro-batches and virtual stages.
Result<Schedule> PlanSchedule(const Plan& plan);
// Simulates `schedule` (e.g. one read from a CSV) over the plan's stage costs.
Result<Timeline> SimulatePlanWith(const Plan& plan, const Schedule& schedule);

// Peak memory per device: the sum of its chunks' peaks (one chunk per device: the stage's).
std::vector<uint64_t> DevicePeakMemory(const Plan& plan);

// Stage (chunk) indices on a device whose peak memory exceeds the plan's limit.
std::vector<int> StagesOverLimit(const Plan& plan);

}  // namespace pp
