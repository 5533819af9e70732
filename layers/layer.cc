// MakeCpuLayer: one case per row of PP_LAYER_KINDS (core/layer_kinds.h).
#include "layers/cpu_layers.h"

namespace pp {

template <typename T>
Result<std::unique_ptr<CpuLayer<T>>> MakeCpuLayer(const Layer& layer, const ModelInput& input) {
  if (input.micro_batch_size < 1 || (input.seq_len < 1 && input.features < 1)) {
    return Status::Error("layer \"" + layer.name + "\": the model input has no rows");
  }
  switch (layer.op) {
#define PP_CPU_FACTORY_CASE(Name, Impl) \
  case LayerKind::k##Name:              \
    return MakeCpu##Impl<T>(layer, input);
    PP_LAYER_KINDS(PP_CPU_FACTORY_CASE)
#undef PP_CPU_FACTORY_CASE
  }
  return Status::Error("layer \"" + layer.name + "\": unknown op");
}

template Result<std::unique_ptr<CpuLayer<float>>> MakeCpuLayer<float>(const Layer&, const ModelInput&);
template Result<std::unique_ptr<CpuLayer<double>>> MakeCpuLayer<double>(const Layer&, const ModelInput&);

}  // namespace pp
