#include "partitioner/devices.h"

#include <algorithm>

namespace pp {
namespace {

Status SameBytes(const Profile& base, const Profile& other, const std::string& type) {
  const std::string what = "the profile of device type " + type;
  if (other.layers.size() != base.layers.size()) {
    return Status::Error(what + " has " + std::to_string(other.layers.size()) +
                         " layers; the first type's has " + std::to_string(base.layers.size()));
  }
  for (size_t i = 0; i < base.layers.size(); ++i) {
    const LayerProfile& a = base.layers[i];
    const LayerProfile& b = other.layers[i];
    if (a.param_bytes != b.param_bytes || a.activation_bytes != b.activation_bytes ||
        a.output_bytes != b.output_bytes) {
      return Status::Error(what + " differs from the first type's in the byte counts of layer " +
                           std::to_string(i) + " (" + a.name +
                           "); every type must profile the same model, micro-batch and dtype");
    }
  }
  return Status::Ok();
}

}  // namespace

const Link& LinkBetween(const DeviceLayout& layout, const Link& base, int a, int b) {
  const bool crosses = layout.multi_node() && a / layout.gpus_per_node != b / layout.gpus_per_node;
  return crosses ? *layout.inter_node_link : base;
}

DeviceLayout LayoutOf(const Plan& plan) {
  DeviceLayout layout;
  bool typed = !plan.stages.empty();
  for (const StagePlan& s : plan.stages) typed &= s.device_type.has_value();
  if (typed) {
    // One type per device: a chunk's stage records its device's type.
    layout.stage_type.assign(plan.num_stages, "");
    for (const StagePlan& s : plan.stages) {
      const int d = s.device.value_or(s.index);
      if (d >= 0 && d < plan.num_stages) layout.stage_type[d] = *s.device_type;
    }
  }
  layout.profiles = plan.device_profiles;
  bool limits = !plan.stages.empty();
  for (const StagePlan& s : plan.stages) limits &= s.memory_limit_bytes.has_value();
  layout.per_device_memory = limits && !plan.memory_limit_bytes;
  layout.gpus_per_node = plan.gpus_per_node.value_or(0);
  layout.inter_node_link = plan.inter_node_link;
  return layout;
}

void RecordLayout(const DeviceLayout& layout, Plan* plan) {
  if (layout.heterogeneous()) {
    for (StagePlan& s : plan->stages) {
      const size_t d = static_cast<size_t>(s.device.value_or(s.index));
      if (d < layout.stage_type.size()) s.device_type = layout.stage_type[d];
    }
    plan->device_profiles = layout.profiles;
  }
  if (layout.multi_node()) {
    plan->gpus_per_node = layout.gpus_per_node;
    plan->inter_node_link = layout.inter_node_link;
  }
}

Result<std::unique_ptr<StageCosts>> StageCosts::Make(const Profile& base,
                                                     const DeviceLayout& layout,
                                                     Optimizer optimizer, int stages,
                                                     std::optional<uint64_t> memory_limit,
                                                     const std::vector<int>& chunk_device) {
  return Make(base, layout, TrainingState(optimizer, base.dtype), stages, memory_limit,
              chunk_device);
}

Result<std::unique_ptr<StageCosts>> StageCosts::Make(const Profile& base,
                                                     const DeviceLayout& layout,
                                                     const StateBytes& state, int stages,
                                                     std::optional<uint64_t> memory_limit,
                                                     const std::vector<int>& chunk_device,
                                                     RecomputeModules modules) {
  std::unique_ptr<StageCosts> c(new StageCosts());
  if (!chunk_device.empty() && static_cast<int>(chunk_device.size()) != stages) {
    return Status::Error("internal error: chunk devices do not match the stages");
  }
  // The device of stage (chunk) s, and how many devices there are.
  const auto device_of = [&](int s) { return chunk_device.empty() ? s : chunk_device[s]; };
  int devices = stages;
  if (!chunk_device.empty()) {
    devices = *std::max_element(chunk_device.begin(), chunk_device.end()) + 1;
  }
  if (layout.heterogeneous() && static_cast<int>(layout.stage_type.size()) != devices) {
    return Status::Error("--device-types names " + std::to_string(layout.stage_type.size()) +
                         " devices for " + std::to_string(devices) + " stages");
  }
  c->profiles_.push_back(base);
  c->models_.emplace_back(c->profiles_.back(), state, modules);
  std::map<std::string, const CostModel*> by_type;
  std::map<std::string, const Profile*> profile_by_type;
  if (layout.heterogeneous()) {
    by_type[layout.stage_type[0]] = &c->models_.back();
    profile_by_type[layout.stage_type[0]] = &c->profiles_.back();
  }
  for (const std::string& type : layout.stage_type) {
    if (by_type.count(type)) continue;
    auto it = layout.profiles.find(type);
    if (it == layout.profiles.end()) {
      return Status::Error("no profile for device type " + type);
    }
    PP_RETURN_IF_ERROR(SameBytes(base, it->second, type));
    c->profiles_.push_back(it->second);
    c->models_.emplace_back(c->profiles_.back(), state, modules);
    by_type[type] = &c->models_.back();
    profile_by_type[type] = &c->profiles_.back();
  }
  for (int s = 0; s < stages; ++s) {
    const std::string type = layout.heterogeneous() ? layout.stage_type[device_of(s)] : "";
    const CostModel* model = layout.heterogeneous() ? by_type[type] : &c->models_.front();
    const Profile* profile =
        layout.heterogeneous() ? profile_by_type[type] : &c->profiles_.front();
    c->stage_cost_.push_back(model);
    c->stage_profile_.push_back(profile);
    c->setup_.cost.push_back(model);
    c->setup_.memory_limit.push_back(layout.per_device_memory
                                         ? std::optional<uint64_t>(profile->device.memory_bytes)
                                         : memory_limit);
  }
  for (int s = 0; s + 1 < stages; ++s) {
    // Two chunks on one device move nothing (the simulator's rule); across devices the link
    // of the nodes the two devices sit on.
    c->setup_.link.push_back(LinkBetween(layout, base.link, device_of(s), device_of(s + 1)));
  }
  if (c->models_.size() == 1) {
    c->envelope_ = &c->models_.front();
  } else {
    Profile envelope = base;
    for (size_t i = 0; i < envelope.layers.size(); ++i) {
      LayerProfile& l = envelope.layers[i];
      for (const Profile& p : c->profiles_) {
        l.forward_ms = std::min(l.forward_ms, p.layers[i].forward_ms);
        l.backward_ms = std::min(l.backward_ms, p.layers[i].backward_ms);
      }
    }
    c->profiles_.push_back(std::move(envelope));
    c->models_.emplace_back(c->profiles_.back(), state, modules);
    c->envelope_ = &c->models_.back();
  }
  return c;
}

}  // namespace pp
