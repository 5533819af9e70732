#include <cuda_bf16.h>

#include "executor/cuda_optimizer.h"
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"

namespace pp {
namespace {

template <typename T>
__global__ void AdamWKernel(AdamWConfig c, float c1, float c2, int64_t count, T* params,
                            const T* grads, float* master, float* m, float* v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = cuda::ToFloat(grads[i]);
    const float mi = c.beta1 * m[i] + (1.0f - c.beta1) * g;
    const float vi = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float w = master != nullptr ? master[i] : cuda::ToFloat(params[i]);
    const float update = (mi / c1) / (sqrtf(vi / c2) + c.eps);
    const float next = w - c.learning_rate * (update + c.weight_decay * w);
    if (master != nullptr) master[i] = next;
    params[i] = cuda::FromFloat<T>(next);
  }
}

template <typename T>
__global__ void TransposeKernel(const T* src, int64_t rows, int64_t cols, T* dst,
                                bool accumulate) {
  const int64_t count = rows * cols;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = k / cols, j = k % cols;  // src[i][j] -> dst[j][i]
    const float add = cuda::ToFloat(src[k]);
    T& out = dst[j * rows + i];
    out = cuda::FromFloat<T>(accumulate ? cuda::ToFloat(out) + add : add);
  }
}

}  // namespace

template <typename T>
Status TransposeInto(cudaStream_t stream, const T* src, int64_t rows, int64_t cols, T* dst,
                     bool accumulate) {
  if (rows <= 0 || cols <= 0) return Status::Ok();
  TransposeKernel<T><<<cuda::Blocks(rows * cols), cuda::kThreads, 0, stream>>>(src, rows, cols,
                                                                             dst, accumulate);
  PP_CUDA_CHECK_LAUNCH("TransposeKernel");
  return Status::Ok();
}

template Status TransposeInto<float>(cudaStream_t, const float*, int64_t, int64_t, float*, bool);
template Status TransposeInto<__nv_bfloat16>(cudaStream_t, const __nv_bfloat16*, int64_t, int64_t,
                                             __nv_bfloat16*, bool);

template <typename T>
Status AdamWUpdate(cudaStream_t stream, const AdamWConfig& config, int64_t count, T* params,
                   const T* grads, float* master, float* m, float* v) {
  if (count <= 0) return Status::Ok();
  const float c1 = 1.0f - powf(config.beta1, static_cast<float>(config.step));
  const float c2 = 1.0f - powf(config.beta2, static_cast<float>(config.step));
  AdamWKernel<T><<<cuda::Blocks(count), cuda::kThreads, 0, stream>>>(config, c1, c2, count, params,
                                                                    grads, master, m, v);
  PP_CUDA_CHECK_LAUNCH("AdamWKernel");
  return Status::Ok();
}

template Status AdamWUpdate<float>(cudaStream_t, const AdamWConfig&, int64_t, float*,
                                   const float*, float*, float*, float*);
template Status AdamWUpdate<__nv_bfloat16>(cudaStream_t, const AdamWConfig&, int64_t,
                                           __nv_bfloat16*, const __nv_bfloat16*, float*, float*,
                                           float*);

}  // namespace pp
