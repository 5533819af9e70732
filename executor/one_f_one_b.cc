// 1F1B (one forward, one backward): stage s of p runs w = min(p - s - 1, m) warm-up forwards,
// then m - w pairs (F, B), then the w remaining backwards. A stage holds at most
// min(p - s, m) micro-batches' activations.
#include <algorithm>

#include "executor/schedules.h"

namespace pp {
namespace {

class OneFOneB final : public ScheduleKind {
 public:
  std::string_view name() const override { return "1f1b"; }
  std::string_view summary() const override {
    return "warm-up forwards, then alternate one forward and one backward; holds min(p-s, m)";
  }
  ScheduleTraits traits() const override {
    return {.splits_backward = false,
            .step_bounds = StepBoundsFamily::kOneChunkFullBackward,
            .per_stage_recompute = true,
            .searched_by_default = true,
            .torch_class = "Schedule1F1B",
            .megatron = FrameworkFit::kSame,
            .torchgpipe = FrameworkFit::kOwnSchedule};
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& /*options*/) const override {
    Schedule s{std::string(name()), stages, micro_batches, {}};
    s.device_ops.resize(stages);
    for (int stage = 0; stage < stages; ++stage) {
      auto& ops = s.device_ops[stage];
      const int warmup = std::min(stages - stage - 1, micro_batches);
      int next_forward = 0, next_backward = 0;
      for (; next_forward < warmup; ++next_forward) ops.push_back({OpKind::kForward, next_forward});
      while (next_forward < micro_batches) {
        ops.push_back({OpKind::kForward, next_forward++});
        ops.push_back({OpKind::kBackward, next_backward++});
      }
      while (next_backward < micro_batches) ops.push_back({OpKind::kBackward, next_backward++});
    }
    return s;
  }
};

}  // namespace

const ScheduleKind* OneFOneBSchedule() {
  static const OneFOneB kOneFOneB;
  return &kOneFOneB;
}

}  // namespace pp
