// Explicit multi-head attention and rotary embeddings (CUDA), the math of attention.cc:
// scores = q k^T / sqrt(d) as one fp32 GEMM batched over heads, a causal-masked softmax kernel
// that writes the kept probabilities, then P v. The backward mirrors it: dv = P^T dout,
// dP = dout v^T, dS = P * (dP - rowsum(dP * P)), dq = dS k / sqrt(d), dk = dS^T q / sqrt(d).
// Under grouped-query attention the products that read k or v run once per key/value head,
// batched over its query heads with the shared head at stride 0; dk and dv come out per query
// head and MergeQkv sums each group. Rotary angles are computed in double, as in the reference.
#include <cmath>

#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_gemm.h"
#include "layers/cuda_kernels.h"

namespace pp {
namespace {

using cuda::Blocks;
using cuda::FromFloat;
using cuda::kThreads;
using cuda::ToFloat;

constexpr int kSoftmaxThreads = 256;

// Element `col` of one of q or k in a row at position `pos`, turned by its rotary angle; `sign`
// -1 turns back. load(j) reads element j of that row's q or k (columns of whole heads).
template <typename Load>
__device__ float Rotated(Load load, int64_t col, int64_t d, double pos, double sign) {
  const int64_t half = d / 2, j = col % d, head = col - j;
  if (j >= 2 * half) return load(col);  // the unpaired last element of an odd d
  const int64_t i = j < half ? j : j - half;
  const double theta = pos * pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(d));
  double s, c;
  sincos(theta, &s, &c);
  s *= sign;
  const double x0 = load(head + i), x1 = load(head + i + half);
  return static_cast<float>(j < half ? x0 * c - x1 * s : x1 * c + x0 * s);
}

template <typename T>
__global__ void SplitQkvKernel(CudaAttentionShape s, bool rotary, const T* qkv, T* q, T* k, T* v) {
  const int64_t h = s.hidden(), hk = s.kv_hidden(), w = s.qkv_width(), count = s.rows() * w;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / w, c = i % w;
    const int part = c < h ? 0 : c < h + hk ? 1 : 2;
    const int64_t start = part == 0 ? 0 : part == 1 ? h : h + hk, col = c - start;
    const T* src = qkv + r * w + start;
    T* dst = part == 0 ? q + r * h : (part == 1 ? k : v) + r * hk;
    const auto load = [src](int64_t j) { return ToFloat(src[j]); };
    dst[col] = rotary && part < 2
                   ? FromFloat<T>(Rotated(load, col, s.head_dim, static_cast<double>(r % s.seq), 1.0))
                   : src[col];
  }
}

// dqkv's row r: rot^-1(dq) | rot^-1(dk summed over each group) | dv summed over each group.
template <typename T>
__global__ void MergeQkvKernel(CudaAttentionShape s, bool rotary, const T* dq, const T* dk,
                               const T* dv, T* dqkv) {
  const int64_t h = s.hidden(), hk = s.kv_hidden(), w = s.qkv_width(), count = s.rows() * w;
  const int64_t d = s.head_dim, group = s.group();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / w, c = i % w;
    const double pos = static_cast<double>(r % s.seq);
    if (c < h) {
      const T* src = dq + r * h;
      const auto load = [src](int64_t j) { return ToFloat(src[j]); };
      dqkv[i] = rotary ? FromFloat<T>(Rotated(load, c, d, pos, -1.0)) : src[c];
      continue;
    }
    const bool is_k = c < h + hk;
    const int64_t col = c - (is_k ? h : h + hk);
    // Column j of a key/value head: the sum of that column over its query heads' gradients.
    const T* src = (is_k ? dk : dv) + r * h;
    const auto load = [src, d, group](int64_t j) {
      const int64_t base = (j / d) * group * d + j % d;
      float sum = 0.0f;
      for (int64_t t = 0; t < group; ++t) sum += ToFloat(src[base + t * d]);
      return sum;
    };
    dqkv[i] = FromFloat<T>(is_k && rotary ? Rotated(load, col, d, pos, -1.0) : load(col));
  }
}

// One block per score row (heads x seq rows of one batch entry): probs = softmax over the
// visible columns (j <= i when causal), zeros elsewhere.
template <typename T>
__global__ void SoftmaxKernel(const float* scores, int64_t seq, bool causal, T* probs) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, i = row % seq;
  const int64_t visible = causal ? i + 1 : seq;
  const float* in = scores + row * seq;
  T* out = probs + row * seq;
  float top = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) top = fmaxf(top, in[j]);
  top = cuda::BlockMax(top, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(in[j] - top);
  const float inv = 1.0f / cuda::BlockSum(sum, scratch);
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    out[j] = FromFloat<T>(j < visible ? expf(in[j] - top) * inv : 0.0f);
  }
}

// dS = P * (dP - sum_j dP * P) per row; masked entries have P = 0.
template <typename T>
__global__ void SoftmaxBackwardKernel(const T* probs, const float* dp, int64_t seq, T* ds) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* p = probs + row * seq;
  const float* g = dp + row * seq;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) dot += g[j] * ToFloat(p[j]);
  dot = cuda::BlockSum(dot, scratch);
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    ds[row * seq + j] = FromFloat<T>(ToFloat(p[j]) * (g[j] - dot));
  }
}

// One strided-batched product over the heads of batch entry b. Operands are given as
// (pointer, row stride, stride between heads).
struct Operand {
  const void* ptr;
  int64_t ld, stride;
};

template <typename T>
Status HeadsGemm(CudaContext& ctx, int64_t heads, bool ta, bool tb, int64_t m, int64_t n,
                 int64_t k, float alpha, Operand a, Operand b, void* d, int64_t ldd,
                 int64_t stride_d, bool float_out) {
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = alpha;
  g.a = a.ptr;
  g.lda = a.ld;
  g.stride_a = a.stride;
  g.b = b.ptr;
  g.ldb = b.ld;
  g.stride_b = b.stride;
  g.d = d;
  g.ldd = ldd;
  g.stride_d = stride_d;
  g.batch = static_cast<int>(heads);
  g.in = CudaType<T>();
  g.out = float_out ? CUDA_R_32F : CudaType<T>();
  return Gemm(ctx, g);
}

// The products of one batch entry that read k or v: per key/value head c (one call for all
// heads without grouping), batched over its `per` query heads. Their query-side operands start
// at head c * per; the key/value operand at head c, at stride 0 when shared.
struct KvCalls {
  int64_t calls, per, kv_stride;
};
KvCalls KvCallsOf(const CudaAttentionShape& s) {
  if (s.group() == 1) return {1, s.heads, s.head_dim};
  return {s.kv(), s.group(), 0};
}

}  // namespace

template <typename T>
Status SplitQkv(CudaContext& ctx, const CudaAttentionShape& s, bool rotary, const T* qkv, T* q,
                T* k, T* v) {
  NvtxRange range("Attention.SplitQkv");
  SplitQkvKernel<T><<<Blocks(s.rows() * s.qkv_width()), kThreads, 0,
                      ctx.stream()>>>(
      s, rotary, qkv, q, k, v);
  PP_CUDA_CHECK_LAUNCH("SplitQkvKernel");
  return Status::Ok();
}

template <typename T>
Status MergeQkv(CudaContext& ctx, const CudaAttentionShape& s, bool rotary, const T* dq,
                const T* dk, const T* dv, T* dqkv) {
  NvtxRange range("Attention.MergeQkv");
  MergeQkvKernel<T><<<Blocks(s.rows() * s.qkv_width()), kThreads, 0,
                      ctx.stream()>>>(
      s, rotary, dq, dk, dv, dqkv);
  PP_CUDA_CHECK_LAUNCH("MergeQkvKernel");
  return Status::Ok();
}

template <typename T>
Status AttentionForward(CudaContext& ctx, const CudaAttentionShape& s, const T* q, const T* k,
                        const T* v, T* probs, T* out, float* scores) {
  NvtxRange range("Attention.Forward");
  const int64_t seq = s.seq, d = s.head_dim, h = s.hidden(), hk = s.kv_hidden(), ss = seq * seq;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const KvCalls kv = KvCallsOf(s);
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t at = b * seq * h, at_kv = b * seq * hk;
    T* p = probs + b * s.heads * ss;
    for (int64_t c = 0; c < kv.calls; ++c) {
      const int64_t first = c * kv.per;  // its first query head
      PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, kv.per, false, true, seq, seq, d, scale,
                                      {q + at + first * d, h, d},
                                      {k + at_kv + c * d, hk, kv.kv_stride}, scores + first * ss,
                                      seq, ss, true));
    }
    SoftmaxKernel<T><<<static_cast<unsigned>(s.heads * seq), kSoftmaxThreads, 0, ctx.stream()>>>(
        scores, seq, s.causal, p);
    PP_CUDA_CHECK_LAUNCH("SoftmaxKernel");
    for (int64_t c = 0; c < kv.calls; ++c) {
      const int64_t first = c * kv.per;
      PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, kv.per, false, false, seq, d, seq, 1.0f,
                                      {p + first * ss, seq, ss},
                                      {v + at_kv + c * d, hk, kv.kv_stride}, out + at + first * d,
                                      h, d, false));
    }
  }
  return Status::Ok();
}

template <typename T>
Status AttentionBackward(CudaContext& ctx, const CudaAttentionShape& s, const T* q, const T* k,
                         const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv,
                         float* dp, T* ds) {
  NvtxRange range("Attention.Backward");
  const int64_t seq = s.seq, d = s.head_dim, h = s.hidden(), hk = s.kv_hidden(), ss = seq * seq;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const KvCalls kv = KvCallsOf(s);
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t at = b * seq * h, at_kv = b * seq * hk;
    const T* p = probs + b * s.heads * ss;
    // dV = P^T dO, per query head; dP = dO V^T.
    PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, s.heads, true, false, seq, d, seq, 1.0f, {p, seq, ss},
                                    {dout + at, h, d}, dv + at, h, d, false));
    for (int64_t c = 0; c < kv.calls; ++c) {
      const int64_t first = c * kv.per;
      PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, kv.per, false, true, seq, seq, d, 1.0f,
                                      {dout + at + first * d, h, d},
                                      {v + at_kv + c * d, hk, kv.kv_stride}, dp + first * ss, seq,
                                      ss, true));
    }
    SoftmaxBackwardKernel<T><<<static_cast<unsigned>(s.heads * seq), kSoftmaxThreads, 0,
                               ctx.stream()>>>(p, dp, seq, ds);
    PP_CUDA_CHECK_LAUNCH("SoftmaxBackwardKernel");
    // dQ = dS K / sqrt(d); dK = dS^T Q / sqrt(d), per query head.
    for (int64_t c = 0; c < kv.calls; ++c) {
      const int64_t first = c * kv.per;
      PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, kv.per, false, false, seq, d, seq, scale,
                                      {ds + first * ss, seq, ss},
                                      {k + at_kv + c * d, hk, kv.kv_stride}, dq + at + first * d,
                                      h, d, false));
    }
    PP_RETURN_IF_ERROR(HeadsGemm<T>(ctx, s.heads, true, false, seq, d, seq, scale, {ds, seq, ss},
                                    {q + at, h, d}, dk + at, h, d, false));
  }
  return Status::Ok();
}

#define PP_INSTANTIATE(T)                                                                     \
  template Status SplitQkv<T>(CudaContext&, const CudaAttentionShape&, bool, const T*, T*, T*, \
                              T*);                                                            \
  template Status MergeQkv<T>(CudaContext&, const CudaAttentionShape&, bool, const T*,        \
                              const T*, const T*, T*);                                        \
  template Status AttentionForward<T>(CudaContext&, const CudaAttentionShape&, const T*,      \
                                      const T*, const T*, T*, T*, float*);                    \
  template Status AttentionBackward<T>(CudaContext&, const CudaAttentionShape&, const T*,     \
                                       const T*, const T*, const T*, const T*, T*, T*, T*,    \
                                       float*, T*);
PP_INSTANTIATE(float)
PP_INSTANTIATE(__nv_bfloat16)
#undef PP_INSTANTIATE

}  // namespace pp
