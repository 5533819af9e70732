// The CUDA side of pp-partition as a loadable module (pp-partition-cuda.so). pp-partition
// links only a proxy (cuda_plugin_client.cc) for the CUDA entry points — ListGpus,
// CudaSummary, CudaBackend, CudaBackendAvailable, RunOnCuda, CalibrateDevice — which loads the
// module on first use. Planning, simulating and exporting then never load cuBLAS, cuBLASLt or CUPTI, whose
// start-up alone costs about a quarter of a second and 200 MB.
//
// The module is found at $PP_PARTITION_CUDA_PLUGIN, else beside the running executable, else
// where the build put it. It is built by the same compiler from the same sources, so C++
// types cross the boundary unchanged; kCudaPluginVersion guards against a stale module.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"
#include "core/status.h"
#include "executor/cuda_runner.h"
#include "executor/runtime.h"
#include "executor/schedule.h"
#include "profiler/backend.h"
#include "profiler/calibrate.h"
#include "profiler/gpu_info.h"

namespace pp {

inline constexpr int kCudaPluginVersion = 2;

struct CudaPluginApi {
  int version;
  Result<std::vector<GpuInfo>> (*list_gpus)();
  std::string (*cuda_summary)();
  const ProfilerBackend* (*cuda_backend)();
  Status (*cuda_backend_available)();
  Result<RunResult> (*run_on_cuda)(const Model&, const std::vector<ChunkRange>&,
                                   const Schedule&, const RunOptions&, const CudaRunRequest&);
  Result<Json> (*calibrate_device)(const CalibrateRequest&);
};

}  // namespace pp

// The module's one exported symbol.
extern "C" const pp::CudaPluginApi* pp_partition_cuda_plugin();
