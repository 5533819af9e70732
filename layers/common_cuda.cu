// Small kernels shared by the CUDA layers: fills, bias add, column sums (cuda_kernels.h).
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_kernels.h"

namespace pp {
namespace {

using cuda::Blocks;
using cuda::FromFloat;
using cuda::kThreads;
using cuda::ToFloat;

template <typename T>
__global__ void FillKernel(T* x, int64_t count, float value) {
  const T v = FromFloat<T>(value);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = v;
  }
}

// Box-Muller on two 32-bit uniforms in (0, 1].
template <typename T>
__global__ void FillNormalKernel(T* x, int64_t count, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t z = cuda::SplitMix64(seed, static_cast<uint64_t>(i));
    const float u1 = (static_cast<float>(z >> 40) + 1.0f) * (1.0f / 16777216.0f);
    const float u2 = static_cast<float>((z >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    x[i] = FromFloat<T>(sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
  }
}

template <typename T>
__global__ void AddBiasKernel(T* d, const T* bias, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * cols;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, j = i % cols;
    d[r * ld + j] = FromFloat<T>(ToFloat(d[r * ld + j]) + ToFloat(bias[j]));
  }
}

// The column-sum term: dy[r, j].
template <typename T>
struct DyTerm {
  const T* dy;
  int64_t cols;
  __device__ float2 operator()(int64_t r, int64_t j) const {
    return make_float2(ToFloat(dy[r * cols + j]), 0.0f);
  }
};

}  // namespace

int64_t ColumnSumPartials(int64_t rows, int64_t cols) {
  return 2 * cuda::ColumnChunks(rows) * cols;
}

template <typename T>
Status Fill(CudaContext& ctx, T* x, int64_t count, float value) {
  if (count <= 0) return Status::Ok();
  NvtxRange range("Fill");
  FillKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(x, count, value);
  PP_CUDA_CHECK_LAUNCH("FillKernel");
  return Status::Ok();
}

template <typename T>
Status FillNormal(CudaContext& ctx, T* x, int64_t count, uint64_t seed) {
  if (count <= 0) return Status::Ok();
  NvtxRange range("FillNormal");
  FillNormalKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(x, count, seed);
  PP_CUDA_CHECK_LAUNCH("FillNormalKernel");
  return Status::Ok();
}

template <typename T>
Status AddBias(CudaContext& ctx, T* d, const T* bias, int64_t rows, int64_t cols, int64_t ld) {
  NvtxRange range("AddBias");
  AddBiasKernel<T><<<Blocks(rows * cols), kThreads, 0, ctx.stream()>>>(d, bias, rows, cols, ld);
  PP_CUDA_CHECK_LAUNCH("AddBiasKernel");
  return Status::Ok();
}

template <typename T>
Status ColumnSumAccumulate(CudaContext& ctx, const T* dy, int64_t rows, int64_t cols, T* out,
                           float* partial) {
  NvtxRange range("ColumnSumAccumulate");
  cuda::LaunchColumnReduce<T>(DyTerm<T>{dy, cols}, rows, cols, partial, out,
                              static_cast<T*>(nullptr), ctx.stream());
  PP_CUDA_CHECK_LAUNCH("ColumnReduce");
  return Status::Ok();
}

#define PP_INSTANTIATE(T)                                                                 \
  template Status Fill<T>(CudaContext&, T*, int64_t, float);                              \
  template Status FillNormal<T>(CudaContext&, T*, int64_t, uint64_t);                     \
  template Status AddBias<T>(CudaContext&, T*, const T*, int64_t, int64_t, int64_t);      \
  template Status ColumnSumAccumulate<T>(CudaContext&, const T*, int64_t, int64_t, T*, float*);
PP_INSTANTIATE(float)
PP_INSTANTIATE(__nv_bfloat16)
#undef PP_INSTANTIATE

}  // namespace pp
