// ZB-H1 (zero bubble, handcrafted schedule 1): 1F1B with the backward split into I (input
// gradient, on the critical path) and W (weight gradient, free to move). Device d of p warms
// up with w = min(p-d-1, m) forwards like 1f1b, then runs (F, I) pairs; it holds back d weight
// gradients so that I reaches the devices before it sooner, and in the drain it follows each
// I with the oldest pending W, then runs the remaining Ws. With F = I = W every device idles
// p-1 op times per step, a third of 1f1b's. docs/schedules.md has the derivation.
#include <algorithm>
#include <deque>
#include <string>

#include "executor/schedules.h"

namespace pp {
namespace {

class ZbH1 final : public ScheduleKind {
 public:
  std::string_view name() const override { return "zb-h1"; }
  std::string_view summary() const override {
    return "1f1b with backward split into I and W, Ws delayed into the drain; 1f1b's memory";
  }
  // torch.distributed.pipelining has no class for it (one stage per rank, split backward).
  ScheduleTraits traits() const override {
    return {.splits_backward = true,
            .step_bounds = StepBoundsFamily::kChunked,
            .per_stage_recompute = false,
            .searched_by_default = true,
            .torch_class = "",
            .megatron = FrameworkFit::kOwnSchedule,
            .torchgpipe = FrameworkFit::kOwnSchedule};
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& /*options*/) const override {
    const int p = stages, m = micro_batches;
    Schedule s{std::string(name()), p, m, {}, {}};
    s.device_ops.resize(p);
    for (int d = 0; d < p; ++d) {
      auto& ops = s.device_ops[d];
      const int warmup = std::min(p - d - 1, m);
      std::deque<int> pending;  // micro-batches whose I ran and W did not
      auto input = [&](int i) {
        ops.push_back({OpKind::kBackwardInput, i});
        pending.push_back(i);
      };
      auto weight = [&] {
        ops.push_back({OpKind::kBackwardWeight, pending.front()});
        pending.pop_front();
      };
      for (int i = 0; i < warmup; ++i) ops.push_back({OpKind::kForward, i});
      for (int k = 0; k < m - warmup; ++k) {
        ops.push_back({OpKind::kForward, warmup + k});
        input(k);
        if (static_cast<int>(pending.size()) > d) weight();
      }
      for (int i = m - warmup; i < m; ++i) {
        input(i);
        weight();
      }
      while (!pending.empty()) weight();
    }
    return s;
  }
};

}  // namespace

const ScheduleKind* ZbH1Schedule() {
  static const ZbH1 kZbH1;
  return &kZbH1;
}

}  // namespace pp
