#include "executor/simulator.h"

#include <algorithm>
#include <limits>
#include <string>

namespace pp {
namespace {

constexpr double kNotYet = std::numeric_limits<double>::quiet_NaN();

}  // namespace

Result<Timeline> Simulate(const Schedule& schedule, const StageTimes& times) {
  const int p = schedule.num_stages;
  const int m = schedule.num_micro_batches;
  if (static_cast<int>(times.forward_ms.size()) != p ||
      static_cast<int>(times.backward_ms.size()) != p ||
      static_cast<int>(times.transfer_ms.size()) != std::max(p - 1, 0)) {
    return Status::Error("simulator: stage times do not match the schedule's " +
                         std::to_string(p) + " stages");
  }
  PP_RETURN_IF_ERROR(ValidateSchedule(schedule));

  // End time of F and B of each (stage, micro-batch); NaN until simulated.
  std::vector<double> f_end(static_cast<size_t>(p) * m, kNotYet);
  std::vector<double> b_end(static_cast<size_t>(p) * m, kNotYet);
  auto at = [m](int s, int i) { return static_cast<size_t>(s) * m + i; };

  std::vector<size_t> next(p, 0);
  std::vector<double> free_at(p, 0.0);
  std::vector<std::vector<TimedOp>> done(p);
  size_t remaining = 0;
  for (const auto& ops : schedule.stages) remaining += ops.size();

  while (remaining > 0) {
    bool progressed = false;
    for (int s = 0; s < p; ++s) {
      const auto& ops = schedule.stages[s];
      while (next[s] < ops.size()) {
        const PipelineOp& op = ops[next[s]];
        double ready = 0;
        if (op.kind == OpKind::kForward) {
          if (s > 0) {
            const double prev = f_end[at(s - 1, op.micro_batch)];
            if (prev != prev) break;  // not yet simulated
            ready = prev + times.transfer_ms[s - 1];
          }
        } else if (s + 1 < p) {
          const double prev = b_end[at(s + 1, op.micro_batch)];
          if (prev != prev) break;
          ready = prev + times.transfer_ms[s];
        }
        const double start = std::max(ready, free_at[s]);
        const double duration =
            op.kind == OpKind::kForward ? times.forward_ms[s] : times.backward_ms[s];
        const double end = start + duration;
        (op.kind == OpKind::kForward ? f_end : b_end)[at(s, op.micro_batch)] = end;
        free_at[s] = end;
        done[s].push_back({s, op, ready, start, end});
        ++next[s];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) {
      for (int s = 0; s < p; ++s) {
        if (next[s] < schedule.stages[s].size()) {
          const PipelineOp& op = schedule.stages[s][next[s]];
          return Status::Error("schedule " + schedule.name + " deadlocks: stage " +
                               std::to_string(s) + " waits forever at " +
                               OpKindLetter(op.kind) + std::to_string(op.micro_batch));
        }
      }
    }
  }

  Timeline t;
  t.num_stages = p;
  t.busy_ms.assign(p, 0.0);
  double busy_total = 0;
  for (int s = 0; s < p; ++s) {
    for (const TimedOp& op : done[s]) {
      t.busy_ms[s] += op.end_ms - op.start_ms;
      t.step_time_ms = std::max(t.step_time_ms, op.end_ms);
    }
    busy_total += t.busy_ms[s];
    t.ops.insert(t.ops.end(), done[s].begin(), done[s].end());
  }
  t.bubble_ratio = t.step_time_ms > 0 ? 1.0 - busy_total / (p * t.step_time_ms) : 0.0;
  return t;
}

}  // namespace pp
