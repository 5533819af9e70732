// The cuda backend of `run`: trains a partitioned model on GPUs with the same op lists and
// driver (RunPipeline) as the cpu backend. Plain C++ here, so callers and tests compile the
// same with or without the CUDA toolkit; without it every call answers "this pp-partition
// was built without CUDA".
//
// Devices (--gpus): "0,1,2,3" puts stage d on GPU d (peer copies between them); "0x4" cuts
// GPU 0 into 4 virtual devices with green contexts, each stage on its own SM share (plain
// streams with a warning where green contexts are unavailable); "" uses one GPU per stage
// when enough are visible, else virtual devices on GPU 0.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/runtime.h"
#include "executor/schedule.h"

namespace pp {

struct CudaRunRequest {
  std::string gpus;            // --gpus text
  DType dtype = DType::kFp32;  // storage type of parameters, activations and gradients
};

// Ok when the cuda backend can run here; otherwise why not: "this pp-partition was built
// without CUDA" or "no CUDA GPU is visible: <reason>".
Status CudaBackendAvailable();

// Trains `model` cut into `chunks` with `schedule` on the GPUs of `request` and measures it
// (RunResult as for the cpu backend; op times from CUDA events, peak memory from the
// runner's own allocations). Errors name the device, the op (F/B/I/W, micro-batch) and the
// CUDA error; out of memory at setup is "device d: out of memory ...".
Result<RunResult> RunOnCuda(const Model& model, const std::vector<ChunkRange>& chunks,
                            const Schedule& schedule, const RunOptions& options,
                            const CudaRunRequest& request);

}  // namespace pp
