#include "layers/cpu_math.h"

#include <cblas.h>

#include <cmath>
#include <random>

namespace pp::cpu {
namespace {

constexpr double kNormEps = 1e-5;

void Blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void Blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace

int SetBlasThreads(int threads) {
  const int previous = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  return previous;
}

template <typename T>
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= beta;
    }
    return;
  }
  Blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
void FillUniform(T* x, int64_t count, T bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int64_t i = 0; i < count; ++i) x[i] = static_cast<T>(bound * u(rng));
}

template <typename T>
void Fill(T* x, int64_t count, T value) {
  for (int64_t i = 0; i < count; ++i) x[i] = value;
}

template <typename T>
void LinearForward(const T* x, const T* w, const T* b, int64_t rows, int64_t in, int64_t out,
                   T* y) {
  if (b != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < out; ++j) y[r * out + j] = b[j];
    }
  }
  Gemm<T>(false, false, rows, out, in, 1, x, in, w, out, b != nullptr ? 1 : 0, y, out);
}

template <typename T>
void LinearBackwardInput(const T* dy, const T* w, int64_t rows, int64_t in, int64_t out, T* dx) {
  Gemm<T>(false, true, rows, in, out, 1, dy, out, w, out, 0, dx, in);
}

template <typename T>
void LinearBackwardWeight(const T* x, const T* dy, int64_t rows, int64_t in, int64_t out, T* dw,
                          T* db) {
  Gemm<T>(true, false, in, out, rows, 1, x, in, dy, out, 1, dw, out);
  if (db != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < out; ++j) db[j] += dy[r * out + j];
    }
  }
}

template <typename T>
void NormForward(bool rms, const T* x, const T* gamma, const T* beta, int64_t rows, int64_t h,
                 T* y, T* mean, T* rstd) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * h;
    double mu = 0;
    if (!rms) {
      for (int64_t i = 0; i < h; ++i) mu += xr[i];
      mu /= static_cast<double>(h);
    }
    double var = 0;
    for (int64_t i = 0; i < h; ++i) var += (xr[i] - mu) * (xr[i] - mu);
    var /= static_cast<double>(h);
    const double rs = 1.0 / std::sqrt(var + kNormEps);
    mean[r] = static_cast<T>(mu);
    rstd[r] = static_cast<T>(rs);
    for (int64_t i = 0; i < h; ++i) {
      const double xhat = (xr[i] - mu) * rs;
      y[r * h + i] = static_cast<T>(xhat * gamma[i] + (rms ? 0.0 : static_cast<double>(beta[i])));
    }
  }
}

template <typename T>
void NormBackwardInput(bool rms, const T* x, const T* gamma, const T* mean, const T* rstd,
                       const T* dy, int64_t rows, int64_t h, T* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * h;
    const T* dyr = dy + r * h;
    const double mu = rms ? 0.0 : static_cast<double>(mean[r]);
    const double rs = rstd[r];
    // g = dy * gamma; dx = rs * (g - mean(g) - xhat * mean(g * xhat)), the mean(g) term
    // only for layer norm.
    double sum_g = 0, sum_gx = 0;
    for (int64_t i = 0; i < h; ++i) {
      const double g = static_cast<double>(dyr[i]) * gamma[i];
      sum_g += g;
      sum_gx += g * (xr[i] - mu) * rs;
    }
    const double mean_g = rms ? 0.0 : sum_g / static_cast<double>(h);
    const double mean_gx = sum_gx / static_cast<double>(h);
    for (int64_t i = 0; i < h; ++i) {
      const double xhat = (xr[i] - mu) * rs;
      const double g = static_cast<double>(dyr[i]) * gamma[i];
      dx[r * h + i] = static_cast<T>(rs * (g - mean_g - xhat * mean_gx));
    }
  }
}

template <typename T>
void NormBackwardWeight(bool rms, const T* x, const T* mean, const T* rstd, const T* dy,
                        int64_t rows, int64_t h, T* dgamma, T* dbeta) {
  for (int64_t r = 0; r < rows; ++r) {
    const double mu = rms ? 0.0 : static_cast<double>(mean[r]);
    for (int64_t i = 0; i < h; ++i) {
      const double xhat = (x[r * h + i] - mu) * rstd[r];
      dgamma[i] += static_cast<T>(dy[r * h + i] * xhat);
      if (!rms) dbeta[i] += dy[r * h + i];
    }
  }
}

template <typename T>
T Gelu(T x) {
  const double k = std::sqrt(2.0 / M_PI);
  const double v = static_cast<double>(x);
  return static_cast<T>(0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))));
}

template <typename T>
T GeluGrad(T x) {
  const double k = std::sqrt(2.0 / M_PI);
  const double v = static_cast<double>(x);
  const double t = std::tanh(k * (v + 0.044715 * v * v * v));
  return static_cast<T>(0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * v * v));
}

template <typename T>
T Silu(T x) {
  const double v = static_cast<double>(x);
  return static_cast<T>(v / (1.0 + std::exp(-v)));
}

template <typename T>
T SiluGrad(T x) {
  const double v = static_cast<double>(x);
  const double s = 1.0 / (1.0 + std::exp(-v));
  return static_cast<T>(s * (1.0 + v * (1.0 - s)));
}

#define PP_INSTANTIATE(T)                                                                    \
  template void Gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                        int64_t, T, T*, int64_t);                                            \
  template void FillUniform<T>(T*, int64_t, T, uint64_t);                                    \
  template void Fill<T>(T*, int64_t, T);                                                     \
  template void LinearForward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*); \
  template void LinearBackwardInput<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);   \
  template void LinearBackwardWeight<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, T*); \
  template void NormForward<T>(bool, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*); \
  template void NormBackwardInput<T>(bool, const T*, const T*, const T*, const T*, const T*,  \
                                     int64_t, int64_t, T*);                                  \
  template void NormBackwardWeight<T>(bool, const T*, const T*, const T*, const T*, int64_t, \
                                      int64_t, T*, T*);                                      \
  template T Gelu<T>(T);                                                                     \
  template T GeluGrad<T>(T);                                                                 \
  template T Silu<T>(T);                                                                     \
  template T SiluGrad<T>(T);

PP_INSTANTIATE(float)
PP_INSTANTIATE(double)
#undef PP_INSTANTIATE

}  // namespace pp::cpu
