// GPipe: every stage runs the forwards of all micro-batches, then all backwards
// (F0 ... F(m-1), B0 ... B(m-1)). Each stage holds all m micro-batches' activations.
#include "executor/schedules.h"

namespace pp {
namespace {

class Gpipe final : public ScheduleKind {
 public:
  std::string_view name() const override { return "gpipe"; }
  std::string_view summary() const override {
    return "all forwards, then all backwards; holds m micro-batches per stage";
  }
  ScheduleTraits traits() const override {
    return {.splits_backward = false,
            .step_bounds = StepBoundsFamily::kGpipe,
            .per_stage_recompute = true,
            .searched_by_default = true,
            .torch_class = "ScheduleGPipe",
            .megatron = FrameworkFit::kOwnSchedule,
            .torchgpipe = FrameworkFit::kSame};
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& /*options*/) const override {
    Schedule s{std::string(name()), stages, micro_batches, {}};
    s.device_ops.resize(stages);
    for (auto& ops : s.device_ops) {
      for (int i = 0; i < micro_batches; ++i) ops.push_back({OpKind::kForward, i});
      for (int i = 0; i < micro_batches; ++i) ops.push_back({OpKind::kBackward, i});
    }
    return s;
  }
};

}  // namespace

const ScheduleKind* GpipeSchedule() {
  static const Gpipe kGpipe;
  return &kGpipe;
}

}  // namespace pp
