#include "profiler/kernels.h"

#include <algorithm>
#include <array>

#include "core/kind_entry.h"

namespace pp {
namespace {

bool Named(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The quantizations of one fp8 product operand of `elements` (Fp8CastKernels).
void AddCasts(std::vector<Kernel>* part, const std::array<std::string_view, 3>& names,
              double elements, bool amax_fused) {
  const double bf16 = static_cast<double>(DTypeBytes(DType::kBf16));
  const double fp8 = static_cast<double>(DTypeBytes(DType::kFp8));
  if (!amax_fused) part->push_back(MemoryKernel(names[0], elements * bf16));
  part->push_back(MemoryKernel(names[1], 0));
  part->push_back(MemoryKernel(names[2], elements * (bf16 + 2 * fp8)));
}

}  // namespace

void AddFp8Casts(const ShardDegrees& par, LayerKernels* k) {
  const double tp = std::max(1, par.tp);
  const bool sp = par.tp > 1 && par.sequence_parallel;
  std::vector<Kernel> forward_casts, backward_casts;
  for (const Kernel& g : k->forward) {
    if (g.cls != KernelClass::kGemm ||
        !Named(g.name, {"qkv", "proj", "fc1", "gate_up", "fc2", "linear", "shared_fc1",
                        "shared_gate_up", "shared_fc2", "expert_fc1", "expert_gate_up",
                        "expert_fc2"})) {
      continue;  // not a linear layer's product: the router, unfused attention's products
    }
    const double batch = std::max(1.0, g.batch);
    // Column-parallel products gather their input after quantizing it, row-parallel ones the
    // gradient of their output: the rank quantizes its sequence-parallel share.
    const bool column = Named(g.name, {"qkv", "fc1", "gate_up", "linear", "shared_fc1",
                                       "shared_gate_up"});
    const bool row = Named(g.name, {"proj", "fc2", "shared_fc2"});
    const double input = batch * g.m * g.k / (sp && column ? tp : 1);
    const double grad = batch * g.m * g.n / (sp && row ? tp : 1);
    const bool after_norm = Named(g.name, {"qkv", "fc1", "gate_up"});
    AddCasts(&forward_casts, {"fp8_amax", "fp8_scale", "fp8_cast"}, input, after_norm);
    AddCasts(&backward_casts, {"fp8_grad_amax", "fp8_grad_scale", "fp8_grad_cast"}, grad,
             false);
  }
  k->forward.insert(k->forward.end(), forward_casts.begin(), forward_casts.end());
  k->backward_input.insert(k->backward_input.end(), backward_casts.begin(),
                           backward_casts.end());
}

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
    AddFp8Casts(options.par, &k);
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
