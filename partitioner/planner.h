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
#include "executor/simulator.h"

namespace pp {

struct PlanRequest {
  Profile profile;
  std::optional<Model> model;  // embedded as model_spec when present
  std::string schedule = "1f1b";
  int num_stages = 0;
  int num_micro_batches = 0;
  std::string method = "dp";  // a PartitionMethods() name, or "given" with `boundaries`
  std::string objective = "bottleneck";
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit;  // nullopt: no limit
  std::vector<int> boundaries;           // method "given": first layer of stages 1..p-1
};

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

// Stage indices whose peak memory exceeds the plan's limit.
std::vector<int> StagesOverLimit(const Plan& plan);

}  // namespace pp
