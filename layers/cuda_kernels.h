// Launchers of the CUDA kernels shared by several layers (layers/*_cuda.cu). T is float or
// __nv_bfloat16; arithmetic is fp32. Every launcher enqueues on ctx.stream(), opens an NVTX
// range, checks the launch and returns a Status; pointers are device pointers. Shapes are
// row-major; `rows x width` buffers are contiguous.
#pragma once

#include <nvtx3/nvToolsExt.h>

#include <cstdint>

#include "layers/cuda_layer.h"

namespace pp {

// An NVTX range for the lifetime of the object (one per launcher call).
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

// T elements that hold `floats` fp32 values (for fp32 scratch carved out of a T workspace).
template <typename T>
constexpr int64_t FloatsAsT(int64_t floats) {
  return (floats * 4 + static_cast<int64_t>(sizeof(T)) - 1) / static_cast<int64_t>(sizeof(T));
}
// Rounds an element offset up so that the pointer stays 256-byte aligned.
template <typename T>
constexpr int64_t AlignCount(int64_t count) {
  constexpr int64_t kPer = 256 / static_cast<int64_t>(sizeof(T));
  return (count + kPer - 1) / kPer * kPer;
}

// --- common_cuda.cu ---
// x[i] = value for count elements.
template <typename T>
Status Fill(CudaContext& ctx, T* x, int64_t count, float value);
// x[i] = a standard normal value of (seed, i) (Box-Muller on a hash of the two), for inputs
// that must be random but not reproduce the reference's host generator.
template <typename T>
Status FillNormal(CudaContext& ctx, T* x, int64_t count, uint64_t seed);
// d[r, j] += bias[j] for r < rows, j < cols; row stride ld.
template <typename T>
Status AddBias(CudaContext& ctx, T* d, const T* bias, int64_t rows, int64_t cols, int64_t ld);
// out[j] += sum over rows of dy[r, j] (fp32 sums). partial: ColumnSumPartials(rows, cols) floats.
template <typename T>
Status ColumnSumAccumulate(CudaContext& ctx, const T* dy, int64_t rows, int64_t cols, T* out,
                           float* partial);
// Floats of scratch the column reductions need (two sums per column per row chunk).
int64_t ColumnSumPartials(int64_t rows, int64_t cols);

// --- linear_cuda.cu --- Row-major linear algebra of a layer with weight W (in x out).
// y = x W (+ b) (+ residual; residual may be nullptr and may not alias y).
template <typename T>
Status LinearForward(CudaContext& ctx, const T* x, const T* w, const T* b, const T* residual,
                     int64_t rows, int64_t in, int64_t out, T* y);
// dx = dy W^T, or dx += dy W^T when accumulate.
template <typename T>
Status LinearBackwardInput(CudaContext& ctx, const T* dy, const T* w, int64_t rows, int64_t in,
                           int64_t out, T* dx, bool accumulate = false);
// dW += x^T dy; db += column sums of dy (db may be nullptr; partial:
// ColumnSumPartials(rows, out) floats).
template <typename T>
Status LinearBackwardWeight(CudaContext& ctx, const T* x, const T* dy, int64_t rows, int64_t in,
                            int64_t out, T* dw, T* db, float* partial);

// --- norm_cuda.cu --- Layer norm / RMS norm over the last dimension, eps 1e-5, fp32
// statistics. mean may be nullptr for RMS norm; beta is nullptr for RMS norm.
template <typename T>
Status NormForward(CudaContext& ctx, bool rms, const T* x, const T* gamma, const T* beta,
                   int64_t rows, int64_t h, T* y, T* mean, T* rstd);
// dx = norm backward (+ residual when residual != nullptr; residual may alias nothing else).
template <typename T>
Status NormBackwardInput(CudaContext& ctx, bool rms, const T* x, const T* gamma, const T* mean,
                         const T* rstd, const T* dy, const T* residual, int64_t rows, int64_t h,
                         T* dx);
// dgamma += sum dy * xhat; dbeta += sum dy (layer norm). partial: ColumnSumPartials(rows, h).
template <typename T>
Status NormBackwardWeight(CudaContext& ctx, bool rms, const T* x, const T* mean, const T* rstd,
                          const T* dy, int64_t rows, int64_t h, T* dgamma, T* dbeta,
                          float* partial);

// --- activation_cuda.cu --- Elementwise over count values: ReLU, GELU (the tanh
// approximation), squared ReLU (max(x, 0)^2), SiLU (x sigmoid(x)).
enum class Activation { kRelu, kGelu, kRelu2, kSilu };
template <typename T>
Status ActivationForward(CudaContext& ctx, Activation act, const T* x, int64_t count, T* y);
// dx = dy * act'(x).
template <typename T>
Status ActivationBackward(CudaContext& ctx, Activation act, const T* x, const T* dy, int64_t count,
                          T* dx);
// A gated MLP's product: out = act(gate) * up (swiglu: silu; geglu: gelu).
template <typename T>
Status GatedForward(CudaContext& ctx, Activation act, const T* gate, const T* up, int64_t count,
                    T* out);
// dgate = dout * up * act'(gate); dup = dout * act(gate).
template <typename T>
Status GatedBackward(CudaContext& ctx, Activation act, const T* gate, const T* up, const T* dout,
                     int64_t count, T* dgate, T* dup);

// --- attention_cuda.cu --- Multi-head attention as in attention.h: q and out are rows x h,
// k and v rows x hk (hk = kv_heads x d; grouped-query attention when kv_heads < heads: query
// head a reads key/value head a / (heads / kv_heads)), rows = batch * seq (batch-major), head
// a in columns [a*d, (a+1)*d); probs holds batch x heads x seq x seq values. Products are
// strided-batched over heads, one call per batch entry (per key/value head under grouped-query
// attention, the shared head at stride 0).
#ifdef __CUDACC__
#define PP_HOST_DEVICE __host__ __device__
#else
#define PP_HOST_DEVICE
#endif
struct CudaAttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  bool causal = false;
  int64_t kv_heads = 0;  // 0: heads
  PP_HOST_DEVICE int64_t hidden() const { return heads * head_dim; }
  PP_HOST_DEVICE int64_t kv() const { return kv_heads > 0 ? kv_heads : heads; }
  PP_HOST_DEVICE int64_t kv_hidden() const { return kv() * head_dim; }
  PP_HOST_DEVICE int64_t qkv_width() const { return hidden() + 2 * kv_hidden(); }  // h + 2 hk
  PP_HOST_DEVICE int64_t group() const { return heads / kv(); }
  PP_HOST_DEVICE int64_t rows() const { return batch * seq; }
  // fp32 scratch of one batch entry's scores (heads x seq x seq).
  PP_HOST_DEVICE int64_t scores() const { return heads * seq * seq; }
};
#undef PP_HOST_DEVICE
// Splits qkv (rows x (h + 2 hk)) into q (rows x h), k and v (rows x hk each), turning q and k
// by the rotary angles (pairs (i, i + d/2), theta = pos / 10000^(2i/d), pos = row mod seq)
// when `rotary`.
template <typename T>
Status SplitQkv(CudaContext& ctx, const CudaAttentionShape& s, bool rotary, const T* qkv, T* q,
                T* k, T* v);
// The reverse for gradients: dqkv = [rot^-1(dq) | rot^-1(dk) | dv], where dk and dv are rows x h,
// one gradient per query head, summed here over the query heads of each key/value head.
template <typename T>
Status MergeQkv(CudaContext& ctx, const CudaAttentionShape& s, bool rotary, const T* dq,
                const T* dk, const T* dv, T* dqkv);
// out = softmax(q k^T / sqrt(d), causal mask) v; keeps probs. scores: s.scores() floats.
template <typename T>
Status AttentionForward(CudaContext& ctx, const CudaAttentionShape& s, const T* q, const T* k,
                        const T* v, T* probs, T* out, float* scores);
// dq, dk, dv (overwritten, rows x h each: dk and dv per query head, which MergeQkv sums over
// each key/value head's queries) from dout. dp: s.scores() floats; ds: s.scores() values of T.
template <typename T>
Status AttentionBackward(CudaContext& ctx, const CudaAttentionShape& s, const T* q, const T* k,
                         const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv,
                         float* dp, T* ds);

}  // namespace pp
