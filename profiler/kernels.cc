#include "profiler/kernels.h"

#include "core/kind_entry.h"

namespace pp {

KernelShape KernelShapeOf(const ModelInput& input, DType dtype, const KernelOptions& options) {
  KernelShape sh = KernelShapeOf(input, dtype);
  sh.par = options.par;
  sh.flash_attention = options.flash_attention;
  return sh;
}

LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype,
                         const KernelOptions& options) {
  LayerKernels k;
  KindEntry(layer.op).AddKernels(layer, KernelShapeOf(input, dtype, options), &k);
  return k;
}

}  // namespace pp
