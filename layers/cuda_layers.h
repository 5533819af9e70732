// Factories of the CUDA layers, one per file (layers/*_cuda.cu); MakeCudaLayer (cuda_layer.cc)
// reads the model's Layer and calls one. The specs carry plain shapes so the .cu files need no
// model or JSON headers.
#pragma once

#include <cstdint>
#include <memory>

#include "layers/cuda_layer.h"

namespace pp {

struct CudaEmbeddingSpec {
  int64_t batch = 0, seq = 0;  // rows = batch * seq
  int64_t vocab = 0, hidden = 0, positions = 0, token_types = 0;
};
struct CudaLinearSpec {
  int64_t rows = 0, in = 0, out = 0;
  bool bias = true;
};
struct CudaActivationSpec {
  int64_t rows = 0, width = 0;
  bool gelu = false;  // else relu
};
struct CudaNormSpec {
  int64_t rows = 0, hidden = 0;
  bool rms = false;
};
struct CudaLossSpec {
  int64_t rows = 0, width = 0;
  bool cross_entropy = false;  // else mse
};
struct CudaBlockSpec {
  int64_t batch = 0, seq = 0, hidden = 0, heads = 0, ffn = 0;
  bool rms = false, swiglu = false, bias = true, causal = false, rotary = false;
};

template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaEmbedding(const CudaEmbeddingSpec& s);  // embedding_cuda.cu
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaLinear(const CudaLinearSpec& s);  // linear_cuda.cu
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaActivation(const CudaActivationSpec& s);  // activation_cuda.cu
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaNorm(const CudaNormSpec& s);  // norm_cuda.cu
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaLoss(const CudaLossSpec& s);  // loss_cuda.cu
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeCudaTransformerBlock(const CudaBlockSpec& s);  // transformer_block_cuda.cu

}  // namespace pp
