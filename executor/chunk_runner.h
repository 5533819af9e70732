// The one runner of a device's op list, whatever the backend: it owns which chunk and which
// activation slot an op uses, which message it waits for and which it hands on, when its clock
// starts and stops, and whether the chunk recomputes; the backend's PipelineDevice
// (executor/pipeline_device.h) does the math, the memory, the messages and the clock. Used by
// RunPipeline (executor/runtime.h), one per device, driven by that device's thread only.
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

// The layout of device `device`'s chunks of `chunks` (every model chunk's layers; the
// schedule's chunk count): one slot per micro-batch the chunk holds at its peak
// (InFlightPerChunk), split backwards where SplitsBackward says so. A chunk that recomputes
// needs full backwards (B); with a split schedule it is an error.
Result<DeviceChunks> LayoutOf(const Schedule& schedule, int device,
                              const std::vector<ChunkRange>& chunks);

class ChunkRunner {
 public:
  // Runs device `device`'s op list of `schedule` (which must outlive the runner) on `backend`.
  ChunkRunner(const Schedule& schedule, int device, std::unique_ptr<PipelineDevice> backend);
  ChunkRunner(const ChunkRunner&) = delete;
  ChunkRunner& operator=(const ChunkRunner&) = delete;

  // Lays out the device's chunks of `chunks` (LayoutOf), then sets the backend up.
  Status Setup(const std::vector<ChunkRange>& chunks);

  int num_ops() const { return static_cast<int>(ops_.size()); }
  const PipelineOp& op(int index) const { return ops_[index]; }
  // The model chunk op `index` runs.
  int chunk_of(int index) const { return chunk_of_[index]; }

  Status BeginStep(int step);
  // Runs op `index` of the list; ops run in list order, each once per step. The op's input is
  // received first, then its clock starts, then its math, then its clock stops, then its
  // result is handed on.
  Status Run(int index);
  // Finishes the step; `timings` gets every op run since BeginStep (ms from the step start).
  Status EndStep(std::vector<OpTiming>* timings, double* loss_sum);

  const PipelineDevice& backend() const { return *backend_; }

 private:
  struct Chunk {
    ChunkSpec spec;
    bool passes_gradient = false;  // its backward sends a gradient to the chunk before
    std::vector<int> slot_of;      // micro-batch -> slot, -1 when none
    std::vector<int> free_slots;   // taken from the back
  };
  Status Prepare(int index, OpCall* call);  // which chunk, slot and messages

  const Schedule& schedule_;
  int device_;
  std::unique_ptr<PipelineDevice> backend_;
  std::vector<PipelineOp> ops_;  // the device's list
  std::vector<int> chunk_of_;    // per op: its model chunk
  std::vector<int> local_of_;    // per op: its chunk's index in chunks_
  std::vector<Chunk> chunks_;
  int ops_run_ = 0;  // this step
  std::vector<OpSpan> spans_;
};

}  // namespace pp
