// Built when no CUDA toolkit was found: there are no GPUs to see.
#include "profiler/gpu_info.h"

namespace pp {

Result<std::vector<GpuInfo>> ListGpus() { return std::vector<GpuInfo>(); }

std::string CudaSummary() { return "CUDA not compiled in"; }

}  // namespace pp
