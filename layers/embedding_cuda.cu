// Embedding (CUDA): y[r] = token[id[r]] + position[r mod seq] + token_type[0], the layout of
// embedding.cc. params: token table vocab x h, then positions x h, then token_types x h.
// saved: the ids as T (rows; kept for layout parity with the reference; exact in fp32 only,
// so the backward reads the ids from batch.tokens, which the caller keeps alive anyway).
// An id outside [0, vocab) contributes nothing (no out-of-bounds read). No input gradient.
#include "layers/cuda_check.h"
#include "layers/cuda_device.h"
#include "layers/cuda_kernels.h"
#include "layers/cuda_layers.h"

namespace pp {
namespace {

// The layer's shapes, read from the model's Layer by the factory below.
struct CudaEmbeddingSpec {
  int64_t batch = 0, seq = 0;  // rows = batch * seq
  int64_t vocab = 0, hidden = 0, positions = 0, token_types = 0;
};

using cuda::Blocks;
using cuda::FromFloat;
using cuda::kThreads;
using cuda::ToFloat;

struct Shape {
  int64_t rows, seq, vocab, h, positions, types;
};

template <typename T>
__global__ void EmbeddingForwardKernel(Shape s, const T* params, const int32_t* tokens, T* y,
                                       T* saved) {
  const T* pos = params + s.vocab * s.h;
  const T* type = pos + s.positions * s.h;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < s.rows * s.h;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / s.h, c = i % s.h;
    const int64_t id = tokens[r];
    float v = id >= 0 && id < s.vocab ? ToFloat(params[id * s.h + c]) : 0.0f;
    if (r % s.seq < s.positions) v += ToFloat(pos[(r % s.seq) * s.h + c]);
    if (s.types > 0) v += ToFloat(type[c]);
    y[i] = FromFloat<T>(v);
    if (c == 0) saved[r] = FromFloat<T>(static_cast<float>(id));
  }
}

// dtoken[id[r]] += dy[r]; rows sharing an id meet in atomics.
template <typename T>
__global__ void TokenGradKernel(Shape s, const int32_t* tokens, const T* dy, T* dtable) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < s.rows * s.h;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / s.h, c = i % s.h;
    const int64_t id = tokens[r];
    if (id >= 0 && id < s.vocab) atomicAdd(dtable + id * s.h + c, dy[i]);
  }
}

// dpos[p] += sum over the batch of dy[b * seq + p] (p < min(seq, positions)).
template <typename T>
__global__ void PositionGradKernel(Shape s, const T* dy, T* dpos) {
  const int64_t used = s.seq < s.positions ? s.seq : s.positions;
  const int64_t batch = s.rows / s.seq;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < used * s.h;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < batch; ++b) acc += ToFloat(dy[b * s.seq * s.h + i]);
    dpos[i] = FromFloat<T>(ToFloat(dpos[i]) + acc);
  }
}

template <typename T>
class EmbeddingCuda final : public CudaLayer<T> {
 public:
  explicit EmbeddingCuda(const CudaEmbeddingSpec& s)
      : shape_{s.batch * s.seq, s.seq, s.vocab, s.hidden, s.positions, s.token_types} {
    this->SetShape(s.batch * s.seq, 0, s.hidden);
  }
  int64_t param_count() const override {
    return (shape_.vocab + shape_.positions + shape_.types) * shape_.h;
  }
  int64_t saved_count() const override { return this->rows(); }
  int64_t workspace_count() const override {
    return shape_.types > 0 ? FloatsAsT<T>(ColumnSumPartials(this->rows(), shape_.h)) : 0;
  }

  Status Forward(CudaContext& ctx, const T* params, const T*, const CudaMicroBatch& batch, T* y,
                 T* saved, T*) const override {
    NvtxRange range("Embedding.Forward");
    EmbeddingForwardKernel<T><<<Blocks(shape_.rows * shape_.h), kThreads, 0, ctx.stream()>>>(
        shape_, params, batch.tokens, y, saved);
    PP_CUDA_CHECK_LAUNCH("EmbeddingForwardKernel");
    return Status::Ok();
  }

  Status BackwardInput(CudaContext&, const T*, const T*, const T*, const CudaMicroBatch&, T*, T*,
                       T*) const override {
    return Status::Ok();
  }

  Status BackwardWeight(CudaContext& ctx, const T*, const T* dy, const T*, const T*,
                        const CudaMicroBatch& batch, T* dparams, T* work) const override {
    NvtxRange range("Embedding.BackwardWeight");
    const int64_t count = shape_.rows * shape_.h;
    TokenGradKernel<T><<<Blocks(count), kThreads, 0, ctx.stream()>>>(shape_, batch.tokens, dy,
                                                                       dparams);
    PP_CUDA_CHECK_LAUNCH("TokenGradKernel");
    T* dpos = dparams + shape_.vocab * shape_.h;
    if (shape_.positions > 0) {
      PositionGradKernel<T><<<Blocks(shape_.seq * shape_.h), kThreads, 0, ctx.stream()>>>(
          shape_, dy, dpos);
      PP_CUDA_CHECK_LAUNCH("PositionGradKernel");
    }
    if (shape_.types > 0) {
      PP_RETURN_IF_ERROR(ColumnSumAccumulate<T>(ctx, dy, shape_.rows, shape_.h,
                                                dpos + shape_.positions * shape_.h,
                                                reinterpret_cast<float*>(work)));
    }
    return Status::Ok();
  }

 private:
  Shape shape_;
};

}  // namespace

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaEmbedding(const Layer& l, const ModelInput& in) {
  return std::make_unique<EmbeddingCuda<T>>(CudaEmbeddingSpec{
      in.micro_batch_size, in.seq_len, l.vocab, l.hidden, l.positions, l.token_types});
}
template std::unique_ptr<CudaLayer<float>> MakeCudaEmbedding<float>(const Layer&,
                                                                    const ModelInput&);
template std::unique_ptr<CudaLayer<__nv_bfloat16>> MakeCudaEmbedding<__nv_bfloat16>(
    const Layer&, const ModelInput&);

}  // namespace pp
