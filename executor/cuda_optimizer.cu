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

}  // namespace

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
