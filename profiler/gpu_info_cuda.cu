// Built when the CUDA toolkit is found. Uses only the runtime API (cudart, linked
// statically), which loads without a driver; an error from cudaGetDeviceCount means no GPU.
#include <cuda_runtime.h>

#include <string>

#include "core/units.h"
#include "profiler/gpu_info.h"

namespace pp {
namespace {

// "cudaGetDeviceCount: <the runtime's message>" for a failed runtime call.
std::string CudaError(const char* call, cudaError_t err) {
  return std::string(call) + ": " + cudaGetErrorString(err);
}

std::string RuntimeVersion() {
  int version = 0;
  if (cudaRuntimeGetVersion(&version) != cudaSuccess) return "?";
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// Counts the devices; on failure returns false and the reason.
bool CountDevices(int* count, std::string* why) {
  *count = 0;
  const cudaError_t err = cudaGetDeviceCount(count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clears the recorded error; its value is `err` above
    *count = 0;
    *why = CudaError("cudaGetDeviceCount", err);
    return false;
  }
  return true;
}

}  // namespace

Result<std::vector<GpuInfo>> ListGpus() {
  std::vector<GpuInfo> gpus;
  int count = 0;
  std::string why;
  if (!CountDevices(&count, &why)) return gpus;  // no driver or no device: no GPU
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    const cudaError_t err = cudaGetDeviceProperties(&prop, i);
    if (err != cudaSuccess) {
      return Status::Error("GPU " + std::to_string(i) + ": " +
                           CudaError("cudaGetDeviceProperties", err));
    }
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.memory_bytes = static_cast<uint64_t>(prop.totalGlobalMem);
    g.sm_count = prop.multiProcessorCount;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    gpus.push_back(std::move(g));
  }
  return gpus;
}

std::string CudaSummary() {
  std::string line = "CUDA runtime " + RuntimeVersion() + " compiled in; ";
  int count = 0;
  std::string why;
  if (!CountDevices(&count, &why)) return line + "no GPU (" + why + ")";
  if (count == 0) return line + "no GPU";
  Result<std::vector<GpuInfo>> gpus = ListGpus();
  if (!gpus.ok())
    return line + std::to_string(count) + " GPU(s), unreadable (" + gpus.message() + ")";
  line += std::to_string(count) + (count == 1 ? " GPU: " : " GPUs: ");
  for (size_t i = 0; i < gpus->size(); ++i) {
    const GpuInfo& g = (*gpus)[i];
    if (i > 0) line += "; ";
    line += std::to_string(g.index) + " " + g.name + " (cc " + std::to_string(g.cc_major) + "." +
            std::to_string(g.cc_minor) + ", " + std::to_string(g.sm_count) + " SMs, " +
            FormatBytes(g.memory_bytes) + ")";
  }
  return line;
}

}  // namespace pp
