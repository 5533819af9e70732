// Discrete-event simulation of one training step of a pipeline schedule under the default
// cost model of DESIGN.md: a device runs its ops in list order; F(c,i) of chunk c starts once
// the device is free and F(c-1,i) has ended plus the c-1 -> c transfer; B(c,i) or I(c,i) once
// B or I of (c+1,i) has ended plus the c+1 -> c transfer; W(c,i) once I(c,i) has ended.
// Transfers are pure delays, zero between two chunks on one device. All times in ms.
// docs/schedules.md gives the op orders.
#pragma once

#include <vector>

#include "core/status.h"
#include "executor/schedule.h"

namespace pp {

// Indexed by model chunk (= stage when each device runs one chunk).
struct StageTimes {
  std::vector<double> forward_ms;   // per chunk, one micro-batch
  std::vector<double> backward_ms;  // per chunk, one micro-batch: B = I + W
  std::vector<double> transfer_ms;  // per boundary c -> c+1 (chunks-1 entries), either direction
  // Per chunk, the input-gradient part of backward_ms; W takes backward_ms - this. Empty: I and
  // W each take half of backward_ms (the planner warns when the profile lacks the split).
  std::vector<double> backward_input_ms = {};
};

// The duration of `kind` on chunk `chunk`.
double OpDurationMs(const StageTimes& times, int chunk, OpKind kind);

struct TimedOp {
  int stage = 0;  // the device
  PipelineOp op;
  double ready_ms = 0;  // when its input had arrived
  double start_ms = 0;
  double end_ms = 0;
};

struct Timeline {
  std::vector<TimedOp> ops;      // grouped by stage, in each stage's execution order
  std::vector<double> busy_ms;   // per device
  double step_time_ms = 0;       // end of the last op
  double bubble_ratio = 0;       // 1 - sum(busy) / (p * step); 0 for an empty step
  double bubble_over_ideal = 0;  // (p * step - sum(busy)) / sum(busy); 0 when nothing is busy
  int num_stages = 0;            // devices
};

// Simulates `schedule` (which must pass ValidateSchedule) with `times`. A schedule whose
// dependencies can never be met is an error naming the stuck stage and op.
Result<Timeline> Simulate(const Schedule& schedule, const StageTimes& times);

}  // namespace pp
