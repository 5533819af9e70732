// Transformer block (pre-norm), CPU reference:
//   h1 = x + Wo · attention(rotary(norm1(x) · Wqkv))
//   y  = h1 + mlp(norm2(h1)),  mlp = W2 · act(W1 ·) (act: gelu or relu2, max(·, 0)²)  or
//   Wd · (act(Wg ·) * (Wu ·)) (act: silu for swiglu, gelu for geglu)
// with q of width qw = heads x head_dim and k, v of width kvw = kv_heads x head_dim
// (grouped-query attention when kv_heads < heads).
// params, in order (biases only when the block has them; beta only for layer norm):
//   gamma1 [beta1] Wqkv(h x (qw + 2 kvw)) [bqkv] Wo(qw x h) [bo] gamma2 [beta2]
//   gelu, relu2: W1(h x f) [b1] W2(f x h) [b2]
//   swiglu, geglu: Wg(h x f) Wu(h x f) [bg bu] Wd(f x h) [bd]
// saved (what the analytic profiler counts): x, norm1(x), [mean1] rstd1, q, k (rotated), v,
// probs, attention output, h1, norm2(h1), [mean2] rstd2, then gelu or relu2: W1 output and
// the activation's output, or swiglu and geglu: gate, up and their product.
// pending (BackwardInput -> BackwardWeight): dy, d norm1 out, d qkv, d h1, d norm2 out, then
// gelu or relu2: d W1 output, or swiglu and geglu: d gate, d up.
#include <algorithm>
#include <cmath>
#include <vector>

#include "layers/attention.h"
#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"
#include "layers/transformer_block_layout.h"

namespace pp {
namespace {

template <typename T>
class TransformerBlock final : public CpuLayer<T> {
 public:
  TransformerBlock(const Layer& l, const ModelInput& in)
      : h_(l.hidden),
        f_(l.ffn),
        rms_(l.norm == NormKind::kRmsNorm),
        gated_(GatedMlp(l.mlp)),
        act_(ActOf(l.mlp)),
        act_grad_(ActGradOf(l.mlp)),
        bias_(l.bias),
        rotary_(l.rotary) {
    this->SetShape(in.rows(), l.hidden, l.hidden);
    att_ = {in.micro_batch_size, in.seq_len, l.heads, l.head_dim, l.causal, l.kv_heads};
    qw_ = l.heads * l.head_dim;
    kvw_ = l.kv_heads * l.head_dim;
    qkv_bias_ = l.qkv_bias;
    Layout();
  }

  int64_t param_count() const override { return l_.params_size; }
  int64_t saved_count() const override { return l_.saved_size; }
  int64_t pending_count() const override { return l_.pending_size; }
  int64_t workspace_count() const override { return work_size_; }

  void Init(T* params, uint64_t seed) const override {
    cpu::Fill<T>(params, l_.params_size, T(0));
    cpu::Fill<T>(params + l_.p.g1, h_, T(1));
    cpu::Fill<T>(params + l_.p.g2, h_, T(1));
    const T wh = T(1) / std::sqrt(static_cast<T>(h_)), wf = T(1) / std::sqrt(static_cast<T>(f_));
    cpu::FillUniform<T>(params + l_.p.wqkv, h_ * (qw_ + 2 * kvw_), wh, seed + 1);
    cpu::FillUniform<T>(params + l_.p.wo, qw_ * h_, wh, seed + 2);
    cpu::FillUniform<T>(params + l_.p.w1, h_ * f_, wh, seed + 3);
    if (gated_) cpu::FillUniform<T>(params + l_.p.wu, h_ * f_, wh, seed + 4);
    cpu::FillUniform<T>(params + l_.p.w2, f_ * h_, wf, seed + 5);
  }

  void Forward(const T* P, const T* x, const MicroBatch&, T* y, T* S, T* W) const override {
    const int64_t n = this->rows(), h = h_, f = f_, qw = qw_, kvw = kvw_, qkvw = qw_ + 2 * kvw_;
    T* qkv = W + w_.big;
    T* tmp = W + w_.h1;
    std::copy(x, x + n * h, S + l_.s.x);
    cpu::NormForward<T>(rms_, x, P + l_.p.g1, B(P, l_.p.b1), n, h, S + l_.s.ln1, Mean(S, l_.s.mean1, W),
                        S + l_.s.rstd1);
    cpu::LinearForward<T>(S + l_.s.ln1, P + l_.p.wqkv, Bias(P, l_.p.bqkv), n, h, qkvw, qkv);
    for (int64_t r = 0; r < n; ++r) {
      const T* row = qkv + r * qkvw;
      std::copy(row, row + qw, S + l_.s.q + r * qw);
      std::copy(row + qw, row + qw + kvw, S + l_.s.k + r * kvw);
      std::copy(row + qw + kvw, row + qkvw, S + l_.s.v + r * kvw);
    }
    if (rotary_) {
      cpu::Rotary<T>(att_, false, S + l_.s.q);
      cpu::Rotary<T>(att_.KvShape(), false, S + l_.s.k);
    }
    cpu::AttentionForward<T>(att_, S + l_.s.q, S + l_.s.k, S + l_.s.v, S + l_.s.probs, S + l_.s.attn);
    cpu::LinearForward<T>(S + l_.s.attn, P + l_.p.wo, Bias(P, l_.p.bo), n, qw, h, tmp);
    for (int64_t i = 0; i < n * h; ++i) S[l_.s.h1 + i] = x[i] + tmp[i];
    cpu::NormForward<T>(rms_, S + l_.s.h1, P + l_.p.g2, B(P, l_.p.b2), n, h, S + l_.s.ln2,
                        Mean(S, l_.s.mean2, W), S + l_.s.rstd2);
    const T* mlp_in;
    if (gated_) {
      cpu::LinearForward<T>(S + l_.s.ln2, P + l_.p.w1, Bias(P, l_.p.b1f), n, h, f, S + l_.s.m1);
      cpu::LinearForward<T>(S + l_.s.ln2, P + l_.p.wu, Bias(P, l_.p.buf), n, h, f, S + l_.s.m2);
      for (int64_t i = 0; i < n * f; ++i) S[l_.s.m3 + i] = act_(S[l_.s.m1 + i]) * S[l_.s.m2 + i];
      mlp_in = S + l_.s.m3;
    } else {
      cpu::LinearForward<T>(S + l_.s.ln2, P + l_.p.w1, Bias(P, l_.p.b1f), n, h, f, S + l_.s.m1);
      for (int64_t i = 0; i < n * f; ++i) S[l_.s.m2 + i] = act_(S[l_.s.m1 + i]);
      mlp_in = S + l_.s.m2;
    }
    cpu::LinearForward<T>(mlp_in, P + l_.p.w2, Bias(P, l_.p.b2f), n, f, h, tmp);
    for (int64_t i = 0; i < n * h; ++i) y[i] = S[l_.s.h1 + i] + tmp[i];
  }

  void BackwardInput(const T* P, const T* dy, const T* S, const MicroBatch&, T* dx, T* D,
                     T* W) const override {
    const int64_t n = this->rows(), h = h_, f = f_, qw = qw_, kvw = kvw_, qkvw = qw_ + 2 * kvw_;
    T* dmid = W + w_.f;   // n x f
    T* dt = W + w_.h1;    // n x h
    T* dt2 = W + w_.h2;   // n x h
    T* dattn = W + w_.attn;  // n x qw
    T* dqkv = W + w_.big;  // dq (n x qw), dk and dv (n x kvw each)
    std::copy(dy, dy + n * h, D + l_.d.dy);
    // MLP.
    if (gated_) {
      cpu::LinearBackwardInput<T>(dy, P + l_.p.w2, n, f, h, dmid);  // d product
      for (int64_t i = 0; i < n * f; ++i) {
        const T g = S[l_.s.m1 + i], u = S[l_.s.m2 + i];
        D[l_.d.m1 + i] = dmid[i] * u * act_grad_(g);
        D[l_.d.m2 + i] = dmid[i] * act_(g);
      }
      cpu::LinearBackwardInput<T>(D + l_.d.m1, P + l_.p.w1, n, h, f, D + l_.d.ln2);
      cpu::LinearBackwardInput<T>(D + l_.d.m2, P + l_.p.wu, n, h, f, dt);
      for (int64_t i = 0; i < n * h; ++i) D[l_.d.ln2 + i] += dt[i];
    } else {
      cpu::LinearBackwardInput<T>(dy, P + l_.p.w2, n, f, h, dmid);  // d activation output
      for (int64_t i = 0; i < n * f; ++i) D[l_.d.m1 + i] = dmid[i] * act_grad_(S[l_.s.m1 + i]);
      cpu::LinearBackwardInput<T>(D + l_.d.m1, P + l_.p.w1, n, h, f, D + l_.d.ln2);
    }
    cpu::NormBackwardInput<T>(rms_, S + l_.s.h1, P + l_.p.g2, MeanC(S, l_.s.mean2), S + l_.s.rstd2,
                              D + l_.d.ln2, n, h, dt);
    for (int64_t i = 0; i < n * h; ++i) D[l_.d.h1 + i] = dy[i] + dt[i];
    // Attention.
    cpu::LinearBackwardInput<T>(D + l_.d.h1, P + l_.p.wo, n, qw, h, dattn);  // d attention output
    T* dq = dqkv;
    T* dk = dqkv + n * qw;
    T* dv = dk + n * kvw;
    cpu::AttentionBackward<T>(att_, S + l_.s.q, S + l_.s.k, S + l_.s.v, S + l_.s.probs, dattn, dq,
                              dk, dv, W + w_.scores);
    if (rotary_) {
      cpu::Rotary<T>(att_, true, dq);
      cpu::Rotary<T>(att_.KvShape(), true, dk);
    }
    for (int64_t r = 0; r < n; ++r) {
      T* out = D + l_.d.qkv + r * qkvw;
      std::copy(dq + r * qw, dq + r * qw + qw, out);
      std::copy(dk + r * kvw, dk + r * kvw + kvw, out + qw);
      std::copy(dv + r * kvw, dv + r * kvw + kvw, out + qw + kvw);
    }
    cpu::LinearBackwardInput<T>(D + l_.d.qkv, P + l_.p.wqkv, n, h, qkvw, D + l_.d.ln1);
    cpu::NormBackwardInput<T>(rms_, S + l_.s.x, P + l_.p.g1, MeanC(S, l_.s.mean1), S + l_.s.rstd1,
                              D + l_.d.ln1, n, h, dt2);
    for (int64_t i = 0; i < n * h; ++i) dx[i] = D[l_.d.h1 + i] + dt2[i];
  }

  void BackwardWeight(const T*, const T*, const T* S, const T* D, const MicroBatch&, T* G,
                      T*) const override {
    const int64_t n = this->rows(), h = h_, f = f_, qw = qw_, qkvw = qw_ + 2 * kvw_;
    cpu::NormBackwardWeight<T>(rms_, S + l_.s.x, MeanC(S, l_.s.mean1), S + l_.s.rstd1, D + l_.d.ln1, n,
                               h, G + l_.p.g1, B(G, l_.p.b1));
    cpu::LinearBackwardWeight<T>(S + l_.s.ln1, D + l_.d.qkv, n, h, qkvw, G + l_.p.wqkv,
                                 Bias(G, l_.p.bqkv));
    cpu::LinearBackwardWeight<T>(S + l_.s.attn, D + l_.d.h1, n, qw, h, G + l_.p.wo, Bias(G, l_.p.bo));
    cpu::NormBackwardWeight<T>(rms_, S + l_.s.h1, MeanC(S, l_.s.mean2), S + l_.s.rstd2, D + l_.d.ln2, n,
                               h, G + l_.p.g2, B(G, l_.p.b2));
    cpu::LinearBackwardWeight<T>(S + l_.s.ln2, D + l_.d.m1, n, h, f, G + l_.p.w1, Bias(G, l_.p.b1f));
    if (gated_) {
      cpu::LinearBackwardWeight<T>(S + l_.s.ln2, D + l_.d.m2, n, h, f, G + l_.p.wu, Bias(G, l_.p.buf));
      cpu::LinearBackwardWeight<T>(S + l_.s.m3, D + l_.d.dy, n, f, h, G + l_.p.w2, Bias(G, l_.p.b2f));
    } else {
      cpu::LinearBackwardWeight<T>(S + l_.s.m2, D + l_.d.dy, n, f, h, G + l_.p.w2, Bias(G, l_.p.b2f));
    }
  }

 private:
  static constexpr int64_t kNone = BlockLayout::kNone;
  // Offsets into the buffers (params, saved and pending from transformer_block_layout.h; work
  // its own); kNone when absent.
  BlockLayout l_;  // params (l_.p), saved (l_.s) and pending (l_.d) offsets and sizes
  struct WorkOffsets {
    int64_t big, f, h1, h2, attn, scores, mean;
  } w_{};

  void Layout() {
    const int64_t n = this->rows(), h = h_, f = f_;
    int64_t at = 0;
    auto take = [&at](int64_t count) {
      const int64_t o = at;
      at += count;
      return o;
    };
    // Params, kept activations and pending gradients: the layout both implementations share.
    l_ = LayOutBlock({n, h, f, att_.batch, att_.heads, att_.seq, rms_, bias_, gated_, att_.kv(),
                      att_.head_dim, qkv_bias_});
    w_.big = take(n * (qw_ + 2 * kvw_));
    w_.f = take(n * f);
    w_.h1 = take(n * h);
    w_.h2 = take(n * h);
    w_.attn = take(n * qw_);
    w_.scores = take(att_.seq * att_.seq + att_.seq);
    w_.mean = take(n);
    work_size_ = at;
  }

  static T* Bias(T* base, int64_t offset) { return offset == kNone ? nullptr : base + offset; }
  static const T* Bias(const T* base, int64_t offset) {
    return offset == kNone ? nullptr : base + offset;
  }
  static const T* B(const T* base, int64_t offset) { return Bias(base, offset); }
  static T* B(T* base, int64_t offset) { return Bias(base, offset); }
  // Layer norm keeps its mean in `saved`; RMS norm writes a throw-away mean to the workspace.
  T* Mean(T* saved, int64_t offset, T* work) const {
    return offset == kNone ? work + w_.mean : saved + offset;
  }
  static const T* MeanC(const T* saved, int64_t offset) {
    return offset == kNone ? nullptr : saved + offset;
  }

  // The MLP's elementwise function (a gated one's, of its gate) and its derivative, chosen
  // once here rather than per element.
  using Fn = T (*)(T);
  static Fn ActOf(MlpKind mlp) {
    return mlp == MlpKind::kRelu2    ? &cpu::Relu2<T>
           : mlp == MlpKind::kSwiglu ? &cpu::Silu<T>
                                     : &cpu::Gelu<T>;  // gelu, geglu
  }
  static Fn ActGradOf(MlpKind mlp) {
    return mlp == MlpKind::kRelu2    ? &cpu::Relu2Grad<T>
           : mlp == MlpKind::kSwiglu ? &cpu::SiluGrad<T>
                                     : &cpu::GeluGrad<T>;
  }

  int64_t h_, f_;
  bool rms_, gated_;  // a gated MLP (swiglu, geglu)
  Fn act_, act_grad_;
  bool bias_, rotary_;
  int64_t qw_ = 0, kvw_ = 0;  // widths of q and of k (and v)
  bool qkv_bias_ = false;
  cpu::AttentionShape att_;
  int64_t work_size_ = 0;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuTransformerBlock(const Layer& l, const ModelInput& in) {
  return std::make_unique<TransformerBlock<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuTransformerBlock<float>(const Layer&,
                                                                         const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuTransformerBlock<double>(const Layer&,
                                                                           const ModelInput&);

}  // namespace pp
