#include "layers/cpu_layers.h"

namespace pp {

template <typename T>
Result<std::unique_ptr<CpuLayer<T>>> MakeCpuLayer(const Layer& layer, const ModelInput& input) {
  if (input.micro_batch_size < 1 || (input.seq_len < 1 && input.features < 1)) {
    return Status::Error("layer \"" + layer.name + "\": the model input has no rows");
  }
  switch (layer.op) {
    case Op::kEmbedding:
      return MakeCpuEmbedding<T>(layer, input);
    case Op::kLinear:
      return MakeCpuLinear<T>(layer, input);
    case Op::kRelu:
    case Op::kGelu:
      return MakeCpuActivation<T>(layer, input);
    case Op::kLayerNorm:
    case Op::kRmsNorm:
      return MakeCpuNorm<T>(layer, input);
    case Op::kTransformerBlock:
      return MakeCpuTransformerBlock<T>(layer, input);
    case Op::kCrossEntropy:
    case Op::kMse:
      return MakeCpuLoss<T>(layer, input);
  }
  return Status::Error("layer \"" + layer.name + "\": unknown op");
}

template Result<std::unique_ptr<CpuLayer<float>>> MakeCpuLayer<float>(const Layer&, const ModelInput&);
template Result<std::unique_ptr<CpuLayer<double>>> MakeCpuLayer<double>(const Layer&, const ModelInput&);

}  // namespace pp
