// Row-major matrix products on the GPU through cuBLASLt, with fp32 accumulation:
//   D[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C (+ bias, one value per column),
// optionally strided-batched. A and B are fp32 or bf16 (`in`), C and D fp32 or bf16 (`out`).
// fp32 inputs use CUBLAS_COMPUTE_32F, never TF32. Plans (descriptors and the algorithm the
// heuristic picked) are cached in the context per shape, so only the first call of a shape
// queries the heuristic; where cuBLASLt offers no algorithm, cublasGemmStridedBatchedEx runs
// instead. Enqueued on ctx.stream().
#pragma once

#include <library_types.h>

#include <cstdint>
#include <map>
#include <vector>

#include "layers/cuda_layer.h"

namespace pp {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1, beta = 0;
  // Row strides (ld) and, for batch > 1, element strides between batch entries.
  const void* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  const void* c = nullptr;  // nullptr: C is D (read only when beta != 0)
  int64_t ldc = 0;          // used when c is given (batch 1 only)
  void* d = nullptr;
  int64_t ldd = 0, stride_d = 0;
  int batch = 1;
  const void* bias = nullptr;  // n values of type `out` (batch 1 only)
  cudaDataType_t in = CUDA_R_32F;
  cudaDataType_t out = CUDA_R_32F;
};

Status Gemm(CudaContext& ctx, const GemmArgs& g);

// The cuBLAS type of T.
template <typename T>
constexpr cudaDataType_t CudaType() {
  return sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_16BF;
}

// Plans per shape; owned by a CudaContext, which destroys them.
class GemmPlanCache {
 public:
  struct Plan;
  GemmPlanCache() = default;
  ~GemmPlanCache();
  GemmPlanCache(const GemmPlanCache&) = delete;
  GemmPlanCache& operator=(const GemmPlanCache&) = delete;

  using Key = std::vector<int64_t>;
  Plan* Find(const Key& key);
  Plan* Insert(const Key& key, Plan* plan);  // takes ownership

 private:
  std::map<Key, Plan*> plans_;
};

}  // namespace pp
