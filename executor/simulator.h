// Discrete-event simulation of one training step of a pipeline schedule under the default
// cost model of DESIGN.md: a stage runs its ops in list order; F(s,i) starts once the stage is
// free and F(s-1,i) has ended plus the s-1 -> s transfer; B(s,i) once B(s+1,i) has ended plus
// the s+1 -> s transfer. Transfers are pure delays. All times in milliseconds.
#pragma once

#include <vector>

#include "core/status.h"
#include "executor/schedule.h"

namespace pp {

struct StageTimes {
  std::vector<double> forward_ms;   // per stage, one micro-batch
  std::vector<double> backward_ms;  // per stage, one micro-batch
  std::vector<double> transfer_ms;  // per boundary s -> s+1 (p-1 entries), either direction
};

struct TimedOp {
  int stage = 0;
  PipelineOp op;
  double ready_ms = 0;  // when its input had arrived
  double start_ms = 0;
  double end_ms = 0;
};

struct Timeline {
  std::vector<TimedOp> ops;     // grouped by stage, in each stage's execution order
  std::vector<double> busy_ms;  // per stage
  double step_time_ms = 0;      // end of the last op
  double bubble_ratio = 0;      // 1 - sum(busy) / (p * step); 0 for an empty step
  int num_stages = 0;
};

// Simulates `schedule` (which must pass ValidateSchedule) with `times`. A schedule whose
// dependencies can never be met is an error naming the stuck stage and op.
Result<Timeline> Simulate(const Schedule& schedule, const StageTimes& times);

}  // namespace pp
