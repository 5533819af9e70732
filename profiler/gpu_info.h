// The GPUs this process can see, through the CUDA runtime when it is compiled in
// (gpu_info_cuda.cu) and nothing otherwise (gpu_info_none.cc). Neither needs a GPU or a
// driver: any error from cudaGetDeviceCount means "no GPU", never a failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace pp {

struct GpuInfo {
  int index = 0;  // CUDA device ordinal
  std::string name;
  uint64_t memory_bytes = 0;  // total global memory
  int sm_count = 0;
  int cc_major = 0;  // compute capability
  int cc_minor = 0;
};

// Every visible GPU, in ordinal order; empty when there is none or CUDA is not compiled in.
// Fails only when a GPU was counted but its properties could not be read.
Result<std::vector<GpuInfo>> ListGpus();

// One line for --version style output, e.g.
//   "CUDA runtime 13.0 compiled in; 1 GPU: NVIDIA H100 80GB HBM3 (cc 9.0, 132 SMs, 79.1 GiB)"
//   "CUDA runtime 13.0 compiled in; no GPU (cudaGetDeviceCount: <the runtime's message>)"
//   "CUDA not compiled in"
std::string CudaSummary();

}  // namespace pp
