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
#include "executor/plan_context.h"
#include "executor/schedule.h"
#include "executor/simulator.h"
#include "partitioner/devices.h"
#include "partitioner/request.h"

namespace pp {

// The request's plan context (executor/plan_context.h): its schedule with its virtual stages,
// built and validated once, and the in-flight counts; no chunks yet.
Result<PlanContext> RequestContext(const PlanRequest& request);

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

// Per-chunk times of a plan (forward, backward with recomputation, I share, transfers and
// what the schedule pays per transfer: ChargeTransfers),
// re-derived from its embedded profile, layout and boundaries; `context` is the plan's
// (PlanContextOf, or PlanContextOf with a schedule read from a CSV).
Result<ChunkTimes> PlanChunkTimes(const Plan& plan, const PlanContext& context);
// Simulates the context's schedule over the plan's chunk times.
Result<Timeline> SimulatePlan(const Plan& plan, const PlanContext& context);
// SimulatePlan with the plan's own context.
Result<Timeline> SimulatePlan(const Plan& plan);

// Plans with a layout (parallelism): fills predicted's batch_time_ms (the step plus the
// data-parallel synchronisation and optimizer step, partitioner/data_parallel.h),
// data_parallel_ms and, with the model, tokens_per_s_per_gpu and model_tflops_per_gpu
// (partitioner/model_flops.h) from the plan's stages and step time. No-op without a layout.
void PredictBatch(Plan* plan);

// Peak memory per device: one chunk per device, the stage's; several, their DeviceMemory
// (cost_model.h) over the plan's costs and schedule, at most the sum of their peaks (the sum
// where the plan's costs or schedule cannot be rebuilt).
std::vector<uint64_t> DevicePeakMemory(const Plan& plan);

// The limit a stage (chunk) is held to: its own (its device's memory) when recorded, else the
// plan's; nullopt: none.
std::optional<uint64_t> StageMemoryLimit(const Plan& plan, const StagePlan& stage);

// Stage (chunk) indices on a device whose peak memory exceeds the plan's limit; `device` the
// plan's DevicePeakMemory, where the caller has it already.
std::vector<int> StagesOverLimit(const Plan& plan);
std::vector<int> StagesOverLimit(const Plan& plan, const std::vector<uint64_t>& device);

}  // namespace pp
