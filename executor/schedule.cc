#include "executor/schedule.h"

#include <algorithm>
#include <array>

#include "executor/schedules.h"
#include "core/units.h"

namespace pp {

char OpKindLetter(OpKind kind) {
  switch (kind) {
    case OpKind::kForward:
      return 'F';
    case OpKind::kBackward:
      return 'B';
    case OpKind::kBackwardInput:
      return 'I';
    case OpKind::kBackwardWeight:
      return 'W';
  }
  return '?';
}

bool OpKindFromLetter(char letter, OpKind* kind) {
  for (OpKind k :
       {OpKind::kForward, OpKind::kBackward, OpKind::kBackwardInput, OpKind::kBackwardWeight}) {
    if (OpKindLetter(k) == letter) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string OpText(const PipelineOp& op, int chunk) {
  return (chunk >= 0 ? std::to_string(chunk) : std::string()) + OpKindLetter(op.kind) +
         std::to_string(op.micro_batch);
}

int NumChunks(const Schedule& schedule) {
  return schedule.chunk_device.empty() ? schedule.num_devices
                                       : static_cast<int>(schedule.chunk_device.size());
}

int OpChunk(const Schedule& schedule, int device, const PipelineOp& op) {
  return schedule.chunk_device.empty() ? device : op.chunk;
}

int ChunkDevice(const Schedule& schedule, int chunk) {
  return schedule.chunk_device.empty() ? chunk : schedule.chunk_device[chunk];
}

const std::vector<const ScheduleKind*>& ScheduleKinds() {
  static const std::vector<const ScheduleKind*> kKinds = {
      GpipeSchedule(), OneFOneBSchedule(), ZbH1Schedule(), InterleavedSchedule(), ZbvSchedule()};
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

std::vector<std::string> SearchedScheduleNames() {
  std::vector<std::string> names;
  for (const ScheduleKind* k : ScheduleKinds()) {
    if (k->traits().searched_by_default) names.emplace_back(k->name());
  }
  return names;
}

Result<Schedule> BuildSchedule(std::string_view name, int stages, int micro_batches,
                               const ScheduleOptions& options) {
  const ScheduleKind* kind = FindScheduleKind(name);
  if (kind == nullptr) {
    return Status::Error("unknown schedule " + Quote(name) +
                         " (known: " + ScheduleNames() + ")");
  }
  if (stages < 1 || micro_batches < 1) {
    return Status::Error("a schedule needs at least one stage and one micro-batch");
  }
  PP_RETURN_IF_ERROR(kind->CheckOptions(options));
  PP_RETURN_IF_ERROR(kind->Check(stages, micro_batches, options));
  Schedule schedule = kind->Build(stages, micro_batches, options);
  schedule.kind = kind;
  return schedule;
}


Status ValidateSchedule(const Schedule& schedule) {
  const int m = schedule.num_micro_batches;
  const int p = schedule.num_devices;
  if (static_cast<int>(schedule.device_ops.size()) != p) {
    return Status::Error("schedule lists " + std::to_string(schedule.device_ops.size()) +
                         " stages, expected " + std::to_string(p));
  }
  for (int device : schedule.chunk_device) {
    if (device < 0 || device >= p) {
      return Status::Error("schedule places a chunk on device " + std::to_string(device) + " of " +
                           std::to_string(p));
    }
  }
  const int chunks = NumChunks(schedule);
  // Per (chunk, micro-batch): counts of F, B, I, W in kind order.
  std::vector<std::array<int, 4>> seen(static_cast<size_t>(chunks) * m, {0, 0, 0, 0});
  for (int d = 0; d < p; ++d) {
    for (const PipelineOp& op : schedule.device_ops[d]) {
      const int c = OpChunk(schedule, d, op);
      // The op's name, built only for an error (this runs for every op of every plan).
      auto where = [&] { return "device " + std::to_string(d) + " op " + OpText(op, c); };
      if (op.micro_batch < 0 || op.micro_batch >= m) {
        return Status::Error(where() + ": micro-batch out of range (m = " + std::to_string(m) +
                             ")");
      }
      if (c < 0 || c >= chunks || ChunkDevice(schedule, c) != d) {
        return Status::Error(where() + ": chunk not placed on this device");
      }
      auto& n = seen[static_cast<size_t>(c) * m + op.micro_batch];
      if (op.kind != OpKind::kForward && n[0] == 0) {
        return Status::Error(where() + " runs before its F");
      }
      if (op.kind == OpKind::kBackwardWeight && n[2] == 0) {
        return Status::Error(where() + " runs before its I");
      }
      ++n[static_cast<int>(op.kind)];
    }
  }
  for (int c = 0; c < chunks; ++c) {
    for (int i = 0; i < m; ++i) {
      const auto& n = seen[static_cast<size_t>(c) * m + i];
      const bool whole = n[1] == 1 && n[2] == 0 && n[3] == 0;
      const bool split = n[1] == 0 && n[2] == 1 && n[3] == 1;
      if (n[0] != 1 || !(whole || split)) {
        return Status::Error("chunk " + std::to_string(c) + " must run F" + std::to_string(i) +
                             " once and then B" + std::to_string(i) + " once or I" +
                             std::to_string(i) + " and W" + std::to_string(i) + " once each");
      }
    }
  }
  return Status::Ok();
}

namespace {

// +1 when an op starts holding a micro-batch's activations, -1 when it frees them.
int HoldDelta(OpKind kind) {
  switch (kind) {
    case OpKind::kForward:
      return 1;
    case OpKind::kBackward:
    case OpKind::kBackwardWeight:
      return -1;
    case OpKind::kBackwardInput:
      return 0;  // the weight gradient still needs the stored inputs
  }
  return 0;
}

}  // namespace

std::vector<int> InFlightMicroBatches(const Schedule& schedule) {
  std::vector<int> in_flight;
  for (const auto& ops : schedule.device_ops) {
    int now = 0, peak = 0;
    for (const PipelineOp& op : ops) {
      now += HoldDelta(op.kind);
      peak = std::max(peak, now);
    }
    in_flight.push_back(peak);
  }
  return in_flight;
}

std::vector<int> InFlightPerChunk(const Schedule& schedule) {
  const int chunks = NumChunks(schedule);
  std::vector<int> now(chunks, 0), peak(chunks, 0);
  for (int d = 0; d < schedule.num_devices; ++d) {
    for (const PipelineOp& op : schedule.device_ops[d]) {
      const int c = OpChunk(schedule, d, op);
      if (c < 0 || c >= chunks) continue;
      now[c] += HoldDelta(op.kind);
      peak[c] = std::max(peak[c], now[c]);
    }
  }
  return peak;
}

bool SplitsBackward(const Schedule& schedule) {
  for (const auto& ops : schedule.device_ops) {
    for (const PipelineOp& op : ops) {
      if (op.kind == OpKind::kBackwardInput) return true;
    }
  }
  return false;
}


namespace {

bool OneChunkFullBackward(const Schedule& schedule) {
  return schedule.chunk_device.empty() && !SplitsBackward(schedule);
}

}  // namespace

StepBoundsFamily StepBoundsOf(const Schedule& schedule) {
  if (schedule.kind != nullptr) return schedule.kind->traits().step_bounds;
  return OneChunkFullBackward(schedule) ? StepBoundsFamily::kOneChunkFullBackward
                                        : StepBoundsFamily::kChunked;
}

bool SupportsPerStageRecompute(const Schedule& schedule) {
  if (schedule.kind != nullptr) return schedule.kind->traits().per_stage_recompute;
  return !SplitsBackward(schedule);
}

}  // namespace pp
