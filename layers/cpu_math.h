// Small numerical kernels shared by the CPU reference layers, in type T (float or double).
// Matrices are row-major; matrix products go to OpenBLAS.
#pragma once

#include <cstdint>

namespace pp::cpu {

// C[m x n] = alpha * op(A) * op(B) + beta * C, op(X) = X or its transpose; lda, ldb, ldc are
// row strides.
template <typename T>
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Sets how many threads OpenBLAS uses for one matrix product and returns the previous count.
// The cpu profiler and the cpu runtime use 1: one thread per pipeline stage.
int SetBlasThreads(int threads);

// x[i] uniform in [-bound, bound] from a seeded generator.
template <typename T>
void FillUniform(T* x, int64_t count, T bound, uint64_t seed);
template <typename T>
void Fill(T* x, int64_t count, T value);

// Linear: y[rows x out] = x[rows x in] W[in x out] (+ b).
template <typename T>
void LinearForward(const T* x, const T* w, const T* b, int64_t rows, int64_t in, int64_t out,
                   T* y);
// dx = dy W^T (overwrites).
template <typename T>
void LinearBackwardInput(const T* dy, const T* w, int64_t rows, int64_t in, int64_t out, T* dx);
// dW += x^T dy, db += column sums of dy (db may be nullptr).
template <typename T>
void LinearBackwardWeight(const T* x, const T* dy, int64_t rows, int64_t in, int64_t out, T* dw,
                          T* db);

// Layer norm over the last dimension (eps 1e-5); rms norm likewise (beta, mean unused).
// mean and rstd (rows each) are kept for the backward.
template <typename T>
void NormForward(bool rms, const T* x, const T* gamma, const T* beta, int64_t rows, int64_t h,
                 T* y, T* mean, T* rstd);
template <typename T>
void NormBackwardInput(bool rms, const T* x, const T* gamma, const T* mean, const T* rstd,
                       const T* dy, int64_t rows, int64_t h, T* dx);
// dgamma += sum dy * xhat; dbeta += sum dy (dbeta ignored for rms).
template <typename T>
void NormBackwardWeight(bool rms, const T* x, const T* mean, const T* rstd, const T* dy,
                        int64_t rows, int64_t h, T* dgamma, T* dbeta);

// GELU (tanh approximation) and squared ReLU (max(x, 0)^2), elementwise; backward from the
// saved input.
template <typename T>
T Gelu(T x);
template <typename T>
T GeluGrad(T x);
template <typename T>
T Relu2(T x) {
  return x > T(0) ? x * x : T(0);
}
template <typename T>
T Relu2Grad(T x) {
  return x > T(0) ? T(2) * x : T(0);
}
template <typename T>
T Silu(T x);
template <typename T>
T SiluGrad(T x);

}  // namespace pp::cpu
