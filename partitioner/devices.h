// Stages on devices of their own: heterogeneous device types in pipeline order and stage
// boundaries that cross nodes (docs/cost-model.md, "Heterogeneous devices and nodes").
//
// Stage s runs on a device of type stage_type[s]; its layer times come from that type's
// profile (one model, micro-batch size and dtype, so byte counts agree across types). The
// boundary between stages s and s+1 crosses the inter-node link when
// floor(s / gpus_per_node) != floor((s + 1) / gpus_per_node), the profile's link otherwise.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "partitioner/cost_model.h"

namespace pp {

struct DeviceLayout {
  // Device type of each device (stage of a one-chunk schedule); empty: every device the base
  // profile's.
  std::vector<std::string> stage_type;
  // The profile of every type in stage_type other than stage 0's (whose profile is the base).
  std::map<std::string, Profile> profiles;
  // Each stage's memory limit is its device's memory (instead of one limit for all).
  bool per_device_memory = false;
  int gpus_per_node = 0;  // 0: one node
  std::optional<Link> inter_node_link;

  bool heterogeneous() const { return !stage_type.empty(); }
  bool multi_node() const { return gpus_per_node > 0 && inter_node_link.has_value(); }
  bool empty() const { return !heterogeneous() && !multi_node(); }
};

// The link between devices a and b: the inter-node link when the layout puts them on
// different nodes (device d on node d / gpus_per_node), else `base` (the profile's).
const Link& LinkBetween(const DeviceLayout& layout, const Link& base, int a, int b);

// Reads the layout a plan records (device_type per stage, device_profiles, gpus_per_node,
// inter_node_link, per-stage memory limits).
DeviceLayout LayoutOf(const Plan& plan);
// Records `layout` in `plan` (whose stages are filled in).
void RecordLayout(const DeviceLayout& layout, Plan* plan);

class StageCosts {
 public:
  // `stages` model chunks; chunk s runs on device chunk_device[s] (empty: device s), whose
  // type (layout.stage_type, one per device), memory and node it takes. Errors: a type
  // without a profile, or a profile whose layers or byte counts differ from the base's.
  static Result<std::unique_ptr<StageCosts>> Make(const Profile& base, const DeviceLayout& layout,
                                                  Optimizer optimizer, int stages,
                                                  std::optional<uint64_t> memory_limit,
                                                  const std::vector<int>& chunk_device = {});
  // With the training state `state` (data parallelism with ZeRO, partitioner/cost_model.h)
  // and the modules selective recomputation recomputes.
  static Result<std::unique_ptr<StageCosts>> Make(
      const Profile& base, const DeviceLayout& layout, const StateBytes& state, int stages,
      std::optional<uint64_t> memory_limit, const std::vector<int>& chunk_device = {},
      RecomputeModules modules = RecomputeModules::Default());

  const CostModel& stage(int s) const { return *stage_cost_[s]; }
  const Profile& stage_profile(int s) const { return *stage_profile_[s]; }
  std::optional<uint64_t> memory_limit(int s) const { return setup_.memory_limit[s]; }
  // The link crossed by the boundary after stage s.
  const Link& link(int s) const { return setup_.link[s]; }
  const StageSetup& setup() const { return setup_; }
  // Per layer, the least time over the device types: a lower bound on every stage's times.
  const CostModel& envelope() const { return *envelope_; }

 private:
  StageCosts() = default;
  std::deque<Profile> profiles_;  // stable addresses: the cost models refer to them
  std::deque<CostModel> models_;
  std::vector<const CostModel*> stage_cost_;
  std::vector<const Profile*> stage_profile_;
  StageSetup setup_;
  const CostModel* envelope_ = nullptr;
};

}  // namespace pp
