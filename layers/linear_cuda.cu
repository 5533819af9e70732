// Linear (CUDA): y = x W + b, the layout of linear.cc. params: W (in x out, row-major), then b
// (out) when the layer has a bias. saved: x. workspace: fp32 partial column sums for db.
// Forward is one cuBLASLt matmul with the bias in its epilogue.
#include "layers/cuda_check.h"
#include "layers/cuda_gemm.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaLinearSpec {
  int64_t rows = 0, in = 0, out = 0;
  bool bias = true;
};

template <typename T>
class LinearCuda final : public CudaLayer<T> {
 public:
  explicit LinearCuda(const CudaLinearSpec& s) : in_(s.in), out_(s.out), bias_(s.bias) {
    this->SetShape(s.rows, s.in, s.out);
  }
  int64_t param_count() const override { return in_ * out_ + (bias_ ? out_ : 0); }
  int64_t saved_count() const override { return this->rows() * in_; }
  int64_t workspace_count() const override {
    return bias_ ? FloatsAsT<T>(ColumnSumPartials(this->rows(), out_)) : 0;
  }

  Status Forward(CudaContext& ctx, const T* params, const T* x, const CudaMicroBatch&, T* y,
                 T* saved, T*) const override {
    PP_CUDA_CHECK(cudaMemcpyAsync(saved, x, sizeof(T) * this->rows() * in_,
                                  cudaMemcpyDeviceToDevice, ctx.stream()));
    return LinearForward<T>(ctx, x, params, Bias(params), nullptr, this->rows(), in_, out_, y);
  }
  Status BackwardInput(CudaContext& ctx, const T* params, const T* dy, const T*,
                       const CudaMicroBatch&, T* dx, T*, T*) const override {
    return LinearBackwardInput<T>(ctx, dy, params, this->rows(), in_, out_, dx);
  }
  Status BackwardWeight(CudaContext& ctx, const T*, const T* dy, const T* saved, const T*,
                        const CudaMicroBatch&, T* dparams, T* work) const override {
    return LinearBackwardWeight<T>(ctx, saved, dy, this->rows(), in_, out_, dparams,
                                   Bias(dparams), reinterpret_cast<float*>(work));
  }

 private:
  T* Bias(const T* params) const {
    return bias_ ? const_cast<T*>(params) + in_ * out_ : nullptr;
  }
  int64_t in_, out_;
  bool bias_;
};

}  // namespace

template <typename T>
Status LinearForward(CudaContext& ctx, const T* x, const T* w, const T* b, const T* residual,
                     int64_t rows, int64_t in, int64_t out, T* y) {
  NvtxRange range("Linear.Forward");
  GemmArgs g;
  g.m = rows;
  g.n = out;
  g.k = in;
  g.a = x;
  g.lda = in;
  g.b = w;
  g.ldb = out;
  g.d = y;
  g.ldd = out;
  if (residual != nullptr) {
    g.c = residual;
    g.ldc = out;
    g.beta = 1;
  }
  g.bias = b;
  g.in = g.out = CudaType<T>();
  return Gemm(ctx, g);
}

template <typename T>
Status LinearBackwardInput(CudaContext& ctx, const T* dy, const T* w, int64_t rows, int64_t in,
                           int64_t out, T* dx, bool accumulate) {
  NvtxRange range("Linear.BackwardInput");
  GemmArgs g;  // dx = dy W^T
  g.trans_b = true;
  g.m = rows;
  g.n = in;
  g.k = out;
  g.beta = accumulate ? 1.0f : 0.0f;
  g.a = dy;
  g.lda = out;
  g.b = w;
  g.ldb = out;
  g.d = dx;
  g.ldd = in;
  g.in = g.out = CudaType<T>();
  return Gemm(ctx, g);
}

template <typename T>
Status LinearBackwardWeight(CudaContext& ctx, const T* x, const T* dy, int64_t rows, int64_t in,
                            int64_t out, T* dw, T* db, float* partial) {
  NvtxRange range("Linear.BackwardWeight");
  GemmArgs g;  // dW += x^T dy
  g.trans_a = true;
  g.m = in;
  g.n = out;
  g.k = rows;
  g.beta = 1;
  g.a = x;
  g.lda = in;
  g.b = dy;
  g.ldb = out;
  g.d = dw;
  g.ldd = out;
  g.in = g.out = CudaType<T>();
  PP_RETURN_IF_ERROR(Gemm(ctx, g));
  if (db == nullptr) return Status::Ok();
  return ColumnSumAccumulate<T>(ctx, dy, rows, out, db, partial);
}

#define PP_INSTANTIATE(T)                                                                     \
  template Status LinearForward<T>(CudaContext&, const T*, const T*, const T*, const T*,      \
                                   int64_t, int64_t, int64_t, T*);                            \
  template Status LinearBackwardInput<T>(CudaContext&, const T*, const T*, int64_t, int64_t,  \
                                         int64_t, T*, bool);                                  \
  template Status LinearBackwardWeight<T>(CudaContext&, const T*, const T*, int64_t, int64_t, \
                                          int64_t, T*, T*, float*);
PP_INSTANTIATE(float)
PP_INSTANTIATE(__nv_bfloat16)
#undef PP_INSTANTIATE

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaLinear(const Layer& l, const ModelInput& in) {
  return std::make_unique<LinearCuda<T>>(CudaLinearSpec{in.rows(), l.in, l.out, l.bias});
}
template std::unique_ptr<CudaLayer<float>> MakeCudaLinear<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CudaLayer<__nv_bfloat16>> MakeCudaLinear<__nv_bfloat16>(
    const Layer&, const ModelInput&);

}  // namespace pp
