// What a runtime backend implements: the math, memory, messages and clock of one device's
// model chunks. The chunk runner (executor/chunk_runner.h) owns everything a backend shares:
// which chunk and slot an op uses, when its input is there, when its clock starts and stops,
// whether the chunk recomputes, and handing the result on. A backend (the CPU reference, CUDA,
// a test's fake) only does what it is told, in this order for every op:
//
//   Receive (F: the activation; B, I: the gradient; none for the first chunk's F, the last
//   chunk's B/I and every W)  ->  MarkStart  ->  the math (Recompute first when the chunk
//   recomputes as a whole; one that recomputes layer by layer does so inside Backward)  ->
//   MarkEnd  ->  Send (when the op hands a result on).
//
// So on every backend an op is timed from when its input is there to when its math is done;
// the wait before and the hand-off after are not in its time. Thread: Setup runs on the
// thread that calls RunPipeline; everything else on the device's own RunPipeline thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "executor/runtime.h"
#include "executor/transport.h"

namespace pp {

// One model chunk of a device, as the chunk runner lays it out.
struct ChunkSpec {
  int index = 0;     // model chunk, 0-based in model order
  ChunkRange range;  // its layers; range.recompute: keep only the input per slot
  bool first = false;  // holds the model's first layer (no activation comes in)
  bool last = false;   // holds the model's last layer (the loss; no gradient comes in)
  int slots = 1;       // activation slots: the chunk's peak in-flight micro-batches (>= 1)
};

struct DeviceChunks {
  int device = 0;         // runtime device index (pipeline stage)
  int micro_batches = 0;  // m: the loss of each micro-batch is weighted 1/m
  int ops_per_step = 0;   // length of the device's op list: clock marks per step
  bool split = false;     // the schedule runs I and W instead of B (SplitsBackward)
  std::vector<ChunkSpec> chunks;  // the device's chunks, in model order
};

// One op as the chunk runner hands it to the device.
struct OpCall {
  int index = 0;  // position in the device's op list; the clock marks of this op
  int chunk = 0;  // model chunk
  int micro_batch = 0;
  int slot = 0;   // the activation slot the micro-batch holds on this chunk
  std::optional<MessageKey> input;   // what Receive waits for; none: the op needs no message
  std::optional<MessageKey> output;  // what Send hands on; none: the op sends nothing
};

// An op's clock marks, in ms from the step's start on the device's clock.
struct OpSpan {
  double start_ms = 0;
  double end_ms = 0;
};

class PipelineDevice {
 public:
  virtual ~PipelineDevice() = default;

  // Builds the chunks' layers and allocates everything the steps use (parameters, optimizer
  // state, `slots` sets of kept activations per chunk, buffers, clock marks), so that nothing
  // allocates inside a step. Out of memory is an error naming what did not fit.
  virtual Status Setup(const DeviceChunks& layout) = 0;
  // Whether the backward of `chunk` (set up here) produces a gradient of the chunk's input
  // (false when its first layer has none, e.g. an embedding).
  virtual bool PassesGradient(int chunk) const = 0;

  // Starts step `step` (0-based; selects the step's data): zeroes gradients, starts the clock.
  virtual Status BeginStep(int step) = 0;
  // Waits up to the run's timeout for message *call.input and makes it the op's input (for a
  // GPU: the op's stream waits for it). Errors: a timeout ("waited longer than T s for its
  // input"), an abort, a size mismatch.
  virtual Status Receive(const OpCall& call) = 0;
  // The clock marks of op call.index: start once its input is there, end after its math.
  virtual Status MarkStart(const OpCall& call) = 0;
  virtual Status MarkEnd(const OpCall& call) = 0;

  // F: the chunk's layers forward from the received input (the first chunk: the step's batch
  // data of the micro-batch), keeping the activations in the slot (a recomputing chunk keeps
  // its input there instead); the last chunk adds the micro-batch's loss.
  virtual Status Forward(const OpCall& call) = 0;
  // A recomputing chunk, before its backward: the forward again from the slot's kept input,
  // the activations into the chunk's one shared set; adds no loss.
  virtual Status Recompute(const OpCall& call) = 0;
  // B: input and weight gradients from the received gradient (the last chunk: d loss / m).
  virtual Status Backward(const OpCall& call) = 0;
  // I: the input gradient only; keeps in the slot what the slot's W needs.
  virtual Status BackwardInput(const OpCall& call) = 0;
  // W: the weight gradients from what the slot's I kept.
  virtual Status BackwardWeight(const OpCall& call) = 0;
  // Hands the result of the op just run (F: the chunk's output; B, I: its input gradient)
  // on as *call.output. Does not wait for the consumer.
  virtual Status Send(const OpCall& call) = 0;

  // Finishes the step: the optimizer when the run asks for it, then every op's clock marks
  // for indices 0..ops-1 into `spans` and the sum of the micro-batch losses it computed (0
  // when it holds no loss) into `loss_sum`.
  virtual Status EndStep(int ops, std::vector<OpSpan>* spans, double* loss_sum) = 0;

  // Bytes the device allocated for the run (its peak: nothing is allocated later).
  virtual uint64_t allocated_bytes() const = 0;
  // Per model layer of the device's chunks: gradient and parameters after the last step.
  // Both are indexed by model layer; the device grows them to the model's layer count.
  virtual void CopyGradients(std::vector<std::vector<float>>* gradients,
                             std::vector<std::vector<float>>* parameters) const = 0;
};

}  // namespace pp
