// MakeCpuLayer: one case per row of PP_LAYER_KINDS (core/layer_kinds.h).
#include <string>

#include "layers/cpu_layers.h"

namespace pp {
namespace {

// What the reference layers do not implement yet (the analytic backend models it): "" when
// the layer is available.
std::string CpuMissing(const Layer& l, const ModelInput& input) {
  if (l.mtp || l.streams > 1) return "multi-token prediction (mtp)";
  if (l.experts > 0) return "a mixture-of-experts MLP (experts > 0)";
  if (l.kv_lora > 0) return "multi-latent attention (kv_lora > 0)";
  // A window as long as the sequence is the whole causal prefix.
  if (l.window > 0 && l.window < input.seq_len) return "a sliding window shorter than seq_len";
  if (l.qk_norm) return "qk_norm";
  if (l.dropout > 0) return "dropout";
  return "";
}

}  // namespace

template <typename T>
Result<std::unique_ptr<CpuLayer<T>>> MakeCpuLayer(const Layer& layer, const ModelInput& input) {
  if (input.micro_batch_size < 1 || (input.seq_len < 1 && input.features < 1)) {
    return Status::Error("layer \"" + layer.name + "\": the model input has no rows");
  }
  if (const std::string missing = CpuMissing(layer, input); !missing.empty()) {
    return Status::Error("layer \"" + layer.name + "\": " + missing +
                         " is not available yet in the CPU and CUDA layers (the analytic "
                         "backend models it)");
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
