// Embedding (CPU reference): y[r] = token[id[r]] + position[r mod seq_len] + token_type[0].
// params: token table vocab x h, then position table positions x h (if any), then the
// token-type table token_types x h (if any; every row uses type 0). saved: the ids (rows, as T;
// exact for vocabularies up to 2^24). No input gradient: the input is token ids.
#include <cmath>

#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

template <typename T>
class Embedding final : public CpuLayer<T> {
 public:
  Embedding(const Layer& l, const ModelInput& in)
      : vocab_(l.vocab), h_(l.hidden), positions_(l.positions), types_(l.token_types),
        seq_(in.seq_len) {
    this->SetShape(in.rows(), 0, l.hidden);
  }
  int64_t param_count() const override { return (vocab_ + positions_ + types_) * h_; }
  int64_t saved_count() const override { return this->rows(); }

  void Init(T* params, uint64_t seed) const override {
    cpu::FillUniform<T>(params, param_count(), T(1) / std::sqrt(static_cast<T>(h_)), seed);
  }

  void Forward(const T* params, const T*, const MicroBatch& batch, T* y, T* saved,
               T*) const override {
    const T* pos = params + vocab_ * h_;
    const T* type = pos + positions_ * h_;
    for (int64_t r = 0; r < this->rows(); ++r) {
      const int64_t id = batch.tokens[r];
      saved[r] = static_cast<T>(id);
      const T* row = params + id * h_;
      T* out = y + r * h_;
      for (int64_t i = 0; i < h_; ++i) out[i] = row[i];
      if (positions_ > 0) {
        const T* p = pos + (r % seq_) * h_;
        for (int64_t i = 0; i < h_; ++i) out[i] += p[i];
      }
      if (types_ > 0) {
        for (int64_t i = 0; i < h_; ++i) out[i] += type[i];
      }
    }
  }

  void BackwardInput(const T*, const T*, const T*, const MicroBatch&, T*, T*, T*) const override {}

  void BackwardWeight(const T*, const T* dy, const T* saved, const T*, const MicroBatch&,
                      T* dparams, T*) const override {
    T* dpos = dparams + vocab_ * h_;
    T* dtype = dpos + positions_ * h_;
    for (int64_t r = 0; r < this->rows(); ++r) {
      const int64_t id = static_cast<int64_t>(saved[r]);
      const T* g = dy + r * h_;
      for (int64_t i = 0; i < h_; ++i) dparams[id * h_ + i] += g[i];
      if (positions_ > 0) {
        for (int64_t i = 0; i < h_; ++i) dpos[(r % seq_) * h_ + i] += g[i];
      }
      if (types_ > 0) {
        for (int64_t i = 0; i < h_; ++i) dtype[i] += g[i];
      }
    }
  }

 private:
  int64_t vocab_, h_, positions_, types_, seq_;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuEmbedding(const Layer& l, const ModelInput& in) {
  return std::make_unique<Embedding<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuEmbedding<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuEmbedding<double>(const Layer&, const ModelInput&);

}  // namespace pp
