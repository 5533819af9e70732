// MakeCudaLayer: the factory of the layer's kind (cuda_layers.h), and the host-side parts of
// CudaLayer (parameter upload). Compiled by the host compiler.
#include <cuda_bf16.h>

#include <string>
#include <vector>

#include "core/model.h"
#include "layers/cuda_check.h"
#include "layers/cuda_layers.h"
#include "layers/layer.h"

namespace pp {
namespace {

template <typename T>
T FromFloatHost(float v) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    return __float2bfloat16(v);
  }
}

// One case per row of PP_LAYER_KINDS (core/layer_kinds.h).
template <typename T>
std::unique_ptr<CudaLayer<T>> MakeKind(const Layer& l, const ModelInput& in) {
  switch (l.op) {
#define PP_CUDA_FACTORY_CASE(Name, Impl) \
  case LayerKind::k##Name:               \
    return MakeCuda##Impl<T>(l, in);
    PP_LAYER_KINDS(PP_CUDA_FACTORY_CASE)
#undef PP_CUDA_FACTORY_CASE
  }
  return nullptr;
}

// What the CUDA layers do not implement yet beyond what the reference refuses: "" when the
// layer is available.
std::string CudaMissing(const Layer& l) {
  if (l.mtp || l.streams > 1) return "multi-token prediction (mtp)";
  if (l.op != LayerKind::kTransformerBlock) return "";
  if (l.head_dim * l.heads != l.hidden) return "a head_dim other than hidden / heads";
  if (l.qkv_bias != l.bias) return "a qkv_bias that differs from bias";
  return "";
}

}  // namespace

template <typename T>
Status CudaLayer<T>::Init(CudaContext& ctx, T* params, const float* host_values) const {
  const int64_t count = param_count();
  if (count == 0) return Status::Ok();
  std::vector<T> staged(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) staged[i] = FromFloatHost<T>(host_values[i]);
  PP_CUDA_CHECK(cudaMemcpyAsync(params, staged.data(), sizeof(T) * count, cudaMemcpyHostToDevice,
                                ctx.stream()));
  return ctx.Synchronize();  // `staged` must outlive the copy
}

template <typename T>
Status CudaLayer<T>::Init(CudaContext& ctx, T* params, uint64_t seed) const {
  if (!host_init_) return Status::Error("CudaLayer::Init: the layer has no initialiser");
  std::vector<float> values(static_cast<size_t>(param_count()));
  host_init_(values.data(), seed);
  return Init(ctx, params, values.data());
}

template <typename T>
Result<std::unique_ptr<CudaLayer<T>>> MakeCudaLayer(const Layer& layer, const ModelInput& input) {
  // The reference checks the shapes and supplies the initial values.
  Result<std::unique_ptr<CpuLayer<float>>> ref = MakeCpuLayer<float>(layer, input);
  if (!ref.ok()) return ref.status();
  if (const std::string missing = CudaMissing(layer); !missing.empty()) {
    return Status::Error("layer \"" + layer.name + "\": " + missing +
                         " is not available yet in the CUDA layers (the cpu and analytic "
                         "backends model it)");
  }
  std::unique_ptr<CudaLayer<T>> made = MakeKind<T>(layer, input);
  if (made == nullptr) return Status::Error("layer \"" + layer.name + "\": unknown op");
  std::shared_ptr<const CpuLayer<float>> init(std::move(*ref));
  made->set_host_init([init](float* params, uint64_t seed) { init->Init(params, seed); });
  return made;
}

template class CudaLayer<float>;
template class CudaLayer<__nv_bfloat16>;
template Result<std::unique_ptr<CudaLayer<float>>> MakeCudaLayer<float>(const Layer&,
                                                                        const ModelInput&);
template Result<std::unique_ptr<CudaLayer<__nv_bfloat16>>> MakeCudaLayer<__nv_bfloat16>(
    const Layer&, const ModelInput&);

}  // namespace pp
