#include "executor/simulator.h"

#include <algorithm>
#include <limits>
#include <string>

namespace pp {
namespace {

constexpr double kNotYet = std::numeric_limits<double>::quiet_NaN();

bool Known(double t) { return t == t; }

// Whether `times` has the entries a schedule of `chunks` chunks needs.
bool TimesMatch(const ChunkTimes& times, size_t chunks) {
  const size_t boundaries = chunks > 0 ? chunks - 1 : 0;
  return times.forward_ms.size() == chunks && times.backward_ms.size() == chunks &&
         times.transfer_ms.size() == boundaries &&
         (times.backward_input_ms.empty() || times.backward_input_ms.size() == chunks) &&
         (times.exposed_ms.empty() || times.exposed_ms.size() == boundaries);
}

// How long an op that sends across `boundary` (-1: it sends nothing) keeps its device after
// it ends.
double SendHoldMs(const ChunkTimes& times, int boundary) {
  if (boundary < 0) return 0;
  return times.p2p_gap_ms + (times.exposed_ms.empty() ? 0.0 : times.exposed_ms[boundary]);
}

// The boundary op `kind` of chunk `c` sends across to another device; -1 when none.
int SendBoundary(const Schedule& schedule, int chunks, int c, OpKind kind) {
  if (kind == OpKind::kForward) {
    return c + 1 < chunks && ChunkDevice(schedule, c) != ChunkDevice(schedule, c + 1) ? c : -1;
  }
  if (kind == OpKind::kBackwardWeight) return -1;
  return c > 0 && ChunkDevice(schedule, c) != ChunkDevice(schedule, c - 1) ? c - 1 : -1;
}

}  // namespace

void ChargeTransfers(const Schedule& schedule, ChunkTimes* times, double gap_ms) {
  bool pays = false;
  double share = 0;
  if (schedule.kind != nullptr) {
    const ScheduleTraits traits = schedule.kind->traits();
    pays = traits.pays_transfer_gaps;
    share = traits.exposed_transfer_share;
  } else {
    pays = !schedule.chunk_device.empty() && NumChunks(schedule) > schedule.num_devices;
  }
  times->p2p_gap_ms = pays ? gap_ms : 0.0;
  times->exposed_ms.clear();
  if (pays && share > 0) {
    for (const double t : times->transfer_ms) times->exposed_ms.push_back(share * t);
  }
}

double OpDurationMs(const ChunkTimes& times, int chunk, OpKind kind) {
  const double input = times.backward_input_ms.empty() ? times.backward_ms[chunk] / 2
                                                       : times.backward_input_ms[chunk];
  switch (kind) {
    case OpKind::kForward:
      return times.forward_ms[chunk];
    case OpKind::kBackward:
      return times.backward_ms[chunk];
    case OpKind::kBackwardInput:
      return input;
    case OpKind::kBackwardWeight:
      return times.backward_ms[chunk] - input;
  }
  return 0;
}

namespace {

// Simulate for a schedule that passed ValidateSchedule.
Result<Timeline> SimulateValid(const Schedule& schedule, const ChunkTimes& times) {
  const int p = schedule.num_devices;
  const int m = schedule.num_micro_batches;
  const int chunks = NumChunks(schedule);
  const auto n = static_cast<size_t>(chunks);
  if (!TimesMatch(times, n)) {
    return Status::Error("simulator: stage times do not match the schedule's " +
                         std::to_string(chunks) + " stages");
  }

  // End times per (chunk, micro-batch); NaN until simulated. `grad_end` is when the input
  // gradient (B or I) is done, `input_end` when I is done.
  std::vector<double> f_end(n * m, kNotYet), grad_end(n * m, kNotYet), input_end(n * m, kNotYet);
  auto at = [m](int c, int i) { return static_cast<size_t>(c) * m + i; };
  // The transfer between chunks c and c+1; nothing moves between two chunks of one device.
  auto transfer = [&](int c) {
    return ChunkDevice(schedule, c) == ChunkDevice(schedule, c + 1) ? 0.0 : times.transfer_ms[c];
  };

  std::vector<size_t> next(p, 0);
  std::vector<double> free_at(p, 0.0);
  std::vector<std::vector<TimedOp>> done(p);
  size_t remaining = 0;
  for (const auto& ops : schedule.device_ops) remaining += ops.size();

  while (remaining > 0) {
    bool progressed = false;
    for (int s = 0; s < p; ++s) {
      const auto& ops = schedule.device_ops[s];
      while (next[s] < ops.size()) {
        const PipelineOp& op = ops[next[s]];
        const int c = OpChunk(schedule, s, op);
        double ready = 0;
        bool receives = false;  // its input comes from another device
        if (op.kind == OpKind::kForward) {
          if (c > 0) {
            const double prev = f_end[at(c - 1, op.micro_batch)];
            if (!Known(prev)) break;
            ready = prev + transfer(c - 1);
            receives = ChunkDevice(schedule, c - 1) != s;
          }
        } else if (op.kind == OpKind::kBackwardWeight) {
          ready = input_end[at(c, op.micro_batch)];  // validated: I runs earlier on this device
        } else if (c + 1 < chunks) {
          const double prev = grad_end[at(c + 1, op.micro_batch)];
          if (!Known(prev)) break;
          ready = prev + transfer(c);
          receives = ChunkDevice(schedule, c + 1) != s;
        } else if (ChunkDevice(schedule, c) != s) {
          break;  // unreachable after validation
        }
        const double start = std::max(ready, free_at[s]) + (receives ? times.p2p_gap_ms : 0.0);
        const double end = start + OpDurationMs(times, c, op.kind);
        if (op.kind == OpKind::kForward) f_end[at(c, op.micro_batch)] = end;
        if (op.kind == OpKind::kBackward || op.kind == OpKind::kBackwardInput) {
          grad_end[at(c, op.micro_batch)] = end;
        }
        if (op.kind == OpKind::kBackwardInput) input_end[at(c, op.micro_batch)] = end;
        free_at[s] = end + SendHoldMs(times, SendBoundary(schedule, chunks, c, op.kind));
        done[s].push_back({s, op, ready, start, end});
        ++next[s];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) {
      for (int s = 0; s < p; ++s) {
        if (next[s] < schedule.device_ops[s].size()) {
          const PipelineOp& op = schedule.device_ops[s][next[s]];
          return Status::Error(
              "schedule " + schedule.name + " deadlocks: stage " + std::to_string(s) +
              " waits forever at " +
              (schedule.chunk_device.empty() ? std::string() : std::to_string(op.chunk) + ":") +
              OpKindLetter(op.kind) + std::to_string(op.micro_batch));
        }
      }
    }
  }

  Timeline t;
  t.num_devices = p;
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
  t.bubble_over_ideal = busy_total > 0 ? (p * t.step_time_ms - busy_total) / busy_total : 0.0;
  return t;
}

}  // namespace

Result<Timeline> Simulate(const Schedule& schedule, const ChunkTimes& times) {
  PP_RETURN_IF_ERROR(ValidateSchedule(schedule));
  return SimulateValid(schedule, times);
}

Result<Timeline> Simulate(const PlanContext& context, const ChunkTimes& times) {
  return SimulateValid(context.schedule, times);
}

StepSimulator::StepSimulator(const Schedule& schedule) : StepSimulator(schedule, ValidateSchedule(schedule)) {}

StepSimulator::StepSimulator(const PlanContext& context) : StepSimulator(context.schedule, Status::Ok()) {}

StepSimulator::StepSimulator(const Schedule& schedule, Status valid) : status_(std::move(valid)) {
  if (!status_.ok()) return;
  const int p = schedule.num_devices;
  const int m = schedule.num_micro_batches;
  chunks_ = NumChunks(schedule);
  ops_.resize(p);
  for (int d = 0; d < p; ++d) {
    for (const PipelineOp& op : schedule.device_ops[d]) {
      Op x{op.kind, OpChunk(schedule, d, op), 0, -1, -1, -1};
      x.sends = SendBoundary(schedule, chunks_, x.chunk, op.kind);
      x.slot = x.chunk * m + op.micro_batch;
      if (op.kind == OpKind::kForward) {
        if (x.chunk > 0) x.dependency = (x.chunk - 1) * m + op.micro_batch;
        if (x.chunk > 0 && ChunkDevice(schedule, x.chunk - 1) != d) x.transfer = x.chunk - 1;
      } else if (op.kind == OpKind::kBackwardWeight) {
        x.dependency = x.slot;  // its own I (validated: earlier on this device)
      } else if (x.chunk + 1 < chunks_) {
        x.dependency = (x.chunk + 1) * m + op.micro_batch;
        if (ChunkDevice(schedule, x.chunk + 1) != d) x.transfer = x.chunk;
      }
      ops_[d].push_back(x);
    }
  }
  // One execution order, found once with Simulate's sweep over the devices: an op runs after
  // every op it depends on, so a single pass in this order computes every end time.
  std::vector<char> f_done(static_cast<size_t>(chunks_) * m, 0), g_done(f_done), i_done(f_done);
  std::vector<size_t> next(p, 0);
  size_t remaining = 0;
  for (const auto& ops : ops_) remaining += ops.size();
  while (remaining > 0) {
    bool progressed = false;
    for (int d = 0; d < p; ++d) {
      while (next[d] < ops_[d].size()) {
        const Op& x = ops_[d][next[d]];
        if (x.dependency >= 0) {
          const std::vector<char>& done = x.kind == OpKind::kForward          ? f_done
                                          : x.kind == OpKind::kBackwardWeight ? i_done
                                                                              : g_done;
          if (!done[x.dependency]) break;
        }
        if (x.kind == OpKind::kForward) f_done[x.slot] = 1;
        if (x.kind == OpKind::kBackward || x.kind == OpKind::kBackwardInput) g_done[x.slot] = 1;
        if (x.kind == OpKind::kBackwardInput) i_done[x.slot] = 1;
        order_.push_back(d);
        ++next[d];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) {
      status_ = Status::Error("schedule " + schedule.name + " deadlocks");
      return;
    }
  }
  f_end_.assign(f_done.size(), 0.0);
  grad_end_ = input_end_ = f_end_;
  free_at_.assign(p, 0.0);
  cursor_.assign(p, 0);
}

double StepSimulator::StepMs(const ChunkTimes& times) {
  const auto n = static_cast<size_t>(chunks_);
  if (!status_.ok() || !TimesMatch(times, n)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  std::fill(free_at_.begin(), free_at_.end(), 0.0);
  std::fill(cursor_.begin(), cursor_.end(), size_t{0});
  double step = 0;
  for (const int d : order_) {
    const Op& x = ops_[d][cursor_[d]++];
    double ready = 0;
    if (x.dependency >= 0) {
      ready = x.kind == OpKind::kForward          ? f_end_[x.dependency]
              : x.kind == OpKind::kBackwardWeight ? input_end_[x.dependency]
                                                  : grad_end_[x.dependency];
      if (x.transfer >= 0) ready = ready + times.transfer_ms[x.transfer];
    }
    const double start =
        std::max(ready, free_at_[d]) + (x.transfer >= 0 ? times.p2p_gap_ms : 0.0);
    const double end = start + OpDurationMs(times, x.chunk, x.kind);
    if (x.kind == OpKind::kForward) f_end_[x.slot] = end;
    if (x.kind == OpKind::kBackward || x.kind == OpKind::kBackwardInput) grad_end_[x.slot] = end;
    if (x.kind == OpKind::kBackwardInput) input_end_[x.slot] = end;
    free_at_[d] = end + SendHoldMs(times, x.sends);
    step = std::max(step, end);
  }
  return step;
}

}  // namespace pp
