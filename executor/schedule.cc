#include "executor/schedule.h"

#include <algorithm>

#include "executor/schedules.h"

namespace pp {

char OpKindLetter(OpKind kind) { return kind == OpKind::kForward ? 'F' : 'B'; }

const std::vector<const ScheduleKind*>& ScheduleKinds() {
  static const std::vector<const ScheduleKind*> kKinds = {GpipeSchedule(), OneFOneBSchedule()};
  return kKinds;
}

const ScheduleKind* FindScheduleKind(std::string_view name) {
  for (const ScheduleKind* k : ScheduleKinds()) {
    if (k->name() == name) return k;
  }
  return nullptr;
}

std::string ScheduleNames() {
  std::string names;
  for (const ScheduleKind* k : ScheduleKinds()) {
    names += (names.empty() ? "" : ", ") + std::string(k->name());
  }
  return names;
}

Result<Schedule> BuildSchedule(std::string_view name, int stages, int micro_batches) {
  const ScheduleKind* kind = FindScheduleKind(name);
  if (kind == nullptr) {
    return Status::Error("unknown schedule \"" + std::string(name) + "\" (known: " +
                         ScheduleNames() + ")");
  }
  if (stages < 1 || micro_batches < 1) {
    return Status::Error("a schedule needs at least one stage and one micro-batch");
  }
  return kind->Build(stages, micro_batches);
}

Status ValidateSchedule(const Schedule& schedule) {
  const int m = schedule.num_micro_batches;
  if (static_cast<int>(schedule.stages.size()) != schedule.num_stages) {
    return Status::Error("schedule lists " + std::to_string(schedule.stages.size()) +
                         " stages, expected " + std::to_string(schedule.num_stages));
  }
  for (int s = 0; s < schedule.num_stages; ++s) {
    std::vector<int> forward(m, 0), backward(m, 0);
    for (const PipelineOp& op : schedule.stages[s]) {
      if (op.micro_batch < 0 || op.micro_batch >= m) {
        return Status::Error("stage " + std::to_string(s) + " names micro-batch " +
                             std::to_string(op.micro_batch) + " of " + std::to_string(m));
      }
      if (op.kind == OpKind::kForward) {
        ++forward[op.micro_batch];
      } else {
        if (forward[op.micro_batch] == 0) {
          return Status::Error("stage " + std::to_string(s) + " runs B" +
                               std::to_string(op.micro_batch) + " before its F");
        }
        ++backward[op.micro_batch];
      }
    }
    for (int i = 0; i < m; ++i) {
      if (forward[i] != 1 || backward[i] != 1) {
        return Status::Error("stage " + std::to_string(s) + " must run F" + std::to_string(i) +
                             " and B" + std::to_string(i) + " exactly once");
      }
    }
  }
  return Status::Ok();
}

std::vector<int> InFlightMicroBatches(const Schedule& schedule) {
  std::vector<int> in_flight;
  for (const auto& ops : schedule.stages) {
    int now = 0, peak = 0;
    for (const PipelineOp& op : ops) {
      now += op.kind == OpKind::kForward ? 1 : -1;
      peak = std::max(peak, now);
    }
    in_flight.push_back(peak);
  }
  return in_flight;
}

}  // namespace pp
