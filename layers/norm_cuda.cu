// Layer norm and RMS norm (CUDA), eps 1e-5, statistics in fp32; layout as norm.cc.
// params: gamma (h), then beta (h) for layer norm. saved: x (rows x h), then mean (rows, layer
// norm only) and rstd (rows), rounded to T. One block per row for the forward and the input
// gradient; the weight gradient is a deterministic two-stage column reduction.
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaNormSpec {
  int64_t rows = 0, hidden = 0;
  bool rms = false;
};

using cuda::FromFloat;
using cuda::ToFloat;

constexpr float kNormEps = 1e-5f;
constexpr int kRowThreads = 256;

template <typename T>
__global__ void NormForwardKernel(bool rms, const T* x, const T* gamma, const T* beta, int64_t h,
                                  T* y, T* mean, T* rstd) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * h;
  float sum = 0.0f;
  if (!rms) {
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) sum += ToFloat(xr[i]);
  }
  const float mu = rms ? 0.0f : cuda::BlockSum(sum, scratch) / static_cast<float>(h);
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float d = ToFloat(xr[i]) - mu;
    sq += d * d;
  }
  const float rs = rsqrtf(cuda::BlockSum(sq, scratch) / static_cast<float>(h) + kNormEps);
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float xhat = (ToFloat(xr[i]) - mu) * rs;
    const float shift = rms ? 0.0f : ToFloat(beta[i]);
    y[row * h + i] = FromFloat<T>(xhat * ToFloat(gamma[i]) + shift);
  }
  if (threadIdx.x == 0) {
    if (mean != nullptr) mean[row] = FromFloat<T>(mu);
    rstd[row] = FromFloat<T>(rs);
  }
}

// g = dy * gamma; dx = rs * (g - mean(g) - xhat * mean(g * xhat)) (+ residual), mean(g) only
// for layer norm.
template <typename T>
__global__ void NormBackwardInputKernel(bool rms, const T* x, const T* gamma, const T* mean,
                                        const T* rstd, const T* dy, const T* residual, int64_t h,
                                        T* dx) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * h;
  const T* dyr = dy + row * h;
  const float mu = rms ? 0.0f : ToFloat(mean[row]);
  const float rs = ToFloat(rstd[row]);
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float g = ToFloat(dyr[i]) * ToFloat(gamma[i]);
    sum_g += g;
    sum_gx += g * (ToFloat(xr[i]) - mu) * rs;
  }
  const float mean_g = rms ? 0.0f : cuda::BlockSum(sum_g, scratch) / static_cast<float>(h);
  const float mean_gx = cuda::BlockSum(sum_gx, scratch) / static_cast<float>(h);
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float xhat = (ToFloat(xr[i]) - mu) * rs;
    const float g = ToFloat(dyr[i]) * ToFloat(gamma[i]);
    float v = rs * (g - mean_g - xhat * mean_gx);
    if (residual != nullptr) v += ToFloat(residual[row * h + i]);
    dx[row * h + i] = FromFloat<T>(v);
  }
}

// The weight-gradient terms of one element: (dy * xhat, dy).
template <typename T>
struct NormWeightTerm {
  bool rms;
  const T *x, *mean, *rstd, *dy;
  int64_t h;
  __device__ float2 operator()(int64_t r, int64_t j) const {
    const float mu = rms ? 0.0f : ToFloat(mean[r]);
    const float xhat = (ToFloat(x[r * h + j]) - mu) * ToFloat(rstd[r]);
    const float g = ToFloat(dy[r * h + j]);
    return make_float2(g * xhat, g);
  }
};

template <typename T>
class NormCuda final : public CudaLayer<T> {
 public:
  explicit NormCuda(const CudaNormSpec& s) : h_(s.hidden), rms_(s.rms) {
    this->SetShape(s.rows, s.hidden, s.hidden);
  }
  int64_t param_count() const override { return rms_ ? h_ : 2 * h_; }
  int64_t saved_count() const override { return this->rows() * (h_ + (rms_ ? 1 : 2)); }
  int64_t workspace_count() const override {
    return FloatsAsT<T>(ColumnSumPartials(this->rows(), h_));
  }

  Status Forward(CudaContext& ctx, const T* params, const T* x, const CudaMicroBatch&, T* y,
                 T* saved, T*) const override {
    const int64_t rows = this->rows();
    PP_CUDA_CHECK(cudaMemcpyAsync(saved, x, sizeof(T) * rows * h_, cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    return NormForward<T>(ctx, rms_, x, params, rms_ ? nullptr : params + h_, rows, h_, y,
                          Mean(saved), Rstd(saved));
  }
  Status BackwardInput(CudaContext& ctx, const T* params, const T* dy, const T* saved,
                       const CudaMicroBatch&, T* dx, T*, T*) const override {
    return NormBackwardInput<T>(ctx, rms_, saved, params, Mean(saved), Rstd(saved), dy, nullptr,
                                this->rows(), h_, dx);
  }
  Status BackwardWeight(CudaContext& ctx, const T*, const T* dy, const T* saved, const T*,
                        const CudaMicroBatch&, T* dparams, T* work) const override {
    return NormBackwardWeight<T>(ctx, rms_, saved, Mean(saved), Rstd(saved), dy, this->rows(),
                                 h_, dparams, rms_ ? nullptr : dparams + h_,
                                 reinterpret_cast<float*>(work));
  }

 private:
  T* Mean(const T* saved) const {
    return rms_ ? nullptr : const_cast<T*>(saved) + this->rows() * h_;
  }
  T* Rstd(const T* saved) const {
    return const_cast<T*>(saved) + this->rows() * h_ + (rms_ ? 0 : this->rows());
  }
  int64_t h_;
  bool rms_;
};

}  // namespace

template <typename T>
Status NormForward(CudaContext& ctx, bool rms, const T* x, const T* gamma, const T* beta,
                   int64_t rows, int64_t h, T* y, T* mean, T* rstd) {
  NvtxRange range(rms ? "RmsNorm.Forward" : "LayerNorm.Forward");
  NormForwardKernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, ctx.stream()>>>(
      rms, x, gamma, beta, h, y, mean, rstd);
  PP_CUDA_CHECK_LAUNCH("NormForwardKernel");
  return Status::Ok();
}

template <typename T>
Status NormBackwardInput(CudaContext& ctx, bool rms, const T* x, const T* gamma, const T* mean,
                         const T* rstd, const T* dy, const T* residual, int64_t rows, int64_t h,
                         T* dx) {
  NvtxRange range(rms ? "RmsNorm.BackwardInput" : "LayerNorm.BackwardInput");
  NormBackwardInputKernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, ctx.stream()>>>(
      rms, x, gamma, mean, rstd, dy, residual, h, dx);
  PP_CUDA_CHECK_LAUNCH("NormBackwardInputKernel");
  return Status::Ok();
}

template <typename T>
Status NormBackwardWeight(CudaContext& ctx, bool rms, const T* x, const T* mean, const T* rstd,
                          const T* dy, int64_t rows, int64_t h, T* dgamma, T* dbeta,
                          float* partial) {
  NvtxRange range(rms ? "RmsNorm.BackwardWeight" : "LayerNorm.BackwardWeight");
  cuda::LaunchColumnReduce<T>(NormWeightTerm<T>{rms, x, mean, rstd, dy, h}, rows, h, partial,
                              dgamma, rms ? nullptr : dbeta, ctx.stream());
  PP_CUDA_CHECK_LAUNCH("ColumnReduce");
  return Status::Ok();
}

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaNorm(const Layer& l, const ModelInput& in) {
  const bool rms = l.op == LayerKind::kRmsNorm;
  return std::make_unique<NormCuda<T>>(CudaNormSpec{in.rows(), l.hidden, rms});
}

#define PP_INSTANTIATE(T)                                                                    \
  template Status NormForward<T>(CudaContext&, bool, const T*, const T*, const T*, int64_t,  \
                                 int64_t, T*, T*, T*);                                       \
  template Status NormBackwardInput<T>(CudaContext&, bool, const T*, const T*, const T*,     \
                                       const T*, const T*, const T*, int64_t, int64_t, T*);  \
  template Status NormBackwardWeight<T>(CudaContext&, bool, const T*, const T*, const T*,    \
                                        const T*, int64_t, int64_t, T*, T*, float*);         \
  template std::unique_ptr<CudaLayer<T>> MakeCudaNorm<T>(const Layer&, const ModelInput&);
PP_INSTANTIATE(float)
PP_INSTANTIATE(__nv_bfloat16)
#undef PP_INSTANTIATE

}  // namespace pp
