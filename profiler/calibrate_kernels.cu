// The kernels of calibration (calibrate_kernels.h).
#include "profiler/calibrate_kernels.h"

#include "layers/cuda_device.h"

namespace pp {
namespace {

__global__ void CopyKernel(const float4* __restrict__ src, float4* __restrict__ dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[i] = src[i];
  }
}

__global__ void EmptyKernel() {}

// One hash of (seed, byte index) per byte: its sign bit and low nibble, the rest 0x30.
__global__ void FillRandomKernel(unsigned char* dst, size_t bytes, unsigned long long seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < bytes;
       i += stride) {
    dst[i] = static_cast<unsigned char>((cuda::SplitMix64(seed, i) & 0x8f) | 0x30);
  }
}

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

cudaError_t LaunchFillRandom(unsigned char* dst, size_t bytes, unsigned long long seed,
                             cudaStream_t stream) {
  FillRandomKernel<<<1024, 256, 0, stream>>>(dst, bytes, seed);
  return cudaGetLastError();
}

}  // namespace pp
