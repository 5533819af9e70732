#include "profiler/analytic.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>

#include "core/kind_entry.h"
#include "core/units.h"
#include "core/version.h"

namespace pp {
namespace {

// Converts a byte count to an integer, or fails naming the layer and the quantity.
Status CheckedBytes(const Layer& l, const char* what, double bytes, uint64_t* out) {
  if (!(bytes >= 0) || bytes > static_cast<double>(kMaxBytes)) {
    char value[32];
    std::snprintf(value, sizeof value, "%.3g", bytes);
    return Status::Error("layer " + DescribeValue(Json(l.name)) + ": " + what + " of " + value +
                         " bytes exceed the limit of 2^53 bytes (reduce the " +
                         "micro-batch size, sequence length or widths)");
  }
  *out = static_cast<uint64_t>(bytes);
  return Status::Ok();
}

}  // namespace

double KernelMs(const Kernel& kernel, const DeviceSpec& device, DType dtype) {
  return KernelTimeMs(kernel, device, dtype, Direction::kForward, Rates::kPeak);
}

double KernelsMs(const std::vector<Kernel>& kernels, const DeviceSpec& device, DType dtype) {
  double ms = 0;
  for (const Kernel& k : kernels) ms += KernelMs(k, device, dtype);
  return ms;
}

LayerMemory AnalyticLayerMemory(const Layer& layer, const ModelInput& input, DType dtype,
                                const KernelOptions& options, std::optional<DType> products) {
  const LayerKindEntry& kind = KindEntry(layer.op);
  KernelShape sh = KernelShapeOf(LayerInput(layer, input), dtype, options);
  const double e = sh.e;  // the parameters'
  sh.e = KernelTrafficBytes(dtype);
  sh.e_inputs = static_cast<double>(DTypeBytes(products.value_or(dtype)));
  LayerMemory m;
  m.param_bytes = static_cast<double>(kind.RankParamCount(layer, options.par)) * e;
  m.expert_param_bytes = static_cast<double>(kind.RankExpertParamCount(layer, options.par)) * e;
  m.activation_bytes = kind.ActivationBytes(layer, sh);
  m.output_bytes = kind.OutputBytes(layer, sh);
  for (int i = 0; i < kRecomputeModuleCount; ++i) {
    m.module_bytes[i] = kind.ModuleBytes(layer, sh, static_cast<RecomputeModule>(i));
  }
  return m;
}

Result<LayerCost> AnalyticLayerCost(const Layer& layer, const ModelInput& input, DType dtype,
                                    const DeviceSpec& device, const KernelOptions& options,
                                    const LayerTiming& timing) {
  PP_RETURN_IF_ERROR(CheckDType(device, dtype));
  // The dtype the layer's kernels run in (LayerTiming::fp8_blocks_only).
  const DType kernels =
      dtype == DType::kFp8 && timing.fp8_blocks_only && layer.op != LayerKind::kTransformerBlock
          ? DType::kBf16
          : dtype;
  const LayerMemory memory = AnalyticLayerMemory(layer, input, dtype, options, kernels);
  LayerCost cost;
  PP_RETURN_IF_ERROR(CheckedBytes(layer, "parameters", memory.param_bytes, &cost.param_bytes));
  PP_RETURN_IF_ERROR(CheckedBytes(layer, "expert parameters", memory.expert_param_bytes,
                                  &cost.expert_param_bytes));
  PP_RETURN_IF_ERROR(
      CheckedBytes(layer, "activations", memory.activation_bytes, &cost.activation_bytes));
  PP_RETURN_IF_ERROR(CheckedBytes(layer, "output", memory.output_bytes, &cost.output_bytes));
  for (int i = 0; i < kRecomputeModuleCount; ++i) {
    PP_RETURN_IF_ERROR(CheckedBytes(layer, "a recomputation module's activations",
                                    memory.module_bytes[i], &cost.module_bytes[i]));
  }

  LayerKernels k = ListKernels(layer, input, kernels, options);
  ParallelLayout layout;
  if (timing.layout) {
    layout = *timing.layout;
    // Accumulated apart: the new gradient (as the kernels move it) read, the main gradient
    // read and written, once per parameter of this rank and micro-batch.
    if (!layout.fused_wgrad_accumulation && memory.param_bytes > 0) {
      const double elements = memory.param_bytes / static_cast<double>(DTypeBytes(dtype));
      const double traffic = KernelTrafficBytes(kernels);
      const double main =
          static_cast<double>(MainGradientBytes(static_cast<int64_t>(traffic), layout.zero));
      Kernel add;
      add.name = "weight_grad_accumulate";
      add.bytes = elements * (traffic + 2 * main);
      k.backward_weight.push_back(add);
    }
  } else {
    layout.tp = options.par.tp;
    layout.cp = options.par.cp;
    layout.ep = options.par.ep;
    layout.etp = options.par.etp;
    layout.sequence_parallel = options.par.sequence_parallel;
  }
  const LayerPartsMs parts = PartsMs(k, device, kernels, timing.rates, layout);
  cost.forward_ms = parts.forward_ms;
  cost.backward_input_ms = parts.backward_input_ms;
  cost.backward_weight_ms = parts.backward_weight_ms;
  for (int i = 0; i < kRecomputeModuleCount; ++i) {
    if (cost.module_bytes[i] == 0) continue;  // a module the layer does not have
    const RecomputeModules module = RecomputeModules().With(static_cast<RecomputeModule>(i));
    std::vector<Kernel> again;
    std::vector<Collective> comm;
    for (const Kernel& kernel : k.forward) {
      if (module.Covers(kernel.modules)) again.push_back(kernel);
    }
    for (const Collective& c : k.forward_comm) {
      if (module.Covers(c.modules)) comm.push_back(c);
    }
    cost.module_ms[i] =
        PartMs(again, comm, device, kernels, Direction::kForward, timing.rates, layout);
  }
  cost.forward_flops = TotalFlops(k.forward);
  cost.backward_flops = TotalFlops(k.backward_input) + TotalFlops(k.backward_weight);
  cost.forward_bytes = TotalBytes(k.forward);
  cost.backward_bytes = TotalBytes(k.backward_input) + TotalBytes(k.backward_weight);
  return cost;
}

Result<Profile> AnalyticProfile(const Model& model, const DeviceSpec& device,
                                const AnalyticOptions& options) {
  ModelInput input = model.input;
  if (options.micro_batch_size) {
    const int64_t mbs = *options.micro_batch_size;
    if (mbs < 1 || mbs > kMaxMicroBatchSize) {
      return Status::Error("micro-batch size must be between 1 and " +
                           std::to_string(kMaxMicroBatchSize) + " (got " + std::to_string(mbs) +
                           ")");
    }
    input.micro_batch_size = mbs;
  }
  const DType dtype = options.dtype.value_or(model.dtype);
  PP_RETURN_IF_ERROR(CheckDType(device, dtype));

  Profile p;
  p.model = model.name;
  p.backend = "analytic";
  p.device.name = std::string(device.name);
  p.device.memory_bytes = device.memory_bytes;
  p.micro_batch_size = input.micro_batch_size;
  p.dtype = dtype;
  p.link.bandwidth_bytes_per_s = device.link_bytes_per_s;
  p.link.latency_ms = device.link_latency_ms;
  p.tool_version = kToolVersion;

  bool has_blocks = false;
  for (const Layer& layer : model.layers) has_blocks |= layer.op == LayerKind::kTransformerBlock;
  // Repeated layers (a spec's "repeat") are costed once: each layer reuses the previous
  // layer's cost when their shapes agree.
  const Layer* previous = nullptr;
  LayerCost c;
  p.layers.reserve(model.layers.size());
  for (const Layer& layer : model.layers) {
    if (previous == nullptr || !SameShape(*previous, layer)) {
      Result<LayerCost> cost =
          AnalyticLayerCost(layer, input, dtype, device,
                            KernelOptions{options.layout.shard(), options.flash_attention,
                                          options.layout.fused_cross_entropy},
                            LayerTiming{options.rates, options.layout, has_blocks});
      if (!cost.ok()) return cost.status();
      c = *cost;
    }
    previous = &layer;
    LayerProfile lp;
    lp.name = layer.name;
    lp.op = std::string(LayerKindName(layer.op));
    lp.mtp = layer.mtp;
    lp.forward_ms = c.forward_ms;
    lp.backward_ms = c.backward_ms();
    lp.backward_input_ms = c.backward_input_ms;
    lp.backward_weight_ms = c.backward_weight_ms;
    lp.param_bytes = c.param_bytes;
    lp.expert_param_bytes = c.expert_param_bytes;
    if (!layer.tied_to.empty()) {
      lp.tied_to = layer.tied_to;
      lp.tied_param_bytes = TiedParamBytes(layer, options.layout.shard(), lp.param_bytes);
    }
    lp.activation_bytes = c.activation_bytes;
    lp.output_bytes = c.output_bytes;
    for (int i = 0; i < kRecomputeModuleCount; ++i) {
      if (c.module_bytes[i] > 0) lp.modules[i] = ModuleFigures{c.module_ms[i], c.module_bytes[i]};
    }
    p.layers.push_back(std::move(lp));
  }
  return p;
}

}  // namespace pp
