#include "partitioner/planner.h"

#include <algorithm>
#include <limits>

#include "core/units.h"
#include "core/version.h"
#include "executor/schedule.h"
#include "partitioner/cost_model.h"
#include "partitioner/methods.h"

namespace pp {
namespace {

Status CheckShape(const Profile& profile, int stages, int micro_batches) {
  const int n = static_cast<int>(profile.layers.size());
  if (stages < 1) return Status::Error("--stages must be at least 1");
  if (stages > n) {
    return Status::Error("--stages " + std::to_string(stages) + " is more than the model's " +
                         std::to_string(n) + " layers (every stage needs a layer)");
  }
  if (micro_batches < 1 || micro_batches > kMaxMicroBatches) {
    return Status::Error("--micro-batches must be between 1 and " +
                         std::to_string(kMaxMicroBatches));
  }
  return Status::Ok();
}

Status CheckBoundaries(const std::vector<int>& b, int stages, int layers) {
  if (static_cast<int>(b.size()) != stages - 1) {
    return Status::Error("--boundaries has " + std::to_string(b.size()) + " entries; " +
                         std::to_string(stages) + " stages need " + std::to_string(stages - 1));
  }
  int previous = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] <= previous || b[i] >= layers) {
      return Status::Error("--boundaries: entry " + std::to_string(i + 1) + " (" +
                           std::to_string(b[i]) + ") must be greater than " +
                           std::to_string(previous) + " and less than " +
                           std::to_string(layers) +
                           "; boundaries are the first layer of stages 1..p-1, increasing");
    }
    previous = b[i];
  }
  return Status::Ok();
}

// Stage times for the simulator from a split.
StageTimes TimesOf(const CostModel& cost, const std::vector<int>& boundaries) {
  StageTimes t;
  const int p = static_cast<int>(boundaries.size()) + 1;
  for (int s = 0; s < p; ++s) {
    const int first = s == 0 ? 0 : boundaries[s - 1];
    const int last = s + 1 == p ? cost.num_layers() - 1 : boundaries[s] - 1;
    t.forward_ms.push_back(cost.ForwardMs(first, last));
    t.backward_ms.push_back(cost.BackwardMs(first, last));
    if (s + 1 < p) t.transfer_ms.push_back(cost.TransferMs(last));
  }
  return t;
}

}  // namespace

Result<Plan> EvaluateSplit(const PlanRequest& request, const std::vector<int>& boundaries,
                           const std::string& method) {
  const Profile& profile = request.profile;
  const int n = static_cast<int>(profile.layers.size());
  const int p = request.num_stages;
  PP_RETURN_IF_ERROR(CheckShape(profile, p, request.num_micro_batches));
  PP_RETURN_IF_ERROR(CheckBoundaries(boundaries, p, n));
  Result<Schedule> schedule = BuildSchedule(request.schedule, p, request.num_micro_batches);
  if (!schedule.ok()) return schedule.status();
  const std::vector<int> in_flight = InFlightMicroBatches(*schedule);
  const CostModel cost(profile, request.optimizer);

  Plan plan;
  plan.tool_version = kToolVersion;
  plan.model = profile.model;
  plan.schedule = request.schedule;
  plan.num_stages = p;
  plan.num_micro_batches = request.num_micro_batches;
  plan.micro_batch_size = profile.micro_batch_size;
  plan.method = method;
  plan.objective = request.objective;
  plan.optimizer = request.optimizer;
  plan.memory_limit_bytes = request.memory_limit;
  plan.boundaries = boundaries;
  plan.profile = profile;
  plan.model_spec = request.model;

  for (int s = 0; s < p; ++s) {
    StagePlan st;
    st.index = s;
    st.first_layer = s == 0 ? 0 : boundaries[s - 1];
    st.last_layer = s + 1 == p ? n - 1 : boundaries[s] - 1;
    for (int i = st.first_layer; i <= st.last_layer; ++i) {
      st.layer_names.push_back(profile.layers[i].name);
    }
    st.forward_ms = cost.ForwardMs(st.first_layer, st.last_layer);
    st.backward_ms = cost.BackwardMs(st.first_layer, st.last_layer);
    const WideBytes params = cost.ParamBytes(st.first_layer, st.last_layer);
    const WideBytes peak = cost.PeakMemory(st.first_layer, st.last_layer, in_flight[s]);
    if (peak > WideBytes{kMaxBytes}) {
      return Status::Error("stage " + std::to_string(s) +
                           " would need more than 8 PiB of memory; check the profile's byte counts");
    }
    st.param_bytes = static_cast<uint64_t>(params);
    st.peak_memory_bytes = static_cast<uint64_t>(peak);
    st.send_bytes = cost.SendBytes(st.last_layer);
    const double stage_ms = cost.StageMs(st.first_layer, st.last_layer);
    if (s == 0 || stage_ms > plan.predicted.max_stage_ms) {
      plan.predicted.max_stage_ms = stage_ms;
      plan.predicted.bottleneck_stage = s;
    }
    plan.stages.push_back(std::move(st));
  }

  Result<Timeline> timeline = Simulate(*schedule, TimesOf(cost, boundaries));
  if (!timeline.ok()) return timeline.status();
  plan.predicted.step_time_ms = timeline->step_time_ms;
  plan.predicted.bubble_ratio = timeline->bubble_ratio;
  plan.predicted.throughput_samples_per_s =
      timeline->step_time_ms > 0 ? 1000.0 * request.num_micro_batches *
                                       static_cast<double>(profile.micro_batch_size) /
                                       timeline->step_time_ms
                                 : 0.0;
  return plan;
}

Result<Plan> MakePlan(const PlanRequest& request) {
  if (request.objective == "step") {
    return Status::Error("--objective step is not available yet; use --objective bottleneck");
  }
  if (request.objective != "bottleneck") {
    return Status::Error("unknown --objective \"" + request.objective +
                         "\" (known: bottleneck, step)");
  }
  const Profile& profile = request.profile;
  const int p = request.num_stages;
  PP_RETURN_IF_ERROR(CheckShape(profile, p, request.num_micro_batches));
  if (request.method == "given") return EvaluateSplit(request, request.boundaries, "given");

  const PartitionMethod* method = FindPartitionMethod(request.method);
  if (method == nullptr) {
    return Status::Error("unknown --method \"" + request.method + "\" (known: " +
                         PartitionMethodNames() + ")");
  }
  Result<Schedule> schedule = BuildSchedule(request.schedule, p, request.num_micro_batches);
  if (!schedule.ok()) return schedule.status();
  const CostModel cost(profile, request.optimizer);

  SplitContext ctx;
  ctx.cost = &cost;
  ctx.num_stages = p;
  ctx.in_flight = InFlightMicroBatches(*schedule);
  ctx.memory_limit = request.memory_limit;
  ctx.step_time_ms = [&](const std::vector<int>& boundaries) {
    Result<Timeline> t = Simulate(*schedule, TimesOf(cost, boundaries));
    return t.ok() ? t->step_time_ms : std::numeric_limits<double>::infinity();
  };
  Result<std::vector<int>> boundaries = method->split(ctx);
  if (!boundaries.ok()) return boundaries.status();
  return EvaluateSplit(request, *boundaries, request.method);
}

Result<Timeline> SimulatePlan(const Plan& plan) {
  Result<Schedule> schedule = BuildSchedule(plan.schedule, plan.num_stages, plan.num_micro_batches);
  if (!schedule.ok()) return schedule.status();
  const CostModel cost(plan.profile, plan.optimizer);
  return Simulate(*schedule, TimesOf(cost, plan.boundaries));
}

std::vector<int> StagesOverLimit(const Plan& plan) {
  std::vector<int> over;
  if (!plan.memory_limit_bytes) return over;
  for (const StagePlan& s : plan.stages) {
    if (s.peak_memory_bytes > *plan.memory_limit_bytes) over.push_back(s.index);
  }
  return over;
}

}  // namespace pp
