// Transformer block (pre-norm), CUDA; the math and the params / saved / pending layouts of
// transformer_block.cc:
//   h1 = x + Wo · attention(rotary(norm1(x) · Wqkv))
//   y  = h1 + mlp(norm2(h1)),  mlp = W2 · gelu(W1 ·)  or  Wd · (silu(Wg ·) * (Wu ·))
// The residual adds ride in the output projections' GEMMs (C = the residual, beta 1) and in
// the norms' input-gradient kernels. workspace (T elements, regions 256-byte aligned): the
// qkv product / its gradient (3 n h), the MLP's middle gradient (n f), one n x h temporary,
// fp32 attention scores (heads s s), dS (heads s s) and fp32 column-sum partials.
#include <algorithm>

#include "layers/cuda_check.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

constexpr int64_t kNone = -1;

template <typename T>
class BlockCuda final : public CudaLayer<T> {
 public:
  explicit BlockCuda(const CudaBlockSpec& s)
      : h_(s.hidden), f_(s.ffn), rms_(s.rms), swiglu_(s.swiglu), bias_(s.bias),
        rotary_(s.rotary) {
    this->SetShape(s.batch * s.seq, s.hidden, s.hidden);
    att_.batch = s.batch;
    att_.seq = s.seq;
    att_.heads = s.heads;
    att_.head_dim = s.hidden / s.heads;
    att_.causal = s.causal;
    Layout();
  }

  int64_t param_count() const override { return params_size_; }
  int64_t saved_count() const override { return saved_size_; }
  int64_t pending_count() const override { return pending_size_; }
  int64_t workspace_count() const override { return work_size_; }

  Status Forward(CudaContext& ctx, const T* P, const T* x, const CudaMicroBatch&, T* y, T* S,
                 T* W) const override {
    NvtxRange range("TransformerBlock.Forward");
    const int64_t n = this->rows(), h = h_, f = f_;
    T* qkv = W + w_.qkv;
    PP_CUDA_CHECK(cudaMemcpyAsync(S + s_.x, x, sizeof(T) * n * h, cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    PP_RETURN_IF_ERROR(NormForward<T>(ctx, rms_, x, P + p_.g1, At(P, p_.b1), n, h, S + s_.ln1,
                                      At(S, s_.mean1), S + s_.rstd1));
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + s_.ln1, P + p_.wqkv, At(P, p_.bqkv), nullptr, n,
                                        h, 3 * h, qkv));
    PP_RETURN_IF_ERROR(SplitQkv<T>(ctx, att_, rotary_, qkv, S + s_.q, S + s_.k, S + s_.v));
    PP_RETURN_IF_ERROR(AttentionForward<T>(ctx, att_, S + s_.q, S + s_.k, S + s_.v,
                                           S + s_.probs, S + s_.attn, Scores(W)));
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + s_.attn, P + p_.wo, At(P, p_.bo), x, n, h, h,
                                        S + s_.h1));
    PP_RETURN_IF_ERROR(NormForward<T>(ctx, rms_, S + s_.h1, P + p_.g2, At(P, p_.b2), n, h,
                                      S + s_.ln2, At(S, s_.mean2), S + s_.rstd2));
    const T* mlp_in;
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + s_.ln2, P + p_.w1, At(P, p_.b1f), nullptr, n, h,
                                        f, S + s_.m1));
    if (swiglu_) {
      PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + s_.ln2, P + p_.wu, At(P, p_.buf), nullptr, n,
                                          h, f, S + s_.m2));
      PP_RETURN_IF_ERROR(SwigluForward<T>(ctx, S + s_.m1, S + s_.m2, n * f, S + s_.m3));
      mlp_in = S + s_.m3;
    } else {
      PP_RETURN_IF_ERROR(ActivationForward<T>(ctx, true, S + s_.m1, n * f, S + s_.m2));
      mlp_in = S + s_.m2;
    }
    return LinearForward<T>(ctx, mlp_in, P + p_.w2, At(P, p_.b2f), S + s_.h1, n, f, h, y);
  }

  Status BackwardInput(CudaContext& ctx, const T* P, const T* dy, const T* S,
                       const CudaMicroBatch&, T* dx, T* D, T* W) const override {
    NvtxRange range("TransformerBlock.BackwardInput");
    const int64_t n = this->rows(), h = h_, f = f_;
    T* dmid = W + w_.f;    // n x f
    T* dt = W + w_.h;      // n x h
    T* dqkv = W + w_.qkv;  // dq, dk, dv: n x h each
    PP_CUDA_CHECK(cudaMemcpyAsync(D + d_.dy, dy, sizeof(T) * n * h, cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    // MLP.
    PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, dy, P + p_.w2, n, f, h, dmid));
    if (swiglu_) {
      PP_RETURN_IF_ERROR(
          SwigluBackward<T>(ctx, S + s_.m1, S + s_.m2, dmid, n * f, D + d_.m1, D + d_.m2));
      PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + d_.m1, P + p_.w1, n, h, f, D + d_.ln2));
      PP_RETURN_IF_ERROR(
          LinearBackwardInput<T>(ctx, D + d_.m2, P + p_.wu, n, h, f, D + d_.ln2, true));
    } else {
      PP_RETURN_IF_ERROR(ActivationBackward<T>(ctx, true, S + s_.m1, dmid, n * f, D + d_.m1));
      PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + d_.m1, P + p_.w1, n, h, f, D + d_.ln2));
    }
    // d h1 = dy + norm2's input gradient.
    PP_RETURN_IF_ERROR(NormBackwardInput<T>(ctx, rms_, S + s_.h1, P + p_.g2, At(S, s_.mean2),
                                            S + s_.rstd2, D + d_.ln2, dy, n, h, D + d_.h1));
    // Attention.
    PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + d_.h1, P + p_.wo, n, h, h, dt));
    T* dq = dqkv;
    T* dk = dqkv + n * h;
    T* dv = dqkv + 2 * n * h;
    PP_RETURN_IF_ERROR(AttentionBackward<T>(ctx, att_, S + s_.q, S + s_.k, S + s_.v,
                                            S + s_.probs, dt, dq, dk, dv, Scores(W), W + w_.ds));
    PP_RETURN_IF_ERROR(MergeQkv<T>(ctx, att_, rotary_, dq, dk, dv, D + d_.qkv));
    PP_RETURN_IF_ERROR(
        LinearBackwardInput<T>(ctx, D + d_.qkv, P + p_.wqkv, n, h, 3 * h, D + d_.ln1));
    // dx = d h1 + norm1's input gradient.
    return NormBackwardInput<T>(ctx, rms_, S + s_.x, P + p_.g1, At(S, s_.mean1), S + s_.rstd1,
                                D + d_.ln1, D + d_.h1, n, h, dx);
  }

  Status BackwardWeight(CudaContext& ctx, const T*, const T*, const T* S, const T* D,
                        const CudaMicroBatch&, T* G, T* W) const override {
    NvtxRange range("TransformerBlock.BackwardWeight");
    const int64_t n = this->rows(), h = h_, f = f_;
    float* partial = reinterpret_cast<float*>(W + w_.partial);
    PP_RETURN_IF_ERROR(NormBackwardWeight<T>(ctx, rms_, S + s_.x, At(S, s_.mean1), S + s_.rstd1,
                                             D + d_.ln1, n, h, G + p_.g1, At(G, p_.b1), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + s_.ln1, D + d_.qkv, n, h, 3 * h,
                                               G + p_.wqkv, At(G, p_.bqkv), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + s_.attn, D + d_.h1, n, h, h, G + p_.wo,
                                               At(G, p_.bo), partial));
    PP_RETURN_IF_ERROR(NormBackwardWeight<T>(ctx, rms_, S + s_.h1, At(S, s_.mean2), S + s_.rstd2,
                                             D + d_.ln2, n, h, G + p_.g2, At(G, p_.b2), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + s_.ln2, D + d_.m1, n, h, f, G + p_.w1,
                                               At(G, p_.b1f), partial));
    if (swiglu_) {
      PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + s_.ln2, D + d_.m2, n, h, f, G + p_.wu,
                                                 At(G, p_.buf), partial));
    }
    const T* mlp_in = S + (swiglu_ ? s_.m3 : s_.m2);
    return LinearBackwardWeight<T>(ctx, mlp_in, D + d_.dy, n, f, h, G + p_.w2, At(G, p_.b2f),
                                   partial);
  }

 private:
  // Offsets into params (p_), saved (s_), pending (d_) and work (w_); kNone when absent.
  // p_, s_ and d_ are exactly those of the reference.
  struct ParamOffsets {
    int64_t g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, wu, b1f, buf, w2, b2f;
  } p_{};
  struct SavedOffsets {
    int64_t x, ln1, mean1, rstd1, q, k, v, probs, attn, h1, ln2, mean2, rstd2, m1, m2, m3;
  } s_{};
  struct PendingOffsets {
    int64_t dy, ln1, qkv, h1, ln2, m1, m2;
  } d_{};
  struct WorkOffsets {
    int64_t qkv, f, h, scores, ds, partial;
  } w_{};

  void Layout() {
    const int64_t n = this->rows(), h = h_, f = f_;
    int64_t at = 0;
    auto take = [&at](int64_t count) {
      const int64_t o = at;
      at += count;
      return o;
    };
    auto maybe = [&](bool present, int64_t count) { return present ? take(count) : kNone; };
    p_.g1 = take(h);
    p_.b1 = maybe(!rms_, h);
    p_.wqkv = take(h * 3 * h);
    p_.bqkv = maybe(bias_, 3 * h);
    p_.wo = take(h * h);
    p_.bo = maybe(bias_, h);
    p_.g2 = take(h);
    p_.b2 = maybe(!rms_, h);
    p_.w1 = take(h * f);
    p_.wu = maybe(swiglu_, h * f);
    p_.b1f = maybe(bias_, f);
    p_.buf = maybe(swiglu_ && bias_, f);
    p_.w2 = take(f * h);
    p_.b2f = maybe(bias_, h);
    params_size_ = at;

    at = 0;
    s_.x = take(n * h);
    s_.ln1 = take(n * h);
    s_.mean1 = maybe(!rms_, n);
    s_.rstd1 = take(n);
    s_.q = take(n * h);
    s_.k = take(n * h);
    s_.v = take(n * h);
    s_.probs = take(att_.batch * att_.heads * att_.seq * att_.seq);
    s_.attn = take(n * h);
    s_.h1 = take(n * h);
    s_.ln2 = take(n * h);
    s_.mean2 = maybe(!rms_, n);
    s_.rstd2 = take(n);
    s_.m1 = take(n * f);
    s_.m2 = take(n * f);
    s_.m3 = maybe(swiglu_, n * f);
    saved_size_ = at;

    at = 0;
    d_.dy = take(n * h);
    d_.ln1 = take(n * h);
    d_.qkv = take(3 * n * h);
    d_.h1 = take(n * h);
    d_.ln2 = take(n * h);
    d_.m1 = take(n * f);
    d_.m2 = maybe(swiglu_, n * f);
    pending_size_ = at;

    at = 0;
    auto aligned = [&](int64_t count) { return take(AlignCount<T>(count)); };
    w_.qkv = aligned(3 * n * h);
    w_.f = aligned(n * f);
    w_.h = aligned(n * h);
    w_.scores = aligned(FloatsAsT<T>(att_.scores()));
    w_.ds = aligned(att_.scores());
    w_.partial = aligned(FloatsAsT<T>(ColumnSumPartials(n, std::max(3 * h, f))));
    work_size_ = at;
  }

  static T* At(const T* base, int64_t offset) {
    return offset == kNone ? nullptr : const_cast<T*>(base) + offset;
  }
  float* Scores(T* work) const { return reinterpret_cast<float*>(work + w_.scores); }

  int64_t h_, f_;
  bool rms_, swiglu_, bias_, rotary_;
  CudaAttentionShape att_;
  int64_t params_size_ = 0, saved_size_ = 0, pending_size_ = 0, work_size_ = 0;
};

}  // namespace

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaTransformerBlock(const CudaBlockSpec& s) {
  return std::make_unique<BlockCuda<T>>(s);
}
template std::unique_ptr<CudaLayer<float>> MakeCudaTransformerBlock<float>(const CudaBlockSpec&);
template std::unique_ptr<CudaLayer<__nv_bfloat16>> MakeCudaTransformerBlock<__nv_bfloat16>(
    const CudaBlockSpec&);

}  // namespace pp
