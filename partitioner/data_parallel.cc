#include "partitioner/data_parallel.h"

#include <algorithm>
#include <optional>

namespace pp {

const DeviceSpec* ProfileDevice(const Profile& profile) {
  for (const DeviceSpec& d : AllDevices()) {
    if (profile.device.name == d.name || profile.device.name == d.key) return &d;
  }
  return nullptr;
}

namespace {

// The profile's device when the table gives it both a node and a network bus (the
// collectives' links); nullptr otherwise (a CPU profile), where the profile's own link serves.
const DeviceSpec* LinkedDevice(const Profile& profile) {
  const DeviceSpec* device = ProfileDevice(profile);
  return device != nullptr && device->node_bus_bytes_per_s > 0 &&
                 device->network_bus_bytes_per_s > 0
             ? device
             : nullptr;
}

// The link of a data-parallel `group` (kData or kExpertData) on `device` (LinkedDevice; the
// profile's own link when it is nullptr). Every data-parallel collective is a ring one
// (all-reduce, reduce-scatter, all-gather).
BusLink GroupBusLink(const ParallelLayout& layout, CommGroup group, const DeviceSpec* device,
                     const Profile& profile) {
  if (device == nullptr) return {profile.link.bandwidth_bytes_per_s, profile.link.latency_ms};
  return CollectiveLink(layout, group, CollectiveKind::kAllReduce, device->node_bus_bytes_per_s,
                        device->node_latency_ms, device->network_bus_bytes_per_s,
                        device->network_latency_ms);
}

// The gradient reduction of ZeRO `zero` over n ranks: an all-reduce at zero 0, else a
// reduce-scatter.
double SyncMs(double grad_bytes, int n, int zero, const BusLink& link) {
  const CollectiveKind kind =
      zero == 0 ? CollectiveKind::kAllReduce : CollectiveKind::kReduceScatter;
  return CollectiveMs(kind, grad_bytes, n, link.bus_bytes_per_s, link.latency_ms);
}

// The all-gather of updated parameters after the optimizer step (zero 1 and 2) over n ranks.
double GatherMs(double param_bytes, int n, int zero, const BusLink& link) {
  if (zero != 1 && zero != 2) return 0;
  return CollectiveMs(CollectiveKind::kAllGather, param_bytes, n, link.bus_bytes_per_s,
                      link.latency_ms);
}

}  // namespace

Link PipelineLink(const ParallelLayout& layout, const Profile& profile) {
  const DeviceSpec* device = LinkedDevice(profile);
  const bool known = device != nullptr;
  const Link link = !known || GroupInsideNode(layout, CommGroup::kPipeline)
                        ? profile.link
                        : Link{device->network_bus_bytes_per_s, device->network_latency_ms};
  if (!PipelineScatterGatherApplies(layout)) return link;
  // Each tensor rank sends bytes / tp over its own link at once, then the receiving tensor
  // group all-gathers the pieces: bytes / (tp x bw) + (tp - 1) / tp x bytes / gather bus, and
  // the all-gather's tp - 1 steps of latency.
  const GroupLink gather =
      known ? CollectiveLink(layout, CommGroup::kTensor, CollectiveKind::kAllGather,
                             device->node_bus_bytes_per_s, device->node_latency_ms,
                             device->network_bus_bytes_per_s, device->network_latency_ms)
            : GroupLink{profile.link.bandwidth_bytes_per_s, profile.link.latency_ms};
  const double t = layout.tp;
  const double seconds_per_byte =
      1 / (t * link.bandwidth_bytes_per_s) + (t - 1) / (t * gather.bus_bytes_per_s);
  return Link{1 / seconds_per_byte, link.latency_ms + (t - 1) * gather.latency_ms};
}

DataGroups DataGroupsOf(const ParallelLayout& layout, const Profile& profile) {
  const DeviceSpec* device = LinkedDevice(profile);
  DataGroups g;
  g.zero = layout.zero;
  g.dp = layout.dp;
  g.expert_dp = GroupSize(layout, CommGroup::kExpertData);
  g.link = GroupBusLink(layout, CommGroup::kData, device, profile);
  g.expert_link = GroupBusLink(layout, CommGroup::kExpertData, device, profile);
  g.grad_scale = GradientScale(profile.dtype);
  return g;
}

double GradientScale(DType dtype) {
  return dtype == DType::kFp8 ? static_cast<double>(DTypeBytes(DType::kBf16)) /
                                    static_cast<double>(DTypeBytes(DType::kFp8))
                              : 1.0;
}

// The experts' collectives run only where there are expert bytes (a dense model's expert
// group would otherwise charge its latency for nothing).
double DataGroups::GradientSyncMs(double all, double expert) const {
  const double rest = SyncMs(grad_scale * (all - expert), dp, zero, link);
  return expert > 0 ? rest + SyncMs(grad_scale * expert, expert_dp, zero, expert_link) : rest;
}

double DataGroups::ParamGatherMs(double all, double expert) const {
  const double rest = GatherMs(all - expert, dp, zero, link);
  return expert > 0 ? rest + GatherMs(expert, expert_dp, zero, expert_link) : rest;
}

double DataGroups::LayerMs(CollectiveKind kind, const LayerProfile& l) const {
  const double expert = static_cast<double>(l.routed_expert_bytes());
  const double rest = static_cast<double>(l.param_bytes) - expert;
  // A reduce-scatter carries gradients; an all-gather parameters.
  const double scale = kind == CollectiveKind::kReduceScatter ? grad_scale : 1.0;
  const double ms = CollectiveMs(kind, scale * rest, dp, link.bus_bytes_per_s, link.latency_ms);
  if (expert <= 0) return ms;
  return ms + CollectiveMs(kind, scale * expert, expert_dp, expert_link.bus_bytes_per_s,
                           expert_link.latency_ms);
}

Profile WithParameterGathers(const Profile& profile, const ParallelLayout& layout) {
  const DataGroups groups = DataGroupsOf(layout, profile);
  if (layout.zero < 3 || !groups.Any()) return profile;
  Profile out = profile;
  for (LayerProfile& l : out.layers) {
    if (l.param_bytes == 0) continue;
    const double gather = groups.LayerMs(CollectiveKind::kAllGather, l);
    const double scatter = groups.LayerMs(CollectiveKind::kReduceScatter, l);
    l.forward_ms = std::max(l.forward_ms, gather);
    const double backward = std::max(l.backward_ms, gather + scatter);
    if (l.backward_input_ms && l.backward_weight_ms) {
      const double scale = l.backward_ms > 0 ? backward / l.backward_ms : 0;
      if (scale > 0) {
        *l.backward_input_ms *= scale;
        *l.backward_weight_ms = backward - *l.backward_input_ms;
      } else {
        *l.backward_input_ms = backward / 2;
        *l.backward_weight_ms = backward / 2;
      }
    }
    l.backward_ms = backward;
  }
  return out;
}

double OptimizerStepMs(double param_bytes, Optimizer optimizer, const ParallelLayout& layout,
                       const Profile& profile, double expert_bytes) {
  const DeviceSpec* device = ProfileDevice(profile);
  if (device == nullptr || device->memory_bytes_per_s <= 0) return 0;
  const double e = static_cast<double>(DTypeBytes(profile.dtype));
  // From zero 1 each rank steps its share: the others over dp, the experts' over expert_dp.
  const double stepped =
      layout.zero >= 1
          ? (param_bytes - expert_bytes) / std::max(layout.dp, 1) +
                expert_bytes / GroupSize(layout, CommGroup::kExpertData)
          : param_bytes;
  const double params = stepped / e;
  double bytes = 0;
  switch (optimizer) {
    case Optimizer::kAdam:
      bytes = params * 30;
      break;
    case Optimizer::kSgd:
      bytes = params * 3 * e;
      break;
    case Optimizer::kNone:
      return 0;
  }
  return 1000.0 * bytes / device->memory_bytes_per_s;
}

double TiedGradientMs(double tied_bytes, const ParallelLayout& layout, const Profile& profile) {
  if (tied_bytes <= 0) return 0;
  const DeviceSpec* device = LinkedDevice(profile);
  const bool known = device != nullptr;
  const bool inside = GroupInsideNode(layout, CommGroup::kPipeline);
  const double bus = !known   ? profile.link.bandwidth_bytes_per_s
                     : inside ? device->node_bus_bytes_per_s
                              : device->network_bus_bytes_per_s;
  const double latency = !known   ? profile.link.latency_ms
                         : inside ? device->node_latency_ms
                                  : device->network_latency_ms;
  return CollectiveMs(CollectiveKind::kAllReduce, tied_bytes * GradientScale(profile.dtype), 2, bus,
                      latency);
}

std::vector<DeviceSync> DataParallelSync(const Plan& plan, const ParallelLayout& layout) {
  std::vector<DeviceSync> out(static_cast<size_t>(std::max(plan.num_stages, 1)));
  const DataGroups groups = DataGroupsOf(layout, plan.profile);
  struct Acc {
    double params = 0, expert_params = 0, backward = 0, forward = 0;
    int first_layer = -1;
  };
  const auto expert_bytes = [&](int layer) {
    const LayerProfile& l = plan.profile.layers[static_cast<size_t>(layer)];
    return static_cast<double>(l.routed_expert_bytes());
  };
  std::vector<Acc> acc(out.size());
  for (const StagePlan& s : plan.stages) {
    const size_t d = static_cast<size_t>(s.device.value_or(s.index));
    if (d >= acc.size()) continue;
    acc[d].params += static_cast<double>(s.param_bytes);
    for (int i = s.first_layer; i <= s.last_layer; ++i) {
      if (i >= 0 && static_cast<size_t>(i) < plan.profile.layers.size()) {
        acc[d].expert_params += expert_bytes(i);
      }
    }
    acc[d].backward += s.backward_ms;
    acc[d].forward += s.forward_ms;
    if (acc[d].first_layer < 0 || s.first_layer < acc[d].first_layer) {
      acc[d].first_layer = s.first_layer;
    }
  }
  // A tied head whose embedding lives on another device (Megatron-LM's embedding group).
  const ProfileTie tie = TieOf(plan.profile);
  if (tie.lo >= 0) {
    std::optional<size_t> lo, hi;
    for (const StagePlan& s : plan.stages) {
      const size_t d = static_cast<size_t>(s.device.value_or(s.index));
      if (s.first_layer <= tie.lo && tie.lo <= s.last_layer) lo = d;
      if (s.first_layer <= tie.hi && tie.hi <= s.last_layer) hi = d;
    }
    if (lo && hi && *lo != *hi && *lo < out.size() && *hi < out.size()) {
      const double ms = TiedGradientMs(static_cast<double>(tie.bytes), layout, plan.profile);
      out[*lo].tied_ms = out[*hi].tied_ms = ms;
    }
  }
  for (size_t d = 0; d < out.size(); ++d) {
    DeviceSync& sync = out[d];
    const Acc& a = acc[d];
    sync.optimizer_ms =
        OptimizerStepMs(a.params, plan.optimizer, layout, plan.profile, a.expert_params);
    if (!groups.Any() || a.first_layer < 0) continue;
    const double first =
        static_cast<double>(plan.profile.layers[static_cast<size_t>(a.first_layer)].param_bytes);
    const double first_expert = expert_bytes(a.first_layer);
    if (layout.zero < 3) {
      sync.gradient_ms = groups.GradientSyncMs(a.params, a.expert_params);
      sync.gather_ms = groups.ParamGatherMs(a.params, a.expert_params);
      if (!layout.overlap_grad_reduce) {
        sync.gradient_exposed_ms = sync.gradient_ms;
        sync.gather_exposed_ms = sync.gather_ms;
        continue;
      }
      sync.gradient_exposed_ms =
          std::max(sync.gradient_ms - a.backward, groups.GradientSyncMs(first, first_expert));
      if (sync.gather_ms > 0) {
        sync.gather_exposed_ms =
            std::max(sync.gather_ms - a.forward, groups.ParamGatherMs(first, first_expert));
      }
    }
  }
  return out;
}

double DataParallelMs(const std::vector<DeviceSync>& sync) {
  double most = 0;
  for (const DeviceSync& s : sync) most = std::max(most, s.exposed_ms());
  return most;
}

}  // namespace pp
