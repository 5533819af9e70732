// ReLU and GELU (tanh approximation) as a layer, plus the elementwise kernels the transformer
// block's MLPs use (GELU, squared ReLU, and the gated SwiGLU and GeGLU), all in fp32
// arithmetic. Layer layout as activation.cc: no params; saved: the input.
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaActivationSpec {
  int64_t rows = 0, width = 0;
  Activation act = Activation::kRelu;
};

using cuda::Blocks;
using cuda::FromFloat;
using cuda::kThreads;
using cuda::ToFloat;

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluC = 0.044715f;

__device__ __forceinline__ float Gelu(float x) {
  return 0.5f * x * (1.0f + tanhf(kGeluK * (x + kGeluC * x * x * x)));
}
__device__ __forceinline__ float GeluGrad(float x) {
  const float t = tanhf(kGeluK * (x + kGeluC * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluK * (1.0f + 3.0f * kGeluC * x * x);
}
__device__ __forceinline__ float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float Apply(Activation act, float x) {
  if (act == Activation::kGelu) return Gelu(x);
  if (act == Activation::kSilu) return x * Sigmoid(x);
  const float r = fmaxf(x, 0.0f);
  return act == Activation::kRelu2 ? r * r : r;
}
__device__ __forceinline__ float Slope(Activation act, float x) {
  if (act == Activation::kGelu) return GeluGrad(x);
  if (act == Activation::kSilu) {
    const float s = Sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
  }
  if (x <= 0.0f) return 0.0f;
  return act == Activation::kRelu2 ? 2.0f * x : 1.0f;
}

#define PP_GRID_LOOP(i, count)                                                         \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void ActivationForwardKernel(Activation act, const T* x, int64_t count, T* y) {
  PP_GRID_LOOP(i, count) { y[i] = FromFloat<T>(Apply(act, ToFloat(x[i]))); }
}

template <typename T>
__global__ void ActivationBackwardKernel(Activation act, const T* x, const T* dy,
                                         int64_t count, T* dx) {
  PP_GRID_LOOP(i, count) { dx[i] = FromFloat<T>(ToFloat(dy[i]) * Slope(act, ToFloat(x[i]))); }
}

template <typename T>
__global__ void GatedForwardKernel(Activation act, const T* gate, const T* up, int64_t count,
                                   T* out) {
  PP_GRID_LOOP(i, count) { out[i] = FromFloat<T>(Apply(act, ToFloat(gate[i])) * ToFloat(up[i])); }
}

template <typename T>
__global__ void GatedBackwardKernel(Activation act, const T* gate, const T* up, const T* dout,
                                    int64_t count, T* dgate, T* dup) {
  PP_GRID_LOOP(i, count) {
    const float g = ToFloat(gate[i]), u = ToFloat(up[i]), d = ToFloat(dout[i]);
    dgate[i] = FromFloat<T>(d * u * Slope(act, g));
    dup[i] = FromFloat<T>(d * Apply(act, g));
  }
}

#undef PP_GRID_LOOP

template <typename T>
class ActivationCuda final : public CudaLayer<T> {
 public:
  explicit ActivationCuda(const CudaActivationSpec& s) : act_(s.act) {
    this->SetShape(s.rows, s.width, s.width);
  }
  int64_t param_count() const override { return 0; }
  int64_t saved_count() const override { return count(); }

  Status Forward(CudaContext& ctx, const T*, const T* x, const CudaMicroBatch&, T* y, T* saved,
                 T*) const override {
    PP_CUDA_CHECK(cudaMemcpyAsync(saved, x, sizeof(T) * count(), cudaMemcpyDeviceToDevice,
                                  ctx.stream()));
    return ActivationForward<T>(ctx, act_, x, count(), y);
  }
  Status BackwardInput(CudaContext& ctx, const T*, const T* dy, const T* saved,
                       const CudaMicroBatch&, T* dx, T*, T*) const override {
    return ActivationBackward<T>(ctx, act_, saved, dy, count(), dx);
  }
  Status BackwardWeight(CudaContext&, const T*, const T*, const T*, const T*,
                        const CudaMicroBatch&, T*, T*) const override {
    return Status::Ok();
  }

 private:
  int64_t count() const { return this->rows() * this->in_width(); }
  Activation act_;
};

const char* ActivationRange(Activation act, bool forward) {
  switch (act) {
    case Activation::kGelu:
      return forward ? "Gelu.Forward" : "Gelu.Backward";
    case Activation::kRelu2:
      return forward ? "Relu2.Forward" : "Relu2.Backward";
    case Activation::kSilu:
      return forward ? "Silu.Forward" : "Silu.Backward";
    case Activation::kRelu:
      break;
  }
  return forward ? "Relu.Forward" : "Relu.Backward";
}

const char* GatedRange(Activation act, bool forward) {
  if (act == Activation::kSilu) return forward ? "Swiglu.Forward" : "Swiglu.Backward";
  return forward ? "Geglu.Forward" : "Geglu.Backward";
}

}  // namespace

template <typename T>
Status ActivationForward(CudaContext& ctx, Activation act, const T* x, int64_t count, T* y) {
  NvtxRange range(ActivationRange(act, true));
  ActivationForwardKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(act, x, count, y);
  PP_CUDA_CHECK_LAUNCH("ActivationForwardKernel");
  return Status::Ok();
}

template <typename T>
Status ActivationBackward(CudaContext& ctx, Activation act, const T* x, const T* dy,
                          int64_t count, T* dx) {
  NvtxRange range(ActivationRange(act, false));
  ActivationBackwardKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(act, x, dy, count,
                                                                             dx);
  PP_CUDA_CHECK_LAUNCH("ActivationBackwardKernel");
  return Status::Ok();
}

template <typename T>
Status GatedForward(CudaContext& ctx, Activation act, const T* gate, const T* up, int64_t count,
                    T* out) {
  NvtxRange range(GatedRange(act, true));
  GatedForwardKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(act, gate, up, count, out);
  PP_CUDA_CHECK_LAUNCH("GatedForwardKernel");
  return Status::Ok();
}

template <typename T>
Status GatedBackward(CudaContext& ctx, Activation act, const T* gate, const T* up, const T* dout,
                     int64_t count, T* dgate, T* dup) {
  NvtxRange range(GatedRange(act, false));
  GatedBackwardKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(act, gate, up, dout,
                                                                        count, dgate, dup);
  PP_CUDA_CHECK_LAUNCH("GatedBackwardKernel");
  return Status::Ok();
}

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaActivation(const Layer& l, const ModelInput& in) {
  const Activation act = l.op == LayerKind::kGelu ? Activation::kGelu : Activation::kRelu;
  return std::make_unique<ActivationCuda<T>>(CudaActivationSpec{in.rows(), l.in_width, act});
}

#define PP_INSTANTIATE(T)                                                                    \
  template Status ActivationForward<T>(CudaContext&, Activation, const T*, int64_t, T*);     \
  template Status ActivationBackward<T>(CudaContext&, Activation, const T*, const T*, int64_t, \
                                        T*);                                                 \
  template Status GatedForward<T>(CudaContext&, Activation, const T*, const T*, int64_t, T*); \
  template Status GatedBackward<T>(CudaContext&, Activation, const T*, const T*, const T*,     \
                                   int64_t, T*, T*);                                          \
  template std::unique_ptr<CudaLayer<T>> MakeCudaActivation<T>(const Layer&, const ModelInput&);
PP_INSTANTIATE(float)
PP_INSTANTIATE(__nv_bfloat16)
#undef PP_INSTANTIATE

}  // namespace pp
