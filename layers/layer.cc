#include "layers/cpu_layers.h"

namespace pp {

template <typename T>
Result<std::unique_ptr<CpuLayer<T>>> MakeCpuLayer(const Layer& layer, const ModelInput& input) {
  if (input.micro_batch_size < 1 || (input.seq_len < 1 && input.features < 1)) {
    return Status::Error("layer \"" + layer.name + "\": the model input has no rows");
  }
  switch (layer.op) {
    case LayerKind::kEmbedding:
      return MakeCpuEmbedding<T>(layer, input);
    case LayerKind::kLinear:
      return MakeCpuLinear<T>(layer, input);
    case LayerKind::kRelu:
    case LayerKind::kGelu:
      return MakeCpuActivation<T>(layer, input);
    case LayerKind::kLayerNorm:
    case LayerKind::kRmsNorm:
      return MakeCpuNorm<T>(layer, input);
    case LayerKind::kTransformerBlock:
      return MakeCpuTransformerBlock<T>(layer, input);
    case LayerKind::kCrossEntropy:
    case LayerKind::kMse:
      return MakeCpuLoss<T>(layer, input);
  }
  return Status::Error("layer \"" + layer.name + "\": unknown op");
}

template Result<std::unique_ptr<CpuLayer<float>>> MakeCpuLayer<float>(const Layer&, const ModelInput&);
template Result<std::unique_ptr<CpuLayer<double>>> MakeCpuLayer<double>(const Layer&, const ModelInput&);

}  // namespace pp
