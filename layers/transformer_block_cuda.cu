// Transformer block (pre-norm), CUDA; the math and the params / saved / pending layouts of
// transformer_block.cc:
//   h1 = x + Wo · attention(rotary(norm1(x) · Wqkv))
//   y  = h1 + mlp(norm2(h1)),  mlp = W2 · act(W1 ·) (act: gelu or relu2, max(·, 0)²)  or
//   Wd · (act(Wg ·) * (Wu ·)) (act: silu for swiglu, gelu for geglu)
// The residual adds ride in the output projections' GEMMs (C = the residual, beta 1) and in
// the norms' input-gradient kernels. Grouped-query attention (kv_heads < heads) gives k and v
// hk = kv_heads x head_dim columns each. workspace (T elements, regions 256-byte aligned): the
// qkv product (n (h + 2 hk)) / its gradient per query head (3 n h), the MLP's middle gradient
// (n f), one n x h temporary,
// fp32 attention scores (heads s s), dS (heads s s) and fp32 column-sum partials.
#include <algorithm>

#include "layers/cuda_check.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"
#include "layers/transformer_block_layout.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaBlockSpec {
  int64_t batch = 0, seq = 0, hidden = 0, heads = 0, ffn = 0;
  int64_t kv_heads = 0;  // key/value heads (grouped-query attention below heads)
  bool rms = false, gated = false, bias = true, causal = false, rotary = false;
  Activation act = Activation::kGelu;  // the MLP's (a gated one's: of the gate)
};

constexpr int64_t kNone = BlockLayout::kNone;

// The elementwise function of an MLP (a gated one's, of its gate).
Activation MlpActivation(MlpKind mlp) {
  switch (mlp) {
    case MlpKind::kRelu2:
      return Activation::kRelu2;
    case MlpKind::kSwiglu:
      return Activation::kSilu;
    case MlpKind::kGelu:
    case MlpKind::kGeglu:
      break;
  }
  return Activation::kGelu;
}

template <typename T>
class BlockCuda final : public CudaLayer<T> {
 public:
  explicit BlockCuda(const CudaBlockSpec& s)
      : h_(s.hidden), f_(s.ffn), rms_(s.rms), gated_(s.gated), bias_(s.bias),
        rotary_(s.rotary), act_(s.act) {
    this->SetShape(s.batch * s.seq, s.hidden, s.hidden);
    att_.batch = s.batch;
    att_.seq = s.seq;
    att_.heads = s.heads;
    att_.head_dim = s.hidden / s.heads;
    att_.causal = s.causal;
    att_.kv_heads = s.kv_heads;
    Layout();
  }

  int64_t param_count() const override { return l_.params_size; }
  int64_t saved_count() const override { return l_.saved_size; }
  int64_t pending_count() const override { return l_.pending_size; }
  int64_t workspace_count() const override { return work_size_; }

  Status Forward(CudaContext& ctx, const T* P, const T* x, const CudaMicroBatch&, T* y, T* S,
                 T* W) const override {
    NvtxRange range("TransformerBlock.Forward");
    const int64_t n = this->rows(), h = h_, f = f_;
    T* qkv = W + w_.qkv;
    PP_CUDA_CHECK(cudaMemcpyAsync(S + l_.s.x, x, sizeof(T) * n * h, cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    PP_RETURN_IF_ERROR(NormForward<T>(ctx, rms_, x, P + l_.p.g1, At(P, l_.p.b1), n, h, S + l_.s.ln1,
                                      At(S, l_.s.mean1), S + l_.s.rstd1));
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + l_.s.ln1, P + l_.p.wqkv, At(P, l_.p.bqkv), nullptr, n,
                                        h, att_.qkv_width(), qkv));
    PP_RETURN_IF_ERROR(SplitQkv<T>(ctx, att_, rotary_, qkv, S + l_.s.q, S + l_.s.k, S + l_.s.v));
    PP_RETURN_IF_ERROR(AttentionForward<T>(ctx, att_, S + l_.s.q, S + l_.s.k, S + l_.s.v,
                                           S + l_.s.probs, S + l_.s.attn, Scores(W)));
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + l_.s.attn, P + l_.p.wo, At(P, l_.p.bo), x, n, h, h,
                                        S + l_.s.h1));
    PP_RETURN_IF_ERROR(NormForward<T>(ctx, rms_, S + l_.s.h1, P + l_.p.g2, At(P, l_.p.b2), n, h,
                                      S + l_.s.ln2, At(S, l_.s.mean2), S + l_.s.rstd2));
    const T* mlp_in;
    PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + l_.s.ln2, P + l_.p.w1, At(P, l_.p.b1f), nullptr, n, h,
                                        f, S + l_.s.m1));
    if (gated_) {
      PP_RETURN_IF_ERROR(LinearForward<T>(ctx, S + l_.s.ln2, P + l_.p.wu, At(P, l_.p.buf), nullptr, n,
                                          h, f, S + l_.s.m2));
      PP_RETURN_IF_ERROR(GatedForward<T>(ctx, act_, S + l_.s.m1, S + l_.s.m2, n * f, S + l_.s.m3));
      mlp_in = S + l_.s.m3;
    } else {
      PP_RETURN_IF_ERROR(ActivationForward<T>(ctx, act_, S + l_.s.m1, n * f, S + l_.s.m2));
      mlp_in = S + l_.s.m2;
    }
    return LinearForward<T>(ctx, mlp_in, P + l_.p.w2, At(P, l_.p.b2f), S + l_.s.h1, n, f, h, y);
  }

  Status BackwardInput(CudaContext& ctx, const T* P, const T* dy, const T* S,
                       const CudaMicroBatch&, T* dx, T* D, T* W) const override {
    NvtxRange range("TransformerBlock.BackwardInput");
    const int64_t n = this->rows(), h = h_, f = f_;
    T* dmid = W + w_.f;    // n x f
    T* dt = W + w_.h;      // n x h
    T* dqkv = W + w_.qkv;  // dq, dk, dv: n x h each (dk, dv per query head)
    PP_CUDA_CHECK(cudaMemcpyAsync(D + l_.d.dy, dy, sizeof(T) * n * h, cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    // MLP.
    PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, dy, P + l_.p.w2, n, f, h, dmid));
    if (gated_) {
      PP_RETURN_IF_ERROR(
          GatedBackward<T>(ctx, act_, S + l_.s.m1, S + l_.s.m2, dmid, n * f, D + l_.d.m1, D + l_.d.m2));
      PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + l_.d.m1, P + l_.p.w1, n, h, f, D + l_.d.ln2));
      PP_RETURN_IF_ERROR(
          LinearBackwardInput<T>(ctx, D + l_.d.m2, P + l_.p.wu, n, h, f, D + l_.d.ln2, true));
    } else {
      PP_RETURN_IF_ERROR(ActivationBackward<T>(ctx, act_, S + l_.s.m1, dmid, n * f, D + l_.d.m1));
      PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + l_.d.m1, P + l_.p.w1, n, h, f, D + l_.d.ln2));
    }
    // d h1 = dy + norm2's input gradient.
    PP_RETURN_IF_ERROR(NormBackwardInput<T>(ctx, rms_, S + l_.s.h1, P + l_.p.g2, At(S, l_.s.mean2),
                                            S + l_.s.rstd2, D + l_.d.ln2, dy, n, h, D + l_.d.h1));
    // Attention.
    PP_RETURN_IF_ERROR(LinearBackwardInput<T>(ctx, D + l_.d.h1, P + l_.p.wo, n, h, h, dt));
    T* dq = dqkv;
    T* dk = dqkv + n * h;
    T* dv = dqkv + 2 * n * h;
    PP_RETURN_IF_ERROR(AttentionBackward<T>(ctx, att_, S + l_.s.q, S + l_.s.k, S + l_.s.v,
                                            S + l_.s.probs, dt, dq, dk, dv, Scores(W), W + w_.ds));
    PP_RETURN_IF_ERROR(MergeQkv<T>(ctx, att_, rotary_, dq, dk, dv, D + l_.d.qkv));
    PP_RETURN_IF_ERROR(
        LinearBackwardInput<T>(ctx, D + l_.d.qkv, P + l_.p.wqkv, n, h, att_.qkv_width(), D + l_.d.ln1));
    // dx = d h1 + norm1's input gradient.
    return NormBackwardInput<T>(ctx, rms_, S + l_.s.x, P + l_.p.g1, At(S, l_.s.mean1), S + l_.s.rstd1,
                                D + l_.d.ln1, D + l_.d.h1, n, h, dx);
  }

  Status BackwardWeight(CudaContext& ctx, const T*, const T*, const T* S, const T* D,
                        const CudaMicroBatch&, T* G, T* W) const override {
    NvtxRange range("TransformerBlock.BackwardWeight");
    const int64_t n = this->rows(), h = h_, f = f_;
    float* partial = reinterpret_cast<float*>(W + w_.partial);
    PP_RETURN_IF_ERROR(NormBackwardWeight<T>(ctx, rms_, S + l_.s.x, At(S, l_.s.mean1), S + l_.s.rstd1,
                                             D + l_.d.ln1, n, h, G + l_.p.g1, At(G, l_.p.b1), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + l_.s.ln1, D + l_.d.qkv, n, h, att_.qkv_width(),
                                               G + l_.p.wqkv, At(G, l_.p.bqkv), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + l_.s.attn, D + l_.d.h1, n, h, h, G + l_.p.wo,
                                               At(G, l_.p.bo), partial));
    PP_RETURN_IF_ERROR(NormBackwardWeight<T>(ctx, rms_, S + l_.s.h1, At(S, l_.s.mean2), S + l_.s.rstd2,
                                             D + l_.d.ln2, n, h, G + l_.p.g2, At(G, l_.p.b2), partial));
    PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + l_.s.ln2, D + l_.d.m1, n, h, f, G + l_.p.w1,
                                               At(G, l_.p.b1f), partial));
    if (gated_) {
      PP_RETURN_IF_ERROR(LinearBackwardWeight<T>(ctx, S + l_.s.ln2, D + l_.d.m2, n, h, f, G + l_.p.wu,
                                                 At(G, l_.p.buf), partial));
    }
    const T* mlp_in = S + (gated_ ? l_.s.m3 : l_.s.m2);
    return LinearBackwardWeight<T>(ctx, mlp_in, D + l_.d.dy, n, f, h, G + l_.p.w2, At(G, l_.p.b2f),
                                   partial);
  }

 private:
  // Offsets into the buffers (params, saved and pending from transformer_block_layout.h, the
  // reference's own layout; work its own); kNone when absent.
  BlockLayout l_;  // params (l_.p), saved (l_.s) and pending (l_.d) offsets and sizes
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
    // Params, kept activations and pending gradients: the layout both implementations share
    // (head_dim = hidden / heads and qkv_bias = bias: MakeCudaLayer refuses the other blocks).
    l_ = LayOutBlock({n, h, f, att_.batch, att_.heads, att_.seq, rms_, bias_, gated_,
                      att_.kv(), h / att_.heads, bias_});
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
  bool rms_, gated_, bias_, rotary_;
  Activation act_;
  CudaAttentionShape att_;
  int64_t work_size_ = 0;
};

}  // namespace

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaTransformerBlock(const Layer& l, const ModelInput& in) {
  return std::make_unique<BlockCuda<T>>(CudaBlockSpec{
      in.micro_batch_size, in.seq_len, l.hidden, l.heads, l.ffn, l.kv_heads,
      l.norm == NormKind::kRmsNorm,
      GatedMlp(l.mlp), l.bias, l.causal, l.rotary, MlpActivation(l.mlp)});
}
template std::unique_ptr<CudaLayer<float>> MakeCudaTransformerBlock<float>(const Layer&,
                                                                           const ModelInput&);
template std::unique_ptr<CudaLayer<__nv_bfloat16>> MakeCudaTransformerBlock<__nv_bfloat16>(
    const Layer&, const ModelInput&);

}  // namespace pp
