// The analytic profiler backend: per-layer time and memory from the layer's shapes and a
// device's rates, with no GPU involved.
//
// Time (profiler/efficiency.h, docs/cost-model.md "Efficiency"): each kernel of a layer part
// (kernels.h lists them) at the rate the device achieves for its class and shape, plus a
// launch overhead, plus the exposed part of the part's collectives on their groups' links.
// With Rates::kPeak each kernel is the datasheet roofline instead,
//   max(flops / peak rate, bytes / memory bandwidth),
// with no overhead (a lower bound). A layer's forward_ms covers its forward kernels and
// collectives; backward_input_ms and backward_weight_ms likewise; backward_ms is their sum.
//
// Memory is exact from the shapes (docs/analytic.md gives every term): param_bytes,
// activation_bytes (kept for the backward, per micro-batch) and output_bytes (sent to the
// next stage, per micro-batch). Every byte count is computed in double; a count above
// kMaxBytes (2^53) is an error naming the layer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/profile.h"
#include "core/status.h"
#include "profiler/device_table.h"
#include "profiler/efficiency.h"
#include "profiler/kernels.h"

namespace pp {

struct AnalyticOptions {
  std::optional<int64_t> micro_batch_size;  // replaces the model's input.micro_batch_size
  std::optional<DType> dtype;               // replaces the model's dtype
  // The layout the layers run under: each layer is costed as one rank of its tensor, context
  // and expert groups (ParallelLayout::shard), its collectives on the links of those groups.
  ParallelLayout layout;
  bool flash_attention = false;  // fused attention kernels (profiler/kernels.h)
  // Achieved rates (what real runs reach) or the datasheet peaks (a lower bound).
  Rates rates = Rates::kAchieved;
};

// Peak-rate roofline time of one kernel in milliseconds: max(flops / peak, bytes / bw).
double KernelMs(const Kernel& kernel, const DeviceSpec& device, DType dtype);
// Sum of KernelMs over a list.
double KernelsMs(const std::vector<Kernel>& kernels, const DeviceSpec& device, DType dtype);

// Memory of one layer in bytes, per micro-batch, as doubles (exact below 2^53):
//   param_bytes      LayerParamCount x e (a tied head counts its own full copy);
//   activation_bytes what the layer keeps for its backward;
//   output_bytes     rows x out_width x e; a loss outputs one fp32 scalar (4 bytes).
struct LayerMemory {
  double param_bytes = 0;
  double expert_param_bytes = 0;  // of param_bytes, the routed experts'
  double activation_bytes = 0;
  double output_bytes = 0;
  // Of activation_bytes, what each recomputation module drops (LayerKindEntry::ModuleBytes),
  // by RecomputeModule.
  std::array<double, kRecomputeModuleCount> module_bytes{};
};
// Parameters at DTypeBytes(dtype); what the layer keeps and passes on at
// KernelTrafficBytes(dtype), the linear layers' inputs kept for their weight gradients at
// DTypeBytes(products), the dtype its products run in (LayerTiming::fp8_blocks_only): an fp8
// block keeps them quantized, Transformer Engine's saved inputs
// (transformer_engine/pytorch/module/layernorm_linear.py and linear.py), and the rest in bf16.
LayerMemory AnalyticLayerMemory(const Layer& layer, const ModelInput& input, DType dtype,
                                const KernelOptions& options = {},
                                std::optional<DType> products = std::nullopt);

// Everything the analytic backend knows about one layer. Times in ms; flops and bytes are
// the totals of each part's kernels.
struct LayerCost {
  double forward_ms = 0;
  double backward_input_ms = 0;
  double backward_weight_ms = 0;
  double backward_ms() const { return backward_input_ms + backward_weight_ms; }
  double forward_flops = 0;
  double backward_flops = 0;  // input and weight parts together
  double forward_bytes = 0;
  double backward_bytes = 0;
  uint64_t param_bytes = 0;
  uint64_t expert_param_bytes = 0;
  uint64_t activation_bytes = 0;
  uint64_t output_bytes = 0;
  // Each recomputation module's forward (its kernels and collectives, Kernel::modules) and
  // what it keeps, by RecomputeModule: what selective recomputation of it runs again and drops.
  std::array<double, kRecomputeModuleCount> module_ms{};
  std::array<uint64_t, kRecomputeModuleCount> module_bytes{};
};

// How AnalyticLayerCost times the kernels: the rates, and the layout whose groups carry the
// collectives (unset: tp, cp and ep from the kernel options, 8 GPUs per node).
struct LayerTiming {
  Rates rates = Rates::kAchieved;
  std::optional<ParallelLayout> layout;
  // An fp8 model with transformer blocks runs only the blocks in fp8: Megatron-LM enters
  // Transformer Engine's fp8 context layer by layer inside the transformer block
  // (megatron/core/transformer/transformer_block.py), and its output layer is a bf16
  // ColumnParallelLinear (megatron/core/models/gpt/gpt_model.py). Set, the kernels of every
  // other layer of an fp8 model are timed as bf16 (what it keeps still counts as fp8).
  bool fp8_blocks_only = false;
};

// Costs `layer` (from a loaded Model) for one micro-batch of `input`. Fails, naming the
// layer, when a byte count exceeds kMaxBytes, and when the device has no rate for `dtype`.
Result<LayerCost> AnalyticLayerCost(const Layer& layer, const ModelInput& input, DType dtype,
                                    const DeviceSpec& device, const KernelOptions& options = {},
                                    const LayerTiming& timing = {});

// A profile of every layer of `model` (expanded names, op names from LayerKindName) with
// backend "analytic", the device's name, memory and link from `device`, and
// backward_input_ms / backward_weight_ms filled in. Fails on a micro-batch size outside
// [1, 2^20], a byte count above kMaxBytes, or a dtype the device has no rate for (fp8 on an
// A100).
Result<Profile> AnalyticProfile(const Model& model, const DeviceSpec& device,
                                const AnalyticOptions& options);

}  // namespace pp
