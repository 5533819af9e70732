// Transformer block (pre-norm), CPU reference:
//   h1 = x + Wo · attention(rotary(norm1(x) · Wqkv))
//   y  = h1 + mlp(norm2(h1)),  mlp = W2 · gelu(W1 ·)  or  Wd · (silu(Wg ·) * (Wu ·))
// params, in order (biases only when the block has them; beta only for layer norm):
//   gamma1 [beta1] Wqkv(h x 3h) [bqkv] Wo(h x h) [bo] gamma2 [beta2]
//   gelu:   W1(h x f) [b1] W2(f x h) [b2]
//   swiglu: Wg(h x f) Wu(h x f) [bg bu] Wd(f x h) [bd]
// saved (what the analytic profiler counts): x, norm1(x), [mean1] rstd1, q, k (rotated), v,
// probs, attention output, h1, norm2(h1), [mean2] rstd2, then gelu: W1 output and gelu
// output, or swiglu: gate, up and their product.
// pending (BackwardInput -> BackwardWeight): dy, d norm1 out, d qkv, d h1, d norm2 out, then
// gelu: d W1 output, or swiglu: d gate, d up.
#include <algorithm>
#include <cmath>
#include <vector>

#include "layers/attention.h"
#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

template <typename T>
class TransformerBlock final : public CpuLayer<T> {
 public:
  TransformerBlock(const Layer& l, const ModelInput& in)
      : h_(l.hidden), f_(l.ffn), rms_(l.norm == NormKind::kRmsNorm),
        swiglu_(l.mlp == MlpKind::kSwiglu), bias_(l.bias), rotary_(l.rotary) {
    this->SetShape(in.rows(), l.hidden, l.hidden);
    att_ = {in.micro_batch_size, in.seq_len, l.heads, l.hidden / l.heads, l.causal};
    Layout();
  }

  int64_t param_count() const override { return params_size_; }
  int64_t saved_count() const override { return saved_size_; }
  int64_t pending_count() const override { return pending_size_; }
  int64_t workspace_count() const override { return work_size_; }

  void Init(T* params, uint64_t seed) const override {
    cpu::Fill<T>(params, params_size_, T(0));
    cpu::Fill<T>(params + p_.g1, h_, T(1));
    cpu::Fill<T>(params + p_.g2, h_, T(1));
    const T wh = T(1) / std::sqrt(static_cast<T>(h_)), wf = T(1) / std::sqrt(static_cast<T>(f_));
    cpu::FillUniform<T>(params + p_.wqkv, h_ * 3 * h_, wh, seed + 1);
    cpu::FillUniform<T>(params + p_.wo, h_ * h_, wh, seed + 2);
    cpu::FillUniform<T>(params + p_.w1, h_ * f_, wh, seed + 3);
    if (swiglu_) cpu::FillUniform<T>(params + p_.wu, h_ * f_, wh, seed + 4);
    cpu::FillUniform<T>(params + p_.w2, f_ * h_, wf, seed + 5);
  }

  void Forward(const T* P, const T* x, const MicroBatch&, T* y, T* S, T* W) const override {
    const int64_t n = this->rows(), h = h_, f = f_;
    T* qkv = W + w_.big;
    T* tmp = W + w_.h1;
    std::copy(x, x + n * h, S + s_.x);
    cpu::NormForward<T>(rms_, x, P + p_.g1, B(P, p_.b1), n, h, S + s_.ln1, Mean(S, s_.mean1, W),
                        S + s_.rstd1);
    cpu::LinearForward<T>(S + s_.ln1, P + p_.wqkv, Bias(P, p_.bqkv), n, h, 3 * h, qkv);
    for (int64_t r = 0; r < n; ++r) {
      std::copy(qkv + r * 3 * h, qkv + r * 3 * h + h, S + s_.q + r * h);
      std::copy(qkv + r * 3 * h + h, qkv + r * 3 * h + 2 * h, S + s_.k + r * h);
      std::copy(qkv + r * 3 * h + 2 * h, qkv + r * 3 * h + 3 * h, S + s_.v + r * h);
    }
    if (rotary_) {
      cpu::Rotary<T>(att_, false, S + s_.q);
      cpu::Rotary<T>(att_, false, S + s_.k);
    }
    cpu::AttentionForward<T>(att_, S + s_.q, S + s_.k, S + s_.v, S + s_.probs, S + s_.attn);
    cpu::LinearForward<T>(S + s_.attn, P + p_.wo, Bias(P, p_.bo), n, h, h, tmp);
    for (int64_t i = 0; i < n * h; ++i) S[s_.h1 + i] = x[i] + tmp[i];
    cpu::NormForward<T>(rms_, S + s_.h1, P + p_.g2, B(P, p_.b2), n, h, S + s_.ln2,
                        Mean(S, s_.mean2, W), S + s_.rstd2);
    const T* mlp_in;
    if (swiglu_) {
      cpu::LinearForward<T>(S + s_.ln2, P + p_.w1, Bias(P, p_.b1f), n, h, f, S + s_.m1);
      cpu::LinearForward<T>(S + s_.ln2, P + p_.wu, Bias(P, p_.buf), n, h, f, S + s_.m2);
      for (int64_t i = 0; i < n * f; ++i) S[s_.m3 + i] = cpu::Silu(S[s_.m1 + i]) * S[s_.m2 + i];
      mlp_in = S + s_.m3;
    } else {
      cpu::LinearForward<T>(S + s_.ln2, P + p_.w1, Bias(P, p_.b1f), n, h, f, S + s_.m1);
      for (int64_t i = 0; i < n * f; ++i) S[s_.m2 + i] = cpu::Gelu(S[s_.m1 + i]);
      mlp_in = S + s_.m2;
    }
    cpu::LinearForward<T>(mlp_in, P + p_.w2, Bias(P, p_.b2f), n, f, h, tmp);
    for (int64_t i = 0; i < n * h; ++i) y[i] = S[s_.h1 + i] + tmp[i];
  }

  void BackwardInput(const T* P, const T* dy, const T* S, const MicroBatch&, T* dx, T* D,
                     T* W) const override {
    const int64_t n = this->rows(), h = h_, f = f_;
    T* dmid = W + w_.f;   // n x f
    T* dt = W + w_.h1;    // n x h
    T* dt2 = W + w_.h2;   // n x h
    T* dqkv = W + w_.big;  // 3 x (n x h): dq, dk, dv
    std::copy(dy, dy + n * h, D + d_.dy);
    // MLP.
    if (swiglu_) {
      cpu::LinearBackwardInput<T>(dy, P + p_.w2, n, f, h, dmid);  // d product
      for (int64_t i = 0; i < n * f; ++i) {
        const T g = S[s_.m1 + i], u = S[s_.m2 + i];
        D[d_.m1 + i] = dmid[i] * u * cpu::SiluGrad(g);
        D[d_.m2 + i] = dmid[i] * cpu::Silu(g);
      }
      cpu::LinearBackwardInput<T>(D + d_.m1, P + p_.w1, n, h, f, D + d_.ln2);
      cpu::LinearBackwardInput<T>(D + d_.m2, P + p_.wu, n, h, f, dt);
      for (int64_t i = 0; i < n * h; ++i) D[d_.ln2 + i] += dt[i];
    } else {
      cpu::LinearBackwardInput<T>(dy, P + p_.w2, n, f, h, dmid);  // d gelu output
      for (int64_t i = 0; i < n * f; ++i) D[d_.m1 + i] = dmid[i] * cpu::GeluGrad(S[s_.m1 + i]);
      cpu::LinearBackwardInput<T>(D + d_.m1, P + p_.w1, n, h, f, D + d_.ln2);
    }
    cpu::NormBackwardInput<T>(rms_, S + s_.h1, P + p_.g2, MeanC(S, s_.mean2), S + s_.rstd2,
                              D + d_.ln2, n, h, dt);
    for (int64_t i = 0; i < n * h; ++i) D[d_.h1 + i] = dy[i] + dt[i];
    // Attention.
    cpu::LinearBackwardInput<T>(D + d_.h1, P + p_.wo, n, h, h, dt);  // d attention output
    T* dq = dqkv;
    T* dk = dqkv + n * h;
    T* dv = dqkv + 2 * n * h;
    cpu::AttentionBackward<T>(att_, S + s_.q, S + s_.k, S + s_.v, S + s_.probs, dt, dq, dk, dv,
                              W + w_.scores);
    if (rotary_) {
      cpu::Rotary<T>(att_, true, dq);
      cpu::Rotary<T>(att_, true, dk);
    }
    for (int64_t r = 0; r < n; ++r) {
      T* out = D + d_.qkv + r * 3 * h;
      std::copy(dq + r * h, dq + r * h + h, out);
      std::copy(dk + r * h, dk + r * h + h, out + h);
      std::copy(dv + r * h, dv + r * h + h, out + 2 * h);
    }
    cpu::LinearBackwardInput<T>(D + d_.qkv, P + p_.wqkv, n, h, 3 * h, D + d_.ln1);
    cpu::NormBackwardInput<T>(rms_, S + s_.x, P + p_.g1, MeanC(S, s_.mean1), S + s_.rstd1,
                              D + d_.ln1, n, h, dt2);
    for (int64_t i = 0; i < n * h; ++i) dx[i] = D[d_.h1 + i] + dt2[i];
  }

  void BackwardWeight(const T*, const T*, const T* S, const T* D, const MicroBatch&, T* G,
                      T*) const override {
    const int64_t n = this->rows(), h = h_, f = f_;
    cpu::NormBackwardWeight<T>(rms_, S + s_.x, MeanC(S, s_.mean1), S + s_.rstd1, D + d_.ln1, n,
                               h, G + p_.g1, B(G, p_.b1));
    cpu::LinearBackwardWeight<T>(S + s_.ln1, D + d_.qkv, n, h, 3 * h, G + p_.wqkv, Bias(G, p_.bqkv));
    cpu::LinearBackwardWeight<T>(S + s_.attn, D + d_.h1, n, h, h, G + p_.wo, Bias(G, p_.bo));
    cpu::NormBackwardWeight<T>(rms_, S + s_.h1, MeanC(S, s_.mean2), S + s_.rstd2, D + d_.ln2, n,
                               h, G + p_.g2, B(G, p_.b2));
    cpu::LinearBackwardWeight<T>(S + s_.ln2, D + d_.m1, n, h, f, G + p_.w1, Bias(G, p_.b1f));
    if (swiglu_) {
      cpu::LinearBackwardWeight<T>(S + s_.ln2, D + d_.m2, n, h, f, G + p_.wu, Bias(G, p_.buf));
      cpu::LinearBackwardWeight<T>(S + s_.m3, D + d_.dy, n, f, h, G + p_.w2, Bias(G, p_.b2f));
    } else {
      cpu::LinearBackwardWeight<T>(S + s_.m2, D + d_.dy, n, f, h, G + p_.w2, Bias(G, p_.b2f));
    }
  }

 private:
  static constexpr int64_t kNone = -1;
  // Offsets into params (p_), saved (s_), pending (d_) and work (w_); kNone when absent.
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
    int64_t big, f, h1, h2, scores, mean;
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
    if (swiglu_) {
      p_.w1 = take(h * f);
      p_.wu = take(h * f);
      p_.b1f = maybe(bias_, f);
      p_.buf = maybe(bias_, f);
    } else {
      p_.w1 = take(h * f);
      p_.wu = kNone;
      p_.b1f = maybe(bias_, f);
      p_.buf = kNone;
    }
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
    w_.big = take(3 * n * h);
    w_.f = take(n * f);
    w_.h1 = take(n * h);
    w_.h2 = take(n * h);
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

  int64_t h_, f_;
  bool rms_, swiglu_, bias_, rotary_;
  cpu::AttentionShape att_;
  int64_t params_size_ = 0, saved_size_ = 0, pending_size_ = 0, work_size_ = 0;
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
