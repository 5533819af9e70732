// AdamW on the GPU for the cuda backend: one launch updates a stage's whole parameter block.
// T is the storage type of parameters and gradients (float or __nv_bfloat16); the master
// weights and both moments are fp32. Enqueued on `stream`, no synchronisation, no allocation.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/status.h"

namespace pp {

struct AdamWConfig {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  int step = 1;  // 1-based, for bias correction
};

// For i < count: m, v from grads[i]; master[i] -= lr (mhat / (sqrt(vhat) + eps) + decay
// master[i]); params[i] = master[i] rounded to T. `master` may be nullptr when T is float:
// then params are the master weights. Same formula as the cpu backend's AdamW.
template <typename T>
Status AdamWUpdate(cudaStream_t stream, const AdamWConfig& config, int64_t count, T* params,
                   const T* grads, float* master, float* m, float* v);

// The tied weights' gradients (executor/tied_weights.h): for i < rows, j < cols,
// dst[j * rows + i] = src[i * cols + j] (+ dst[j * rows + i] with `accumulate`), summed in
// fp32 and rounded to T once, so that both sides of a tie get the same value. Enqueued on
// `stream`.
template <typename T>
Status TransposeInto(cudaStream_t stream, const T* src, int64_t rows, int64_t cols, T* dst,
                     bool accumulate);

}  // namespace pp
