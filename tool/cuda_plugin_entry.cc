// The entry point of the pp-partition-cuda module: the table of the real CUDA functions.
#include "profiler/backends.h"
#include "tool/cuda_plugin.h"

extern "C" __attribute__((visibility("default"))) const pp::CudaPluginApi*
pp_partition_cuda_plugin() {
  static const pp::CudaPluginApi kApi = {
      pp::kCudaPluginVersion, &pp::ListGpus,          &pp::CudaSummary, &pp::CudaBackend,
      &pp::CudaBackendAvailable, &pp::RunOnCuda, &pp::CalibrateDevice,
  };
  return &kApi;
}
