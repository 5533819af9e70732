// CUDA layers: the GPU twin of CpuLayer (layers/layer.h) for every op, with the SAME buffer
// layouts (params, saved, pending, y, dx, dparams), so a CUDA result compares element for
// element with CpuLayer<float>. T is the storage type, float or __nv_bfloat16; every sum and
// every matrix product accumulates in fp32.
//
// All pointers passed to Forward / Backward* are device pointers, caller-owned, aligned to 256
// bytes, sized by the counts the layer reports (workspace_count() is in T elements, like the
// rest). Work is enqueued on ctx.stream() only; the calls return once it is enqueued, without
// synchronising, and never allocate. BackwardWeight accumulates into dparams; BackwardInput
// overwrites dx. Errors (a failed launch or library call) come back as a Status naming
// file:line and the library's message; nothing aborts.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "core/status.h"
#include "layers/layer_shape.h"

namespace pp {

struct Layer;       // core/model.h
struct ModelInput;  // core/model.h
class GemmPlanCache;  // layers/cuda_gemm.h

// Per-micro-batch inputs that are not activations, in device memory.
struct CudaMicroBatch {
  const int32_t* tokens = nullptr;  // rows token ids (token models)
  const int32_t* labels = nullptr;  // rows class ids (cross_entropy)
  const void* targets = nullptr;    // rows x width values of type T (mse)
};

// What the layers run on: one device, one stream, the cuBLAS / cuBLASLt handles bound to that
// stream, and the cuBLASLt workspace. Owned by the caller; it must outlive every layer call
// that uses it. Not thread-safe: one thread enqueues at a time.
class CudaContext {
 public:
  static constexpr size_t kDefaultGemmWorkspaceBytes = size_t{32} << 20;

  // Selects `device` on the calling thread and creates the stream, handles and workspace.
  static Result<std::unique_ptr<CudaContext>> Create(
      int device, size_t gemm_workspace_bytes = kDefaultGemmWorkspaceBytes);
  // The same on a stream the caller owns and destroys after this context (a green-context
  // share's stream, layers/green_context.h). Does not select a device: the caller has made
  // the stream's context current on the calling thread.
  static Result<std::unique_ptr<CudaContext>> CreateOnStream(
      int device, cudaStream_t stream, size_t gemm_workspace_bytes = kDefaultGemmWorkspaceBytes);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t lt() const { return lt_; }
  cublasHandle_t blas() const { return blas_; }
  void* gemm_workspace() const { return gemm_workspace_; }
  size_t gemm_workspace_bytes() const { return gemm_workspace_bytes_; }
  // Matmul plans chosen so far, keyed by shape (layers/cuda_gemm.h).
  GemmPlanCache& gemm_plans() { return *plans_; }
  // Waits for everything enqueued on the stream.
  Status Synchronize();

 private:
  CudaContext() = default;
  Status Init(size_t gemm_workspace_bytes);  // handles and workspace on stream_
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = true;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* gemm_workspace_ = nullptr;
  size_t gemm_workspace_bytes_ = 0;
  std::unique_ptr<GemmPlanCache> plans_;
};

// Counts and shapes as the CPU reference's (layers/layer_shape.h); a loss's mean is computed
// in fp32.
template <typename T>
class CudaLayer : public LayerShape {
 public:
  // Writes a layer's initial parameter values (fp32, host) for a seed.
  using HostInit = std::function<void(float* params, uint64_t seed)>;

  // Copies param_count() host values (fp32, in the layer's param layout) into params,
  // rounding to T. Synchronous; allocates a host staging buffer.
  Status Init(CudaContext& ctx, T* params, const float* host_values) const;
  // The CPU reference's initial values for `seed` (identical to CpuLayer<float>::Init).
  Status Init(CudaContext& ctx, T* params, uint64_t seed) const;

  virtual Status Forward(CudaContext& ctx, const T* params, const T* x,
                         const CudaMicroBatch& batch, T* y, T* saved, T* work) const = 0;
  // dx is nullptr for a layer without an input gradient (the embedding).
  virtual Status BackwardInput(CudaContext& ctx, const T* params, const T* dy, const T* saved,
                               const CudaMicroBatch& batch, T* dx, T* pending,
                               T* work) const = 0;
  virtual Status BackwardWeight(CudaContext& ctx, const T* params, const T* dy, const T* saved,
                                const T* pending, const CudaMicroBatch& batch, T* dparams,
                                T* work) const = 0;

  // Set once by the factory (MakeCudaLayer).
  void set_host_init(HostInit init) { host_init_ = std::move(init); }

 private:
  HostInit host_init_;
};

// The CUDA layer for `layer` (an expanded model layer) at `input`'s shapes. T is float or
// __nv_bfloat16. Needs no GPU: nothing touches the device until a call.
template <typename T>
Result<std::unique_ptr<CudaLayer<T>>> MakeCudaLayer(const Layer& layer, const ModelInput& input);

}  // namespace pp
