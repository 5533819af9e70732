// Factories of the CUDA layers, one per implementation file (layers/<impl>_cuda.cu), named by
// PP_LAYER_KINDS (core/layer_kinds.h); MakeCudaLayer (cuda_layer.cc) picks one by kind. Each
// reads the plain Layer of core/layer_kinds.h (no model or JSON headers reach nvcc). T is
// float or __nv_bfloat16.
#pragma once

#include <memory>

#include "core/layer_kinds.h"
#include "layers/cuda_layer.h"

namespace pp {

#define PP_DECLARE_CUDA_FACTORY(Name, Impl) \
  template <typename T>                     \
  std::unique_ptr<CudaLayer<T>> MakeCuda##Impl(const Layer& l, const ModelInput& in);
PP_LAYER_KINDS(PP_DECLARE_CUDA_FACTORY)
#undef PP_DECLARE_CUDA_FACTORY

}  // namespace pp
