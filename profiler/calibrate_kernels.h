// Kernels for calibration (calibrate.h): a grid-stride copy of n float4 values (8 blocks per
// SM of 256 threads), an empty kernel for the launch overhead, and a fill of a product's
// operands with pseudo-random bytes. Each enqueues on `stream` and returns the launch error.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace pp {

cudaError_t LaunchCopy(const float4* src, float4* dst, size_t n, int sm_count, cudaStream_t stream);
cudaError_t LaunchEmpty(cudaStream_t stream);
// Fills `bytes` bytes at `dst` with pseudo-random bytes of `seed`, each 0x30-0x3f or 0xb0-0xbf:
// read as bf16 or fp32 they are finite values of random sign and mantissa below 2 in
// magnitude, as fp8 E4M3 values of magnitude 0.5 to 1.9 (never NaN). Products run slower on
// such data than on constant or zero operands, which switch fewer bits: on an H200 the best
// bf16 product reached 921.6 TFLOP/s on constant bytes and 846.5 on these, fp8 1,805.9 and
// 1,557.1 (docs/profiling.md).
cudaError_t LaunchFillRandom(unsigned char* dst, size_t bytes, unsigned long long seed,
                             cudaStream_t stream);

}  // namespace pp
