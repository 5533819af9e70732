// Running a plan: the model from its model_spec, one chunk per plan stage, the schedule from
// the plan's fields, and the measurement turned into the plan's "measured" block.
#pragma once

#include <string>

#include "core/plan.h"
#include "core/status.h"
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

// Trains the plan's model with its split and schedule and measures it.
Result<RunResult> RunPlan(const Plan& plan, const RunPlanOptions& options);

// The measured block for `plan` from a run.
Measurement MeasurementOf(const Plan& plan, const RunResult& run, const std::string& backend);

// The timed step whose step time is the median, as a timeline (for traces and charts).
Timeline MedianStepTimeline(const RunResult& run, int num_devices);

}  // namespace pp
