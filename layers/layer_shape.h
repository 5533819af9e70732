// What the CPU reference layers (layers/layer.h) and the CUDA layers (layers/cuda_layer.h)
// share: the shape of their buffers. Each reports how many values its params, saved, pending
// and work buffers hold, and the rows and widths of its input x and output y.
#pragma once

#include <cstdint>

namespace pp {

class LayerShape {
 public:
  virtual ~LayerShape() = default;
  LayerShape() = default;
  LayerShape(const LayerShape&) = delete;
  LayerShape& operator=(const LayerShape&) = delete;

  virtual int64_t param_count() const = 0;
  virtual int64_t saved_count() const = 0;
  virtual int64_t pending_count() const { return 0; }
  virtual int64_t workspace_count() const { return 0; }
  int64_t rows() const { return rows_; }
  int64_t in_width() const { return in_width_; }
  int64_t out_width() const { return out_width_; }
  // Values in y: rows x out_width, or 1 for a loss (its mean).
  virtual int64_t output_count() const { return rows_ * out_width_; }
  bool has_input_gradient() const { return in_width_ > 0; }

 protected:
  void SetShape(int64_t rows, int64_t in_width, int64_t out_width) {
    rows_ = rows;
    in_width_ = in_width;
    out_width_ = out_width;
  }

 private:
  int64_t rows_ = 0, in_width_ = 0, out_width_ = 0;
};

}  // namespace pp
