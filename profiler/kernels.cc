#include "profiler/kernels.h"

#include <array>
#include <string_view>

#include "core/kind_entry.h"

namespace pp {
namespace {

// The linear layers' products, by their forward kernel's name: whether tensor parallelism
// splits them by columns (a sequence-parallel input is gathered before them) or by rows (the
// gradient of a sequence-parallel output is gathered before their input gradient), and
// whether a norm kernel right before them takes the amax of their input.
struct LinearProduct {
  std::string_view name;
  bool column = false;
  bool row = false;
  bool after_norm = false;
};
constexpr LinearProduct kLinearProducts[] = {
    {"qkv", true, false, true},
    {"proj", false, true, false},
    {"fc1", true, false, true},
    {"gate_up", true, false, true},
    {"fc2", false, true, false},
    {"linear", true, false, false},
    {"shared_fc1", true, false, false},
    {"shared_gate_up", true, false, false},
    {"shared_fc2", false, true, false},
    {"expert_fc1", false, false, false},
    {"expert_gate_up", false, false, false},
    {"expert_fc2", false, false, false},
    // Multi-latent attention: the down projections (whole on every rank) read the gathered
    // input; the up projections follow their latent's norm (Megatron-Core fuses it into them).
    {"q_down", true, false, false},
    {"kv_down", true, false, false},
    {"q_proj", true, false, false},
    {"q_up", false, false, true},
    {"kv_up", false, false, true},
};

const LinearProduct* FindLinearProduct(const Kernel& kernel) {
  if (kernel.cls != KernelClass::kGemm) return nullptr;
  for (const LinearProduct& p : kLinearProducts) {
    if (p.name == kernel.name) return &p;
  }
  return nullptr;  // the router's, unfused attention's
}

// The quantization of one fp8 product operand of `elements` (AddFp8Casts).
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
  const double tp = par.tp > 1 ? par.tp : 1;
  const bool sp = par.tp > 1 && par.sequence_parallel;
  std::vector<Kernel> forward_casts, backward_casts;
  for (const Kernel& g : k->forward) {
    const LinearProduct* p = FindLinearProduct(g);
    if (p == nullptr) continue;
    const double batch = g.batch > 1 ? g.batch : 1;
    const double input = batch * g.m * g.k / (sp && p->column ? tp : 1);
    const double grad = batch * g.m * g.n / (sp && p->row ? tp : 1);
    AddCasts(&forward_casts, {"fp8_amax", "fp8_scale", "fp8_cast"}, input, p->after_norm);
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
  sh.fused_cross_entropy = options.fused_cross_entropy;
  return sh;
}

double KernelTrafficBytes(DType dtype) {
  return dtype == DType::kFp8 ? static_cast<double>(DTypeBytes(DType::kBf16))
                              : static_cast<double>(DTypeBytes(dtype));
}

LayerKernels ListKernels(const Layer& layer, const ModelInput& input, DType dtype,
                         const KernelOptions& options) {
  LayerKernels k;
  KernelShape sh = KernelShapeOf(LayerInput(layer, input), dtype, options);
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
