// The two kernels calibration times (calibrate_kernels.h).
#include "profiler/calibrate_kernels.h"

namespace pp {
namespace {

__global__ void CopyKernel(const float4* __restrict__ src, float4* __restrict__ dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[i] = src[i];
  }
}

__global__ void EmptyKernel() {}

}  // namespace

cudaError_t LaunchCopy(const float4* src, float4* dst, size_t n, int sm_count,
                       cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int blocks = sm_count > 0 ? 8 * sm_count : 1024;
  CopyKernel<<<blocks, kThreads, 0, stream>>>(src, dst, n);
  return cudaGetLastError();
}

cudaError_t LaunchEmpty(cudaStream_t stream) {
  EmptyKernel<<<1, 32, 0, stream>>>();
  return cudaGetLastError();
}

}  // namespace pp
