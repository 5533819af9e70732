#include "profiler/kernels.h"

#include "core/kind_entry.h"

namespace pp {

LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype) {
  LayerKernels k;
  KindEntry(layer.op).AddKernels(layer, KernelShapeOf(input, dtype), &k);
  return k;
}

}  // namespace pp
