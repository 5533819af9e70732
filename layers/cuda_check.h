// Checks for every CUDA runtime and cuBLAS call: on failure the enclosing function returns a
// Status naming file:line, the call and the library's own error string, e.g.
//   "layers/gemm_cuda.cu:88: cublasLtMatmul(...): CUBLAS_STATUS_NOT_SUPPORTED (... )".
// Use them inside functions that return Status or Result<T>. Nothing here aborts: an
// out-of-memory comes back as a Status for which IsOutOfMemory() is true.
#pragma once

#include <cublas_api.h>
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "core/status.h"

namespace pp::cuda {

// "file:line: call: what".
inline Status CallError(const char* file, int line, const char* call, const std::string& what) {
  return Status::Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + what);
}

inline Status CudaError(cudaError_t err, const char* file, int line, const char* call) {
  return CallError(file, line, call,
                   std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")");
}

inline Status CublasError(cublasStatus_t st, const char* file, int line, const char* call) {
  return CallError(file, line, call,
                   std::string(cublasGetStatusName(st)) + " (" + cublasGetStatusString(st) + ")");
}

// True for a Status made from cudaErrorMemoryAllocation or CUBLAS_STATUS_ALLOC_FAILED.
inline bool IsOutOfMemory(const Status& s) {
  const std::string& m = s.message();
  return m.find("cudaErrorMemoryAllocation") != std::string::npos ||
         m.find("CUBLAS_STATUS_ALLOC_FAILED") != std::string::npos;
}

}  // namespace pp::cuda

// Returns a Status from the enclosing function when a CUDA runtime call fails.
#define PP_CUDA_CHECK(call)                                                          \
  do {                                                                               \
    const cudaError_t pp_cuda_err_ = (call);                                         \
    if (pp_cuda_err_ != cudaSuccess) {                                               \
      return ::pp::cuda::CudaError(pp_cuda_err_, __FILE__, __LINE__, #call);         \
    }                                                                                \
  } while (0)

// After a kernel launch: returns the launch error (bad configuration, no device, ...).
#define PP_CUDA_CHECK_LAUNCH(name)                                                   \
  do {                                                                               \
    const cudaError_t pp_cuda_err_ = cudaGetLastError();                             \
    if (pp_cuda_err_ != cudaSuccess) {                                               \
      return ::pp::cuda::CudaError(pp_cuda_err_, __FILE__, __LINE__, "launch " name); \
    }                                                                                \
  } while (0)

// Returns a Status from the enclosing function when a cuBLAS or cuBLASLt call fails.
#define PP_CUBLAS_CHECK(call)                                                        \
  do {                                                                               \
    const cublasStatus_t pp_cublas_st_ = (call);                                     \
    if (pp_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                                    \
      return ::pp::cuda::CublasError(pp_cublas_st_, __FILE__, __LINE__, #call);      \
    }                                                                                \
  } while (0)
