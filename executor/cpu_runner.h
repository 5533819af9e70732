// The cpu backend of `run`: every device a host thread computing its chunks with the CPU
// reference layers (fp32), messages through a HostTransport, op times from the host clock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "executor/tied_weights.h"
#include "executor/transport.h"

namespace pp {

// What a device of a data-parallel replica does differently (executor/rank_run.h): its
// micro-batch m of a step reads the synthetic data of micro-batch micro_batch_offset + m, and
// before the optimizer each parameter's gradient goes through `reduce_gradients` (which
// averages it over the replicas). The defaults: one pipeline, nothing reduced.
//
// A device that holds one side of a tie (executor/tied_weights.h) whose other side is on
// another device calls `exchange_tied` after that: it sends `mine`, this side's gradient of
// the shared weight (tie.count() floats, in this layer's layout), to the device of the other
// side, of the same replica, and receives that side's into `theirs`. A run without it fails
// such a device's step.
struct CpuDeviceHooks {
  int micro_batch_offset = 0;
  std::function<Status(float* gradients, size_t count)> reduce_gradients;
  std::function<Status(const TiedWeight& tie, bool embedding_side, const float* mine,
                       float* theirs)>
      exchange_tied;
};

// One device of the cpu backend. `model` and `transport` outlive it.
std::unique_ptr<PipelineDevice> MakeCpuDevice(const Model& model, const RunOptions& options,
                                              Transport* transport, CpuDeviceHooks hooks = {});

// Bytes the cpu backend allocates for `model` cut into `chunks` with `schedule`, counted
// without allocating: every device's arena, the sum of the run's peak_memory_bytes.
Result<uint64_t> CpuRunBytes(const Model& model, const std::vector<ChunkRange>& chunks,
                             const Schedule& schedule);

// Ok when CpuRunBytes fits in `available_bytes`; otherwise an error naming the bytes needed
// and the bytes available.
Status CheckCpuRunFits(const Model& model, const std::vector<ChunkRange>& chunks,
                       const Schedule& schedule, uint64_t available_bytes);

// The memory this machine can give a process now: MemAvailable of /proc/meminfo, else the
// available physical pages (sysconf); UINT64_MAX when neither is known.
uint64_t AvailableMemoryBytes();

// Trains `model` cut into `chunks` with `schedule` on the CPU (one thread per device, each
// doing its matrix products single-threaded) and measures it. Refuses, before allocating
// anything, a run whose CpuRunBytes exceed AvailableMemoryBytes.
Result<RunResult> RunOnCpu(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options);

}  // namespace pp
