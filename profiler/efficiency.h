// The time of kernels and collectives as a device achieves them (docs/cost-model.md
// "Efficiency" gives every formula and the source of every number):
//
//   matrix product  max(flops / (peak x gemm_eff x waves x depth) + fixed,
//                       bytes / (bw x mem_eff)) + launch,  depth = k / (k + k0)
//   attention       max(flops / (peak x attn_eff[direction]), bytes / (bw x mem_eff)) + launch
//   memory-bound    bytes / (bw x mem_eff) + launch
//   collective      CollectiveMs on the group's link (node bus inside a node, else network;
//                   an all-to-all across nodes splits its peers between the two)
//
// where waves is the wave quantization of the product's output tiles over the SMs and, for a
// calibrated device (DeviceEfficiency::gemm_points), the nearest measured product's rate
// replaces peak x gemm_eff x waves x depth and the fixed time. Rates::kPeak is the roofline of the
// datasheet peaks alone: max(flops / peak, bytes / bw), no overhead, as the analytic profile was
// before efficiency.
//
// A layer part (its forward, its input gradient, its weight gradient) lasts the sum of its
// kernels plus the exposed part of each of its collectives: all of it, or, when the
// collective names a kernel of the same part in `hidden_behind`, max(0, t_comm - t_kernel).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/kernel_cost.h"
#include "core/model.h"
#include "core/parallelism.h"
#include "core/status.h"
#include "profiler/device_table.h"

namespace pp {

enum class Rates { kPeak, kAchieved };
std::string_view RatesName(Rates rates);  // "peak", "achieved"
std::optional<Rates> ParseRates(std::string_view name);

// Which part of a layer a kernel belongs to: attention's achieved rate differs by direction.
enum class Direction { kForward, kBackward };

// Fraction of the SMs a product's output tiles keep busy over its waves: with T tiles of the
// best of the cuBLAS tile shapes 256x128, 128x128 and 128x64 on S SMs, T / (ceil(T / S) x S);
// 1 when sm_count is 0.
double WaveEfficiency(const Kernel& kernel, int sm_count);

// The dtype a kernel of a `dtype` model computes in: fp8 training runs the linear layers'
// products in fp8 and its fused attention in bf16 (Transformer Engine's default; fp8
// attention is an option it offers, which the tool does not model yet, so the fp8 attention
// fractions of a device are not used), and so are unfused attention's products (attention_*,
// plain bf16 batched products) and the MoE router's (router*, a plain linear in the model's
// bf16, Megatron-LM's TopKRouter); otherwise `dtype`.
DType ComputeDType(const Kernel& kernel, DType dtype);

// The rate (FLOP/s) a matrix product or attention kernel of `dtype` achieves (before the
// memory bound, the product's fixed time and the launch overhead), at its ComputeDType: a
// measured point's, or for a product peak x gemm_eff x waves x k / (k + k0) with k0 the
// device's gemm depth of that dtype. Not for memory-bound kernels.
double AchievedFlops(const Kernel& kernel, const DeviceSpec& device, DType dtype,
                     Direction direction);

// The fixed time (ms) a matrix product (KernelClass::kGemm) pays beside its work and the
// launch: the device's gemm_fixed_ms, or 0 when a measured point gives its rate.
double ProductFixedMs(const Kernel& kernel, const DeviceSpec& device, DType dtype);

// One kernel's time in ms under `rates`.
double KernelTimeMs(const Kernel& kernel, const DeviceSpec& device, DType dtype,
                    Direction direction, Rates rates);

// One collective's time in ms: CollectiveMs over GroupSize(layout, group) ranks on the node's
// bus when GroupInsideNode, else on the network (CollectiveLink); an all-to-all across nodes
// is AllToAllAcrossNodesMs, part over the node's bus and part over the network at once.
double CollectiveTimeMs(const Collective& collective, const DeviceSpec& device,
                        const ParallelLayout& layout);

// One layer part: its kernels' times plus the exposed part of each collective.
double PartMs(const std::vector<Kernel>& kernels, const std::vector<Collective>& comm,
              const DeviceSpec& device, DType dtype, Direction direction, Rates rates,
              const ParallelLayout& layout);

// A layer's three parts in ms (LayerKernels' forward, input and weight gradient).
struct LayerPartsMs {
  double forward_ms = 0;
  double backward_input_ms = 0;
  double backward_weight_ms = 0;
};

// The three parts of `k` under `layout`: each PartMs of its own kernels and collectives,
// except where the expert all-to-all overlap applies (ExpertOverlapApplies) and the layer
// exchanges tokens with its experts. There the forward of one micro-batch runs beside the
// backward of another, layer by layer, the dispatch and combine collectives on their own
// stream (Megatron-LM's combined 1F1B, megatron/core/models/common/
// model_chunk_schedule_plan.py, TransformerLayerSchedulePlan.run), in three phases:
//
//   comm: combine (backward) | dispatch (forward), then dispatch (backward) | combine (fwd)
//   comp: outside (forward)  | experts (backward), experts' weight gradients, experts (fwd)
//                                                                   | outside (backward)
//
// "outside" is a part's kernels other than the routed experts' (Kernel::routed_expert:
// attention, router, permutations, shared experts) with its other collectives; the forward's
// experts wait for its dispatch and the backward's dispatch for its experts. Each phase lasts
// its longer stream; then the weight gradients outside the experts. What the pair takes beyond
// its kernels is charged to the forward and the input gradient in proportion to their token
// exchange; the weight-gradient part keeps its kernels.
//
// Then, with the layout's overlap_tp_dgrad, each input-gradient collective that names a
// weight-gradient kernel (qkv's and fc1's reductions, under qkv_wgrad and fc1_wgrad) hides
// under it: the input gradient loses the lesser of the two times. That holds for a full
// backward, which runs the weight gradient right after (`plan` refuses the overlap with a
// schedule that splits the backward).
LayerPartsMs PartsMs(const LayerKernels& k, const DeviceSpec& device, DType dtype, Rates rates,
                     const ParallelLayout& layout);

// Ok when `device` can run matrix products of `dtype`; else one line naming the device
// ("a100 has no fp8 tensor cores ...").
Status CheckDType(const DeviceSpec& device, DType dtype);

}  // namespace pp
