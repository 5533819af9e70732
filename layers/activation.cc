// ReLU and GELU (tanh approximation), CPU reference. No params. saved: the input.
#include "layers/cpu_layers.h"
#include "layers/cpu_math.h"

namespace pp {
namespace {

template <typename T>
class Activation final : public CpuLayer<T> {
 public:
  Activation(const Layer& l, const ModelInput& in) : gelu_(l.op == LayerKind::kGelu) {
    this->SetShape(in.rows(), l.in_width, l.in_width);
  }
  int64_t param_count() const override { return 0; }
  int64_t saved_count() const override { return count(); }
  void Init(T*, uint64_t) const override {}

  void Forward(const T*, const T* x, const MicroBatch&, T* y, T* saved, T*) const override {
    for (int64_t i = 0; i < count(); ++i) {
      saved[i] = x[i];
      y[i] = gelu_ ? cpu::Gelu(x[i]) : (x[i] > 0 ? x[i] : T(0));
    }
  }

  void BackwardInput(const T*, const T* dy, const T* saved, const MicroBatch&, T* dx, T*,
                     T*) const override {
    for (int64_t i = 0; i < count(); ++i) {
      dx[i] = dy[i] * (gelu_ ? cpu::GeluGrad(saved[i]) : (saved[i] > 0 ? T(1) : T(0)));
    }
  }

  void BackwardWeight(const T*, const T*, const T*, const T*, const MicroBatch&, T*,
                      T*) const override {}

 private:
  int64_t count() const { return this->rows() * this->in_width(); }
  bool gelu_;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuActivation(const Layer& l, const ModelInput& in) {
  return std::make_unique<Activation<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuActivation<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuActivation<double>(const Layer&, const ModelInput&);

}  // namespace pp
