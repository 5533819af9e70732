// Losses (CPU reference). y is one value, the mean loss over rows.
//   cross_entropy: x = logits (rows x V), batch.labels; saved: softmax(x) (rows x V);
//                  dx = dy * (softmax - onehot(label)) / rows.
//   mse:           x (rows x w), batch.targets (rows x w of T); y = mean over all elements of
//                  (x - t)^2; saved: x - t; dx = dy * 2 (x - t) / (rows * w).
#include <algorithm>
#include <cmath>

#include "layers/cpu_layers.h"

namespace pp {
namespace {

template <typename T>
class Loss final : public CpuLayer<T> {
 public:
  Loss(const Layer& l, const ModelInput& in) : ce_(l.op == LayerKind::kCrossEntropy) {
    this->SetShape(in.rows(), l.in_width, 1);
  }
  int64_t output_count() const override { return 1; }
  int64_t param_count() const override { return 0; }
  int64_t saved_count() const override { return count(); }
  void Init(T*, uint64_t) const override {}

  void Forward(const T*, const T* x, const MicroBatch& batch, T* y, T* saved,
               T*) const override {
    const int64_t rows = this->rows(), w = this->in_width();
    double total = 0;
    if (ce_) {
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * w;
        const double top = *std::max_element(xr, xr + w);
        double sum = 0;
        for (int64_t i = 0; i < w; ++i) sum += std::exp(xr[i] - top);
        for (int64_t i = 0; i < w; ++i) saved[r * w + i] = static_cast<T>(std::exp(xr[i] - top) / sum);
        total += std::log(sum) + top - xr[batch.labels[r]];
      }
      y[0] = static_cast<T>(total / static_cast<double>(rows));
    } else {
      const T* t = static_cast<const T*>(batch.targets);
      for (int64_t i = 0; i < count(); ++i) {
        saved[i] = x[i] - t[i];
        total += static_cast<double>(saved[i]) * saved[i];
      }
      y[0] = static_cast<T>(total / static_cast<double>(count()));
    }
  }

  void BackwardInput(const T*, const T* dy, const T* saved, const MicroBatch& batch, T* dx, T*,
                     T*) const override {
    const int64_t rows = this->rows(), w = this->in_width();
    if (ce_) {
      const T scale = dy[0] / static_cast<T>(rows);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < w; ++i) {
          dx[r * w + i] = scale * (saved[r * w + i] - (i == batch.labels[r] ? T(1) : T(0)));
        }
      }
    } else {
      const T scale = dy[0] * T(2) / static_cast<T>(count());
      for (int64_t i = 0; i < count(); ++i) dx[i] = scale * saved[i];
    }
  }

  void BackwardWeight(const T*, const T*, const T*, const T*, const MicroBatch&, T*,
                      T*) const override {}

 private:
  int64_t count() const { return this->rows() * this->in_width(); }
  bool ce_;
};

}  // namespace

template <typename T>
std::unique_ptr<CpuLayer<T>> MakeCpuLoss(const Layer& l, const ModelInput& in) {
  return std::make_unique<Loss<T>>(l, in);
}
template std::unique_ptr<CpuLayer<float>> MakeCpuLoss<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CpuLayer<double>> MakeCpuLoss<double>(const Layer&, const ModelInput&);

}  // namespace pp
