#include "layers/attention.h"

#include <algorithm>
#include <cmath>

#include "layers/cpu_math.h"

namespace pp::cpu {

template <typename T>
void Rotary(const AttentionShape& sh, bool inverse, T* x) {
  const int64_t d = sh.head_dim, half = d / 2, h = sh.hidden();
  for (int64_t r = 0; r < sh.rows(); ++r) {
    const double pos = static_cast<double>(r % sh.seq);
    for (int64_t a = 0; a < sh.heads; ++a) {
      T* v = x + r * h + a * d;
      for (int64_t i = 0; i < half; ++i) {
        const double theta = pos * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(d));
        const double c = std::cos(theta), s = inverse ? -std::sin(theta) : std::sin(theta);
        const double x0 = v[i], x1 = v[i + half];
        v[i] = static_cast<T>(x0 * c - x1 * s);
        v[i + half] = static_cast<T>(x1 * c + x0 * s);
      }
    }
  }
}

template <typename T>
void AttentionForward(const AttentionShape& sh, const T* q, const T* k, const T* v, T* probs,
                      T* out) {
  const int64_t s = sh.seq, d = sh.head_dim, h = sh.hidden(), hk = sh.kv_hidden();
  const int64_t group = sh.heads / sh.kv();
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t a = 0; a < sh.heads; ++a) {
      const int64_t offset = b * s * h + a * d;
      const int64_t kv_offset = b * s * hk + (a / group) * d;
      T* p = probs + (b * sh.heads + a) * s * s;
      Gemm<T>(false, true, s, s, d, scale, q + offset, h, k + kv_offset, hk, 0, p, s);
      for (int64_t i = 0; i < s; ++i) {
        T* row = p + i * s;
        const int64_t visible = sh.causal ? i + 1 : s;
        const double top = *std::max_element(row, row + visible);
        double sum = 0;
        for (int64_t j = 0; j < visible; ++j) sum += std::exp(row[j] - top);
        for (int64_t j = 0; j < visible; ++j) row[j] = static_cast<T>(std::exp(row[j] - top) / sum);
        for (int64_t j = visible; j < s; ++j) row[j] = 0;
      }
      Gemm<T>(false, false, s, d, s, 1, p, s, v + kv_offset, hk, 0, out + offset, h);
    }
  }
}

template <typename T>
void AttentionBackward(const AttentionShape& sh, const T* q, const T* k, const T* v,
                       const T* probs, const T* dout, T* dq, T* dk, T* dv, T* work) {
  const int64_t s = sh.seq, d = sh.head_dim, h = sh.hidden(), hk = sh.kv_hidden();
  const int64_t group = sh.heads / sh.kv();
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  T* ds = work;  // s x s: dP, then dS in place
  std::fill(dk, dk + sh.rows() * hk, T(0));
  std::fill(dv, dv + sh.rows() * hk, T(0));
  for (int64_t b = 0; b < sh.batch; ++b) {
    for (int64_t a = 0; a < sh.heads; ++a) {
      const int64_t offset = b * s * h + a * d;
      const int64_t kv_offset = b * s * hk + (a / group) * d;
      const T* p = probs + (b * sh.heads + a) * s * s;
      // dV += P^T dO; dP = dO V^T.
      Gemm<T>(true, false, s, d, s, 1, p, s, dout + offset, h, 1, dv + kv_offset, hk);
      Gemm<T>(false, true, s, s, d, 1, dout + offset, h, v + kv_offset, hk, 0, ds, s);
      // dS = P * (dP - rowsum(dP * P)); masked entries have P = 0.
      for (int64_t i = 0; i < s; ++i) {
        double dot = 0;
        for (int64_t j = 0; j < s; ++j) dot += static_cast<double>(ds[i * s + j]) * p[i * s + j];
        for (int64_t j = 0; j < s; ++j) {
          ds[i * s + j] = static_cast<T>(p[i * s + j] * (ds[i * s + j] - dot));
        }
      }
      // dQ = dS K / sqrt(d); dK += dS^T Q / sqrt(d).
      Gemm<T>(false, false, s, d, s, scale, ds, s, k + kv_offset, hk, 0, dq + offset, h);
      Gemm<T>(true, false, s, d, s, scale, ds, s, q + offset, h, 1, dk + kv_offset, hk);
    }
  }
}

#define PP_INSTANTIATE(T)                                                                   \
  template void Rotary<T>(const AttentionShape&, bool, T*);                                 \
  template void AttentionForward<T>(const AttentionShape&, const T*, const T*, const T*, T*, \
                                    T*);                                                    \
  template void AttentionBackward<T>(const AttentionShape&, const T*, const T*, const T*,   \
                                     const T*, const T*, T*, T*, T*, T*);
PP_INSTANTIATE(float)
PP_INSTANTIATE(double)
#undef PP_INSTANTIATE

}  // namespace pp::cpu
