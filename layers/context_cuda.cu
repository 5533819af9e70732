// CudaContext: one device's stream, cuBLAS / cuBLASLt handles and GEMM workspace
// (cuda_layer.h). cuBLAS gets the same workspace, so it allocates nothing of its own.
#include "layers/cuda_check.h"
#include "layers/cuda_gemm.h"
#include "layers/cuda_layer.h"

namespace pp {

Result<std::unique_ptr<CudaContext>> CudaContext::Create(int device, size_t gemm_workspace_bytes) {
  std::unique_ptr<CudaContext> ctx(new CudaContext());
  ctx->device_ = device;
  ctx->plans_ = std::make_unique<GemmPlanCache>();
  PP_CUDA_CHECK(cudaSetDevice(device));
  PP_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream_, cudaStreamNonBlocking));
  PP_RETURN_IF_ERROR(ctx->Init(gemm_workspace_bytes));
  return Result<std::unique_ptr<CudaContext>>(std::move(ctx));
}

Result<std::unique_ptr<CudaContext>> CudaContext::CreateOnStream(int device, cudaStream_t stream,
                                                                 size_t gemm_workspace_bytes) {
  std::unique_ptr<CudaContext> ctx(new CudaContext());
  ctx->device_ = device;
  ctx->plans_ = std::make_unique<GemmPlanCache>();
  ctx->stream_ = stream;
  ctx->owns_stream_ = false;
  PP_RETURN_IF_ERROR(ctx->Init(gemm_workspace_bytes));
  return Result<std::unique_ptr<CudaContext>>(std::move(ctx));
}

Status CudaContext::Init(size_t gemm_workspace_bytes) {
  CudaContext* ctx = this;
  PP_CUBLAS_CHECK(cublasLtCreate(&ctx->lt_));
  PP_CUBLAS_CHECK(cublasCreate(&ctx->blas_));
  PP_CUBLAS_CHECK(cublasSetStream(ctx->blas_, ctx->stream_));
  // Pure fp32 for CUBLAS_COMPUTE_32F: no TF32 tensor-op shortcut.
  PP_CUBLAS_CHECK(cublasSetMathMode(ctx->blas_, CUBLAS_DEFAULT_MATH));
  if (gemm_workspace_bytes > 0) {
    PP_CUDA_CHECK(cudaMalloc(&ctx->gemm_workspace_, gemm_workspace_bytes));
    ctx->gemm_workspace_bytes_ = gemm_workspace_bytes;
    PP_CUBLAS_CHECK(cublasSetWorkspace(ctx->blas_, ctx->gemm_workspace_, gemm_workspace_bytes));
  }
  return Status::Ok();
}

CudaContext::~CudaContext() {
  // Errors while tearing down are ignored: there is nobody left to tell.
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  plans_.reset();
  if (blas_ != nullptr) (void)cublasDestroy(blas_);
  if (lt_ != nullptr) (void)cublasLtDestroy(lt_);
  if (gemm_workspace_ != nullptr) (void)cudaFree(gemm_workspace_);
  if (stream_ != nullptr && owns_stream_) (void)cudaStreamDestroy(stream_);
}

Status CudaContext::Synchronize() {
  PP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

}  // namespace pp
