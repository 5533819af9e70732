// Kernels for calibration (calibrate.h): a grid-stride copy of n float4 values (8 blocks per
// SM of 256 threads), and an empty kernel for the launch overhead. Each enqueues on `stream`
// and returns the launch error.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace pp {

cudaError_t LaunchCopy(const float4* src, float4* dst, size_t n, int sm_count, cudaStream_t stream);
cudaError_t LaunchEmpty(cudaStream_t stream);

}  // namespace pp
