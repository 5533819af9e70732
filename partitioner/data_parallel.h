// Data parallelism and ZeRO in the model of a training step (docs/cost-model.md, "Data
// parallelism and ZeRO"): the training state a stage keeps per parameter, sharded over the
// dp data-parallel ranks by ZeRO stage; the gradient synchronisation and parameter gathers
// of each stage on the data group's link, and the part of them the backward (or the next
// forward) does not hide; and the optimizer step.
//
// Training state per parameter (partitioner/cost_model.h StateBytes; e = bytes of the profile's
// dtype; Adam):
//   zero 0:     16 bytes replicated (weights e, gradients e, the fp32 master copy and two fp32
//               moments 16 - 2e), as today's state multiplier;
//   zero >= 1:  Megatron's distributed optimizer, which keeps fp32 main gradients: weights e,
//               gradients 4, optimizer state 12 (8 when e = 4: the weights are the master
//               copy); zero 1 shards the optimizer state over dp, zero 2 also the gradients,
//               zero 3 also the weights.
// SGD keeps weights and gradients (e each), no optimizer state; `none` the weights only.
//
// The routed experts' parameters (LayerProfile::expert_param_bytes) have a data parallelism
// of their own: Megatron-LM keeps them in buffers of their own, reduced and sharded over the
// expert-data-parallel group (expert_dp = tp x cp x dp / (ep x etp) ranks, ep x etp apart), so
// their state shards over expert_dp, their collectives run over that group, and ZeRO's
// sharding of them stops at it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/parallelism.h"
#include "core/plan.h"
#include "core/profile.h"
#include "partitioner/cost_model.h"
#include "profiler/device_table.h"

namespace pp {

using BusLink = GroupLink;

// The device table's entry for the profile's device (by its name or key), or nullptr.
const DeviceSpec* ProfileDevice(const Profile& profile);

// The link between neighbouring pipeline stages under `layout`: the profile's own link when
// the pipeline group stays inside one node, else the network's bus bandwidth and latency
// (the profile's link when its device is not in the device table). With the scatter/gather
// of stage transfers (PipelineScatterGatherApplies), the link a whole boundary activation
// effectively crosses: 1 / bandwidth = 1 / (tp x bw) + (tp - 1) / (tp x gather bus), the
// gather bus that of an all-gather over the tensor group (CollectiveLink), and the latency
// that link's plus the all-gather's tp - 1 steps.
Link PipelineLink(const ParallelLayout& layout, const Profile& profile);

// The data-parallel side of a layout: its data group (dp ranks) and the routed experts' own
// group (CommGroup::kExpertData, expert_dp ranks), each with its link, and its ZeRO stage.
// A group's link is CollectiveLink (core/parallelism.h) of a ring collective over it on the
// profile's device; a profile whose device is not in the device table (a CPU profile) uses
// the profile's link for both. Every figure of `all` parameter bytes, `expert` of them the
// experts', runs the rest over the data group and the experts' over theirs, one after the
// other.
struct DataGroups {
  int zero = 0;
  int dp = 1, expert_dp = 1;
  BusLink link, expert_link;
  // Gradient bytes per parameter byte (GradientScale of the profile's dtype).
  double grad_scale = 1;
  bool Any() const { return dp > 1 || expert_dp > 1; }
  // The gradient synchronisation: zero 0 an all-reduce; zero 1, 2 and 3 a reduce-scatter
  // (0 over one rank).
  double GradientSyncMs(double all, double expert) const;
  // The all-gather of updated parameters after the optimizer step (zero 1 and 2); 0
  // otherwise (zero 0 has every parameter; zero 3 gathers per layer, see below).
  double ParamGatherMs(double all, double expert) const;
  // One of ZeRO 3's per-layer collectives (all-gather or reduce-scatter) of layer `l`.
  double LayerMs(CollectiveKind kind, const LayerProfile& l) const;
};
DataGroups DataGroupsOf(const ParallelLayout& layout, const Profile& profile);

// Gradient bytes per parameter byte of a `dtype` profile: an fp8 model's parameter bytes are
// fp8 (Megatron-Bridge's fp8 recipes keep and gather the parameters in fp8, fp8_param_gather)
// and its weight gradients bf16, reduced so (grad_reduce_in_fp32 off): 2; else 1.
double GradientScale(DType dtype);

// ZeRO 3: each layer's parameters are all-gathered before its forward and again before its
// backward, and its gradients reduce-scattered after its backward, every micro-batch (the
// experts' over the expert-data-parallel group, after the others). The
// gathers are prefetched (issued while the previous layer computes), so a layer's forward
// lasts max(forward, all-gather) and its backward max(backward, all-gather + reduce-scatter).
// Returns the profile with those times (backward_input_ms / backward_weight_ms scaled with
// the backward); the profile itself when zero < 3 or dp = 1.
Profile WithParameterGathers(const Profile& profile, const ParallelLayout& layout);

// Milliseconds of the optimizer step over `param_bytes`, `expert_bytes` of them the routed
// experts' (memory bound: Adam reads and writes the fp32 master weights and both moments,
// reads the fp32 gradient and writes the weights, 30 bytes per parameter; SGD 3e; sharded from
// zero 1, over dp and the experts' over expert_dp); 0 when the profile's device is unknown.
double OptimizerStepMs(double param_bytes, Optimizer optimizer, const ParallelLayout& layout,
                       const Profile& profile, double expert_bytes = 0);

// What one pipeline device adds after the last micro-batch's backward.
struct DeviceSync {
  double gradient_ms = 0;  // whole gradient synchronisation
  double gradient_exposed_ms = 0;
  double gather_ms = 0;  // zero 1/2 parameter all-gather
  double gather_exposed_ms = 0;
  double optimizer_ms = 0;
  // A tied output layer on another device than its embedding: the all-reduce of their shared
  // weight's gradients between the two devices, after the backward (exposed whole).
  double tied_ms = 0;
  double exposed_ms() const {
    return gradient_exposed_ms + gather_exposed_ms + optimizer_ms + tied_ms;
  }
};

// The all-reduce of a tied output layer's and its embedding's shared gradients between the
// pipeline devices that hold them (Megatron-LM's embedding group: the first and last stage),
// `tied_bytes` of parameters, their gradients GradientScale times that, over 2 ranks on the
// node's link when the pipeline group stays inside a node, else the network's (the profile's
// own link when its device is not in the device table).
double TiedGradientMs(double tied_bytes, const ParallelLayout& layout, const Profile& profile);

// Per pipeline device of the plan (its chunks together): the synchronisation overlaps the
// backward of the last micro-batch (Megatron's overlap of the gradient reduction, bucket by
// bucket as gradients become ready): exposed max(sync - backward, sync of the device's first
// layer), the first layer's gradients being ready last. The zero 1/2 parameter all-gather
// overlaps the next step's first forward likewise: max(gather - forward, gather of the
// first layer). Without layout.overlap_grad_reduce both are exposed whole. ZeRO 3's
// per-layer collectives are in the chunk times already (WithParameterGathers). `profile` is the
// plan's (unchanged) profile. A tied head on another device than its embedding adds TiedGradientMs
// to both devices.
std::vector<DeviceSync> DataParallelSync(const Plan& plan, const ParallelLayout& layout);

// The time the data-parallel side adds to a step: the largest exposed time over the devices
// (the devices synchronise at once after the pipeline drains).
double DataParallelMs(const std::vector<DeviceSync>& sync);

}  // namespace pp
