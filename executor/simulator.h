// Discrete-event simulation of one training step of a pipeline schedule under the default
// cost model of DESIGN.md: a device runs its ops in list order; F(c,i) of chunk c starts once
// the device is free and F(c-1,i) has ended plus the c-1 -> c transfer; B(c,i) or I(c,i) once
// B or I of (c+1,i) has ended plus the c+1 -> c transfer; W(c,i) once I(c,i) has ended.
// Transfers are delays, zero between two chunks on one device; a transfer may also cost the
// devices at its two ends (ChunkTimes::p2p_gap_ms, exposed_ms below, which ChargeTransfers
// fills from the schedule kind). All times in ms. docs/schedules.md gives the op orders and
// what a transfer costs.
#pragma once

#include <vector>

#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/schedule.h"

namespace pp {

// Indexed by model chunk (= stage when each device runs one chunk).
struct ChunkTimes {
  std::vector<double> forward_ms;   // per chunk, one micro-batch
  std::vector<double> backward_ms;  // per chunk, one micro-batch: B = I + W
  std::vector<double> transfer_ms;  // per boundary c -> c+1 (chunks-1 entries), either direction
  // Per chunk, the input-gradient part of backward_ms; W takes backward_ms - this. Empty: I and
  // W each take half of backward_ms (the planner warns when the profile lacks the split).
  std::vector<double> backward_input_ms = {};
  // Per transfer between devices, what its two devices pay besides the delay (0 and empty:
  // nothing, the transfer is a pure delay):
  //   p2p_gap_ms: each send and each receive costs its device this much time: an op that
  //     receives starts p2p_gap_ms after both its input has arrived and its device is free;
  //     an op that sends keeps its device p2p_gap_ms longer after it ends;
  //   exposed_ms (per boundary c -> c+1, either direction; empty: none): the part of the
  //     transfer the sender waits for before its next op, on top of its send's gap.
  // The data leaves when the op that sends ends and arrives transfer_ms later either way.
  double p2p_gap_ms = 0;
  std::vector<double> exposed_ms = {};
};

// Launch gap per send or receive for the schedule kinds that pay one (ScheduleTraits::
// pays_transfer_gaps), when nothing measured says otherwise: docs/schedules.md gives the
// rationale (host-synchronised NCCL point-to-point exchanges cost tens of microseconds each).
inline constexpr double kDefaultP2pGapMs = 0.02;

// Fills `times`'s p2p_gap_ms and exposed_ms from the schedule's kind: for a kind that pays
// transfer gaps, `gap_ms` per send or receive and its exposed share of each transfer_ms; for
// the others nothing (pure delays). A schedule without a kind (read from a CSV) pays the gaps
// when it runs several chunks per device, with nothing exposed. `times.transfer_ms` must be
// filled first.
void ChargeTransfers(const Schedule& schedule, ChunkTimes* times,
                     double gap_ms = kDefaultP2pGapMs);

// The duration of `kind` on chunk `chunk`.
double OpDurationMs(const ChunkTimes& times, int chunk, OpKind kind);

struct TimedOp {
  int device = 0;
  PipelineOp op;
  double ready_ms = 0;  // when its input had arrived
  double start_ms = 0;
  double end_ms = 0;
};

struct Timeline {
  std::vector<TimedOp> ops;      // grouped by device, in each device's execution order
  std::vector<double> busy_ms;   // per device
  double step_time_ms = 0;       // end of the last op
  double bubble_ratio = 0;       // 1 - sum(busy) / (p * step); 0 for an empty step
  double bubble_over_ideal = 0;  // (p * step - sum(busy)) / sum(busy); 0 when nothing is busy
  int num_devices = 0;           // p
};

// Simulates `schedule` (which must pass ValidateSchedule) with `times`. A schedule whose
// dependencies can never be met is an error naming the stuck stage and op.
Result<Timeline> Simulate(const Schedule& schedule, const ChunkTimes& times);
// The same for a context's schedule, which was validated when the context was made.
Result<Timeline> Simulate(const PlanContext& context, const ChunkTimes& times);

// The step time alone, for searches that simulate one schedule many times: the schedule is
// validated and its dependencies indexed once, no timeline is kept and no memory is allocated
// per call. Every op's times are computed with Simulate's arithmetic, so the step is the same
// number Simulate gives (tests/simulator_test.cc compares them).
class StepSimulator {
 public:
  explicit StepSimulator(const Schedule& schedule);
  explicit StepSimulator(const PlanContext& context);  // validated already
  // ValidateSchedule's verdict, or a deadlock found on construction.
  const Status& status() const { return status_; }
  // NaN when status() is an error or `times` does not match the schedule's chunks.
  double StepMs(const ChunkTimes& times);

 private:
  StepSimulator(const Schedule& schedule, Status valid);
  struct Op {
    OpKind kind;
    int chunk;
    int slot;        // chunk * m + micro-batch: where its own end is kept
    int dependency;  // slot of the op it waits for (-1: none)
    int transfer;    // boundary whose transfer it waits for (-1: none, or same device)
    int sends;       // boundary it sends across to another device (-1: none)
  };
  Status status_ = Status::Ok();
  int chunks_ = 0;
  std::vector<std::vector<Op>> ops_;  // per device
  std::vector<int> order_;            // device of each op in one valid execution order
  std::vector<double> f_end_, grad_end_, input_end_, free_at_;
  std::vector<size_t> cursor_;  // per device: its next op
};

}  // namespace pp
