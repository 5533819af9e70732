#include "partitioner/data_parallel.h"

#include <algorithm>

namespace pp {

const DeviceSpec* ProfileDevice(const Profile& profile) {
  for (const DeviceSpec& d : AllDevices()) {
    if (profile.device.name == d.name || profile.device.name == d.key) return &d;
  }
  return nullptr;
}

BusLink DataGroupLink(const ParallelLayout& layout, const Profile& profile) {
  const DeviceSpec* device = ProfileDevice(profile);
  if (device == nullptr || device->node_bus_bytes_per_s <= 0 ||
      device->network_bus_bytes_per_s <= 0) {
    return {profile.link.bandwidth_bytes_per_s, profile.link.latency_ms};
  }
  // Every data-parallel collective is a ring one (all-reduce, reduce-scatter, all-gather).
  return CollectiveLink(layout, CommGroup::kData, CollectiveKind::kAllReduce,
                        device->node_bus_bytes_per_s, device->node_latency_ms,
                        device->network_bus_bytes_per_s, device->network_latency_ms);
}

Link PipelineLink(const ParallelLayout& layout, const Profile& profile) {
  const DeviceSpec* device = ProfileDevice(profile);
  if (device == nullptr || device->network_bus_bytes_per_s <= 0 ||
      GroupInsideNode(layout, CommGroup::kPipeline)) {
    return profile.link;
  }
  return Link{device->network_bus_bytes_per_s, device->network_latency_ms};
}

double GradientSyncMs(double grad_bytes, const ParallelLayout& layout, const BusLink& link) {
  const CollectiveKind kind =
      layout.zero == 0 ? CollectiveKind::kAllReduce : CollectiveKind::kReduceScatter;
  return CollectiveMs(kind, grad_bytes, layout.dp, link.bus_bytes_per_s, link.latency_ms);
}

double ParamGatherMs(double param_bytes, const ParallelLayout& layout, const BusLink& link) {
  if (layout.zero != 1 && layout.zero != 2) return 0;
  return CollectiveMs(CollectiveKind::kAllGather, param_bytes, layout.dp, link.bus_bytes_per_s,
                      link.latency_ms);
}

Profile WithParameterGathers(const Profile& profile, const ParallelLayout& layout) {
  if (layout.zero < 3 || layout.dp <= 1) return profile;
  const BusLink link = DataGroupLink(layout, profile);
  Profile out = profile;
  for (LayerProfile& l : out.layers) {
    const double bytes = static_cast<double>(l.param_bytes);
    if (bytes <= 0) continue;
    const double gather = CollectiveMs(CollectiveKind::kAllGather, bytes, layout.dp,
                                       link.bus_bytes_per_s, link.latency_ms);
    const double scatter = CollectiveMs(CollectiveKind::kReduceScatter, bytes, layout.dp,
                                        link.bus_bytes_per_s, link.latency_ms);
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
                       const Profile& profile) {
  const DeviceSpec* device = ProfileDevice(profile);
  if (device == nullptr || device->memory_bytes_per_s <= 0) return 0;
  const double e = static_cast<double>(DTypeBytes(profile.dtype));
  const double params = param_bytes / e;
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
  if (layout.zero >= 1 && layout.dp > 1) bytes /= layout.dp;
  return 1000.0 * bytes / device->memory_bytes_per_s;
}

std::vector<DeviceSync> DataParallelSync(const Plan& plan, const ParallelLayout& layout) {
  std::vector<DeviceSync> out(static_cast<size_t>(std::max(plan.num_stages, 1)));
  const BusLink link = DataGroupLink(layout, plan.profile);
  struct Acc {
    double params = 0, backward = 0, forward = 0;
    int first_layer = -1;
  };
  std::vector<Acc> acc(out.size());
  for (const StagePlan& s : plan.stages) {
    const size_t d = static_cast<size_t>(s.device.value_or(s.index));
    if (d >= acc.size()) continue;
    acc[d].params += static_cast<double>(s.param_bytes);
    acc[d].backward += s.backward_ms;
    acc[d].forward += s.forward_ms;
    if (acc[d].first_layer < 0 || s.first_layer < acc[d].first_layer) {
      acc[d].first_layer = s.first_layer;
    }
  }
  for (size_t d = 0; d < out.size(); ++d) {
    DeviceSync& sync = out[d];
    const Acc& a = acc[d];
    sync.optimizer_ms = OptimizerStepMs(a.params, plan.optimizer, layout, plan.profile);
    if (layout.dp <= 1 || a.first_layer < 0) continue;
    const double first =
        static_cast<double>(plan.profile.layers[static_cast<size_t>(a.first_layer)].param_bytes);
    if (layout.zero < 3) {
      sync.gradient_ms = GradientSyncMs(a.params, layout, link);
      sync.gather_ms = ParamGatherMs(a.params, layout, link);
      if (!layout.overlap_grad_reduce) {
        sync.gradient_exposed_ms = sync.gradient_ms;
        sync.gather_exposed_ms = sync.gather_ms;
        continue;
      }
      sync.gradient_exposed_ms =
          std::max(sync.gradient_ms - a.backward, GradientSyncMs(first, layout, link));
      if (sync.gather_ms > 0) {
        sync.gather_exposed_ms =
            std::max(sync.gather_ms - a.forward, ParamGatherMs(first, layout, link));
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
