// The runtime: trains a partitioned model for a few steps with a schedule's op lists (the same
// lists the simulator predicts from) and measures what happened. One host thread per device
// runs its op list in order; hardware sits behind StageRunner (one per device) and Transport.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/plan_context.h"
#include "executor/schedule.h"
#include "executor/transport.h"

namespace pp {

struct RunOptions {
  int steps = 5;            // timed steps
  int warmup_steps = 1;     // untimed steps first
  double timeout_s = 60;    // the longest a device waits for an input
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
};

struct StepTiming {
  std::vector<OpTiming> ops;
  double step_ms = 0;            // end of the last op
  std::vector<double> busy_ms;   // per device
  double bubble_ratio = 0;       // 1 - sum(busy) / (p x step)
  double loss = 0;               // mean loss over the step's micro-batches
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
};

// Runs the ops of one device. Created once per device before the first step; everything it
// needs is allocated then. Called from that device's thread only.
class StageRunner {
 public:
  virtual ~StageRunner() = default;
  // Zeroes gradients; `step` selects the step's synthetic data.
  virtual Status BeginStep(int step) = 0;
  // Runs (or enqueues) one op; records its timing.
  virtual Status Run(const PipelineOp& op, int chunk) = 0;
  // Finishes the step (optimizer) and returns the ops' timings and the loss it computed
  // (0 where the device holds no loss), relative to `step_start`.
  virtual Status EndStep(std::vector<OpTiming>* timings, double* loss_sum) = 0;
  virtual uint64_t allocated_bytes() const = 0;
  // Per model layer of this device's chunks: (layer index, gradient, parameters).
  virtual void CopyGradients(std::vector<std::vector<float>>* gradients,
                             std::vector<std::vector<float>>* parameters) const = 0;
};

// Builds the runners of the cpu backend: one per device, layers computed by the CPU reference
// (fp32), transfers through `transport`.
Result<std::vector<std::unique_ptr<StageRunner>>> MakeCpuRunners(
    const Model& model, const std::vector<ChunkRange>& chunks, const Schedule& schedule,
    const RunOptions& options, Transport* transport);

// Trains with `runners` (one per device of `schedule`) for warm-up + timed steps and measures.
// A failure on any device (out of memory, a timeout, a bad op) stops every device and is
// returned naming the device, the op and the cause.
Result<RunResult> RunPipeline(const Schedule& schedule, int64_t micro_batch_size,
                              std::vector<std::unique_ptr<StageRunner>> runners,
                              Transport* transport, const RunOptions& options);

}  // namespace pp
