// The cpu backend of `run`: every device a host thread computing its chunks with the CPU
// reference layers (fp32), messages through a HostTransport, op times from the host clock.
#pragma once

#include <memory>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/pipeline_device.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "executor/transport.h"

namespace pp {

// One device of the cpu backend. `model` and `transport` outlive it.
std::unique_ptr<PipelineDevice> MakeCpuDevice(const Model& model, const RunOptions& options,
                                              Transport* transport);

// Trains `model` cut into `chunks` with `schedule` on the CPU (one thread per device, each
// doing its matrix products single-threaded) and measures it.
Result<RunResult> RunOnCpu(const Model& model, const std::vector<ChunkRange>& chunks,
                           const Schedule& schedule, const RunOptions& options);

}  // namespace pp
