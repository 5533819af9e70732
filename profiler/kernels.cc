#include "profiler/kernels.h"

#include "core/kind_entry.h"

namespace pp {

KernelShape KernelShapeOf(const ModelInput& input, DType dtype, const KernelOptions& options) {
  KernelShape sh = KernelShapeOf(input, dtype);
  sh.par = options.par;
  sh.flash_attention = options.flash_attention;
  return sh;
}

double KernelTrafficBytes(DType dtype) {
  return dtype == DType::kFp8 ? static_cast<double>(DTypeBytes(DType::kBf16))
                              : static_cast<double>(DTypeBytes(dtype));
}

LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype,
                         const KernelOptions& options) {
  LayerKernels k;
  KernelShape sh = KernelShapeOf(input, dtype, options);
  sh.e = KernelTrafficBytes(dtype);
  KindEntry(layer.op).AddKernels(layer, sh, &k);
  if (dtype == DType::kFp8) {
    const double quantized = static_cast<double>(DTypeBytes(DType::kFp8)) / sh.e;
    for (auto* comm : {&k.forward_comm, &k.backward_input_comm, &k.backward_weight_comm}) {
      for (Collective& c : *comm) {
        if (c.group == CommGroup::kTensor && c.kind == CollectiveKind::kAllGather) {
          c.bytes *= quantized;
        }
      }
    }
  }
  return k;
}

}  // namespace pp
