// Layer norm and RMS norm over the hidden dimension (eps 1e-5), CPU reference.
// params: gamma (h), then beta (h) for layer norm. saved: x (rows x h), then mean (rows, layer
// norm only) and rstd (rows).
#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

template <typename T>
class Norm final : public CpuLayer<T> {
 public:
  Norm(const Layer& l, const ModelInput& in) : h_(l.hidden), rms_(l.op == LayerKind::kRmsNorm) {
    this->SetShape(in.rows(), l.hidden, l.hidden);
  }
  int64_t param_count() const override { return rms_ ? h_ : 2 * h_; }
  int64_t saved_count() const override { return this->rows() * (h_ + (rms_ ? 1 : 2)); }

  void Init(T* params, uint64_t) const override {
    cpu::Fill<T>(params, h_, T(1));
    if (!rms_) cpu::Fill<T>(params + h_, h_, T(0));
  }

  void Forward(const T* params, const T* x, const MicroBatch&, T* y, T* saved,
               T* work) const override {
    const int64_t rows = this->rows();
    for (int64_t i = 0; i < rows * h_; ++i) saved[i] = x[i];
    T* mean = rms_ ? work : saved + rows * h_;
    T* rstd = rms_ ? saved + rows * h_ : mean + rows;
    cpu::NormForward<T>(rms_, x, params, rms_ ? nullptr : params + h_, rows, h_, y, mean, rstd);
  }

  void BackwardInput(const T* params, const T* dy, const T* saved, const MicroBatch&, T* dx, T*,
                     T*) const override {
    const int64_t rows = this->rows();
    cpu::NormBackwardInput<T>(rms_, saved, params, Mean(saved), Rstd(saved), dy, rows, h_, dx);
  }

  void BackwardWeight(const T*, const T* dy, const T* saved, const T*, const MicroBatch&,
                      T* dparams, T*) const override {
    cpu::NormBackwardWeight<T>(rms_, saved, Mean(saved), Rstd(saved), dy, this->rows(), h_,
                               dparams, rms_ ? nullptr : dparams + h_);
  }

  int64_t workspace_count() const override { return rms_ ? this->rows() : 0; }

 private:
  const T* Mean(const T* saved) const { return rms_ ? nullptr : saved + this->rows() * h_; }
  const T* Rstd(const T* saved) const {
    return saved + this->rows() * h_ + (rms_ ? 0 : this->rows());
  }
  int64_t h_;
  bool rms_;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuNorm(const Layer& l, const ModelInput& in) {
  return std::make_unique<Norm<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuNorm<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuNorm<double>(const Layer&, const ModelInput&);

}  // namespace pp
