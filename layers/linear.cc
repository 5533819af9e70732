// Linear (CPU reference): y = x W + b. params: W (in x out, row-major), then b (out) when the
// layer has a bias. saved: x. A tied layer holds its own copy of the shared weight.
#include <cmath>

#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

template <typename T>
class Linear final : public CpuLayer<T> {
 public:
  Linear(const Layer& l, const ModelInput& in) : in_(l.in), out_(l.out), bias_(l.bias) {
    this->SetShape(in.rows(), l.in, l.out);
  }
  int64_t param_count() const override { return in_ * out_ + (bias_ ? out_ : 0); }
  int64_t saved_count() const override { return this->rows() * in_; }

  void Init(T* params, uint64_t seed) const override {
    cpu::FillUniform<T>(params, in_ * out_, T(1) / std::sqrt(static_cast<T>(in_)), seed);
    if (bias_) cpu::Fill<T>(params + in_ * out_, out_, T(0));
  }

  void Forward(const T* params, const T* x, const MicroBatch&, T* y, T* saved,
               T*) const override {
    for (int64_t i = 0; i < this->rows() * in_; ++i) saved[i] = x[i];
    cpu::LinearForward<T>(x, params, bias_ ? params + in_ * out_ : nullptr, this->rows(), in_,
                          out_, y);
  }

  void BackwardInput(const T* params, const T* dy, const T*, const MicroBatch&, T* dx, T*,
                     T*) const override {
    cpu::LinearBackwardInput<T>(dy, params, this->rows(), in_, out_, dx);
  }

  void BackwardWeight(const T*, const T* dy, const T* saved, const T*, const MicroBatch&,
                      T* dparams, T*) const override {
    cpu::LinearBackwardWeight<T>(saved, dy, this->rows(), in_, out_, dparams,
                                 bias_ ? dparams + in_ * out_ : nullptr);
  }

 private:
  int64_t in_, out_;
  bool bias_;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuLinear(const Layer& l, const ModelInput& in) {
  return std::make_unique<Linear<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuLinear<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuLinear<double>(const Layer&, const ModelInput&);

}  // namespace pp
