// Losses (CUDA), layout as loss.cc; y is one value, the mean loss over rows, summed in fp32 in
// a fixed order (deterministic).
//   cross_entropy: x = logits (rows x V), batch.labels; saved: softmax(x) (rows x V);
//                  dx = dy * (softmax - onehot(label)) / rows. One block per row.
//   mse:           x (rows x w), batch.targets (rows x w of T); y = mean of (x - t)^2;
//                  saved: x - t; dx = dy * 2 (x - t) / (rows * w).
// A label outside [0, V) adds no loss and no one-hot term. workspace: fp32 partial sums.
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaLossSpec {
  int64_t rows = 0, width = 0;
  bool cross_entropy = false;  // else mse
};

using cuda::Blocks;
using cuda::FromFloat;
using cuda::kThreads;
using cuda::ToFloat;

constexpr int kRowThreads = 512;
constexpr int kMsePartials = 512;  // blocks of the MSE's first reduction stage

template <typename T>
__global__ void CrossEntropyForwardKernel(const T* x, const int32_t* labels, int64_t w, T* probs,
                                          float* row_loss) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * w;
  float top = -INFINITY;
  for (int64_t i = threadIdx.x; i < w; i += blockDim.x) top = fmaxf(top, ToFloat(xr[i]));
  top = cuda::BlockMax(top, scratch);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < w; i += blockDim.x) sum += expf(ToFloat(xr[i]) - top);
  sum = cuda::BlockSum(sum, scratch);
  const float inv = 1.0f / sum;
  for (int64_t i = threadIdx.x; i < w; i += blockDim.x) {
    probs[row * w + i] = FromFloat<T>(expf(ToFloat(xr[i]) - top) * inv);
  }
  if (threadIdx.x == 0) {
    const int64_t label = labels[row];
    row_loss[row] = label >= 0 && label < w ? logf(sum) + top - ToFloat(xr[label]) : 0.0f;
  }
}

template <typename T>
__global__ void CrossEntropyBackwardKernel(const T* dy, const T* probs, const int32_t* labels,
                                           int64_t rows, int64_t w, T* dx) {
  const float scale = ToFloat(dy[0]) / static_cast<float>(rows);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * w;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / w, c = i % w;
    const float hot = labels[r] == c ? 1.0f : 0.0f;
    dx[i] = FromFloat<T>(scale * (ToFloat(probs[i]) - hot));
  }
}

// saved = x - t; partial[block] = sum of squares of this block's share.
template <typename T>
__global__ void MseForwardKernel(const T* x, const T* t, int64_t count, T* diff, float* partial) {
  __shared__ float scratch[32];
  float sum = 0.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float d = ToFloat(x[i]) - ToFloat(t[i]);
    diff[i] = FromFloat<T>(d);
    sum += d * d;
  }
  sum = cuda::BlockSum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

template <typename T>
__global__ void MseBackwardKernel(const T* dy, const T* diff, int64_t count, T* dx) {
  const float scale = 2.0f * ToFloat(dy[0]) / static_cast<float>(count);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dx[i] = FromFloat<T>(scale * ToFloat(diff[i]));
  }
}

// y[0] = sum(values) / divisor, one block.
template <typename T>
__global__ void MeanKernel(const float* values, int64_t count, float divisor, T* y) {
  __shared__ float scratch[32];
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += values[i];
  sum = cuda::BlockSum(sum, scratch);
  if (threadIdx.x == 0) y[0] = FromFloat<T>(sum / divisor);
}

template <typename T>
class LossCuda final : public CudaLayer<T> {
 public:
  explicit LossCuda(const CudaLossSpec& s) : ce_(s.cross_entropy) {
    this->SetShape(s.rows, s.width, 1);
  }
  int64_t output_count() const override { return 1; }
  int64_t param_count() const override { return 0; }
  int64_t saved_count() const override { return count(); }
  int64_t workspace_count() const override {
    return FloatsAsT<T>(ce_ ? this->rows() : kMsePartials);
  }

  Status Forward(CudaContext& ctx, const T*, const T* x, const CudaMicroBatch& batch, T* y,
                 T* saved, T* work) const override {
    NvtxRange range(ce_ ? "CrossEntropy.Forward" : "Mse.Forward");
    float* partial = reinterpret_cast<float*>(work);
    const int64_t rows = this->rows();
    if (ce_) {
      CrossEntropyForwardKernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, ctx.stream()>>>(
          x, batch.labels, this->in_width(), saved, partial);
      PP_CUDA_CHECK_LAUNCH("CrossEntropyForwardKernel");
      MeanKernel<T><<<1, 1024, 0, ctx.stream()>>>(partial, rows, static_cast<float>(rows), y);
    } else {
      MseForwardKernel<T><<<kMsePartials, kThreads, 0, ctx.stream()>>>(
          x, static_cast<const T*>(batch.targets), count(), saved, partial);
      PP_CUDA_CHECK_LAUNCH("MseForwardKernel");
      MeanKernel<T><<<1, 1024, 0, ctx.stream()>>>(partial, kMsePartials,
                                                  static_cast<float>(count()), y);
    }
    PP_CUDA_CHECK_LAUNCH("MeanKernel");
    return Status::Ok();
  }

  Status BackwardInput(CudaContext& ctx, const T*, const T* dy, const T* saved,
                       const CudaMicroBatch& batch, T* dx, T*, T*) const override {
    NvtxRange range(ce_ ? "CrossEntropy.BackwardInput" : "Mse.BackwardInput");
    if (ce_) {
      CrossEntropyBackwardKernel<T><<<Blocks(count()), kThreads, 0, ctx.stream()>>>(
          dy, saved, batch.labels, this->rows(), this->in_width(), dx);
      PP_CUDA_CHECK_LAUNCH("CrossEntropyBackwardKernel");
    } else {
      MseBackwardKernel<T><<<Blocks(count()), kThreads, 0, ctx.stream()>>>(dy, saved, count(), dx);
      PP_CUDA_CHECK_LAUNCH("MseBackwardKernel");
    }
    return Status::Ok();
  }

  Status BackwardWeight(CudaContext&, const T*, const T*, const T*, const T*,
                        const CudaMicroBatch&, T*, T*) const override {
    return Status::Ok();
  }

 private:
  int64_t count() const { return this->rows() * this->in_width(); }
  bool ce_;
};

}  // namespace

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaLoss(const Layer& l, const ModelInput& in) {
  const bool cross_entropy = l.op == LayerKind::kCrossEntropy;
  return std::make_unique<LossCuda<T>>(CudaLossSpec{in.rows(), l.in_width, cross_entropy});
}
template std::unique_ptr<CudaLayer<float>> MakeCudaLoss<float>(const Layer&, const ModelInput&);
template std::unique_ptr<CudaLayer<__nv_bfloat16>> MakeCudaLoss<__nv_bfloat16>(
    const Layer&, const ModelInput&);

}  // namespace pp
