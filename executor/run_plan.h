// Running a plan: the model from its model_spec, one chunk per plan stage, the schedule from
// the plan's fields, and the measurement turned into the plan's "measured" block.
#pragma once

#include <string>

#include "core/plan.h"
#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "executor/simulator.h"

namespace pp {

struct RunPlanOptions {
  RunOptions run;
  std::string backend = "cpu";  // "cpu" or "cuda" (executor/cuda_runner.h)
  std::string gpus;             // cuda only
};

// Whether `timeout_s` is a number in [kMinTimeoutS, kMaxTimeoutS]; the error names --timeout.
Status CheckTimeout(double timeout_s);

// What a run of a plan trains: the plan's model at the plan's micro-batch size, and the
// plan's context (schedule and chunks). Errors: no model_spec, an unknown backend, steps
// below 1, a recomputing plan on the cuda backend, a bad --timeout.
struct PreparedRun {
  Model model;
  PlanContext context;
};
Result<PreparedRun> PrepareRun(const Plan& plan, const RunPlanOptions& options);

// Trains the plan's model with its split and schedule and measures it.
Result<RunResult> RunPlan(const Plan& plan, const RunPlanOptions& options);

// The measured block for `plan` from a run; with data-parallel replicas its data_parallel_ms
// is the measured gradient all-reduce per step (median of the slowest rank's).
Measurement MeasurementOf(const Plan& plan, const RunResult& run, const std::string& backend);

// The timed step whose step time is the median, as a timeline (for traces and charts). Of a
// distributed run with replicas, the ops of replica 0 (one row per stage).
Timeline MedianStepTimeline(const RunResult& run, int num_devices);

}  // namespace pp
