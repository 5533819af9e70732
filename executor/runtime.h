// The runtime: trains a partitioned model for a few steps with a schedule's op lists (the same
// lists the simulator predicts from) and measures what happened. One host thread per device
// runs its op list in order through one ChunkRunner (executor/chunk_runner.h); each backend's
// math, memory, messages and clock sit behind PipelineDevice (executor/pipeline_device.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/schedule.h"

namespace pp {

// The range of RunOptions::timeout_s: 1 ms to one day (a deadline that far ahead is far from
// overflowing the clock).
inline constexpr double kMinTimeoutS = 1e-3;
inline constexpr double kMaxTimeoutS = 86400;

struct RunOptions {
  int steps = 5;            // timed steps
  int warmup_steps = 1;     // untimed steps first
  double timeout_s = 60;    // the longest a device waits for an input, in
                            // [kMinTimeoutS, kMaxTimeoutS]
  // The longest the whole run may take, setup and every step (seconds; 0: no limit). When it
  // passes, every device stops and the run fails with TimeLimitMessage.
  double time_limit_s = 600;
  uint64_t seed = 1;        // parameters and data
  bool optimizer = true;    // AdamW step after each step's micro-batches
  double learning_rate = 1e-3;
  bool keep_gradients = false;  // fill RunResult::gradients after the last step
};

// One op as it ran, in ms from the start of its step.
struct OpTiming {
  int device = 0;
  PipelineOp op;
  double start_ms = 0;
  double end_ms = 0;
  int rank = -1;    // distributed runs (executor/rank_run.h): the rank that ran it
  int replica = 0;  // and the data-parallel replica it belongs to
};

struct StepTiming {
  std::vector<OpTiming> ops;
  double step_ms = 0;            // end of the last op
  std::vector<double> busy_ms;   // per device
  double bubble_ratio = 0;       // 1 - sum(busy) / (p x step)
  double loss = 0;               // mean loss over the step's micro-batches
  double allreduce_ms = 0;       // distributed, replicas > 1: the slowest rank's gradient sum
};

struct RunResult {
  std::vector<StepTiming> steps;  // every step, warm-up first
  int warmup_steps = 0;
  // Medians over the timed steps.
  double step_ms = 0;
  double bubble_ratio = 0;
  double throughput_samples_per_s = 0;
  std::vector<double> busy_ms;                 // per device
  std::vector<uint64_t> peak_memory_bytes;     // per device: everything its runner allocated
  std::vector<std::vector<float>> gradients;   // per model layer, with keep_gradients
  std::vector<std::vector<float>> parameters;  // per model layer, with keep_gradients
  std::string device;                          // what ran it
  // Distributed runs (executor/rank_run.h): rank 0 holds the whole run; every other rank
  // returns `root` false and nothing else. Busy times are per stage, averaged over replicas;
  // each rank's clock starts at its own exit of the barrier that starts a step.
  bool root = true;
  int replicas = 1;
  std::vector<std::string> rank_names;  // per rank (RankName); empty in one process
  std::vector<std::string> hosts;       // the machines the ranks ran on, each once, rank order
  double allreduce_ms = 0;              // median over the timed steps
};

class PipelineDevice;  // executor/pipeline_device.h: what a backend implements

// The error of a run that took longer than `time_limit_s`, naming the limit and --time-limit.
std::string TimeLimitMessage(double time_limit_s);

// Ok when `chunks` and `schedule` fit together: the schedule passes ValidateSchedule and runs
// as many model chunks as `chunks` has.
Status CheckRun(const Schedule& schedule, const std::vector<ChunkRange>& chunks);

// Stops a failing run: wakes every thread waiting for a message with an error, so that every
// device thread returns (the backend's Transport::Abort or DeviceTransport::Abort).
using AbortRun = std::function<void()>;

// Trains the model cut into `chunks` (model order) with `schedule` on `devices` (one backend
// per device of the schedule, each driven by a ChunkRunner of executor/chunk_runner.h) for
// warm-up + timed steps and measures it. Sets every device up on the calling thread first, then runs one
// thread per device. A failure on any device (out of memory, a timeout, a bad op) calls
// `abort` once, stops every device and is returned naming the device, the op and the cause.
// So does passing options.time_limit_s (counted from the call): every device stops after
// its current op, and the error is TimeLimitMessage.
Result<RunResult> RunPipeline(const Schedule& schedule, int64_t micro_batch_size,
                              const std::vector<ChunkRange>& chunks,
                              std::vector<std::unique_ptr<PipelineDevice>> devices,
                              const AbortRun& abort, const RunOptions& options);

}  // namespace pp
