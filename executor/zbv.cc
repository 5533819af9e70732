// ZB-V (zero bubble, V shape): 2p chunks; device d runs chunk d (going down) and chunk
// 2p-1-d (coming back up), so the last device turns the forward around without a transfer and
// device 0 holds both the first and the last chunk. Backward is split into I and W. The order
// per device d (phases as in docs/schedules.md), counting micro-batches per chunk, built for
// n = max(2p-1, m) micro-batches and then keeping only those below m:
//   2(p-d)-1 forwards of chunk 0; d pairs (F chunk 1, F chunk 0); p-d triples (F, I, W) of
//   chunk 1; while forwards remain: (F chunk 0 if any left, I W chunk 0, F I W chunk 1);
//   d pairs (I chunk 0, I chunk 1); p-d pairs (I, W) of chunk 0; the remaining Ws of chunk 1,
//   then of chunk 0.
// With F = I = W the bubble nearly vanishes for m >= 2p.
#include <algorithm>
#include <array>
#include <string>

#include "executor/schedules.h"

namespace pp {
namespace {

class Zbv final : public ScheduleKind {
 public:
  std::string_view name() const override { return "zbv"; }
  std::string_view summary() const override {
    return "zero bubble V: two chunks per device in a V, backward split into I and W";
  }
  // Megatron-LM places chunk c on stage c mod p, not in a V.
  ScheduleTraits traits() const override {
    return {.splits_backward = true,
            .step_bounds = StepBoundsFamily::kChunked,
            .per_stage_recompute = false,
            .searched_by_default = true,
            .torch_class = "ScheduleZBVZeroBubble",
            .megatron = FrameworkFit::kNo,
            .torchgpipe = FrameworkFit::kNo};
  }
  int ChunksPerDevice(const ScheduleOptions& /*options*/) const override { return 2; }
  int ChunkDevice(int chunk, int stages, const ScheduleOptions& /*options*/) const override {
    return chunk < stages ? chunk : 2 * stages - 1 - chunk;
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& options) const override {
    const int p = stages, m = micro_batches;
    const int n = std::max(2 * p - 1, m);
    Schedule s{std::string(name()), p, m, {}, {}};
    for (int c = 0; c < 2 * p; ++c) s.chunk_device.push_back(ChunkDevice(c, p, options));
    s.device_ops.resize(p);
    for (int d = 0; d < p; ++d) {
      const std::array<int, 2> chunk = {d, 2 * p - 1 - d};
      // count[h][k]: how many ops of kind k (F, I, W) chunk h has been given.
      int count[2][3] = {{0, 0, 0}, {0, 0, 0}};
      auto& ops = s.device_ops[d];
      auto add = [&](OpKind kind, int h) {
        const int k = kind == OpKind::kForward ? 0 : kind == OpKind::kBackwardInput ? 1 : 2;
        const int i = count[h][k]++;
        if (i < m) ops.push_back({kind, i, chunk[h]});
      };
      const OpKind f = OpKind::kForward, in = OpKind::kBackwardInput, w = OpKind::kBackwardWeight;
      for (int j = 0; j < 2 * (p - d) - 1; ++j) add(f, 0);
      for (int j = 0; j < d; ++j) {
        add(f, 1);
        add(f, 0);
      }
      for (int j = 0; j < p - d; ++j) {
        add(f, 1);
        add(in, 1);
        add(w, 1);
      }
      while (count[1][0] < count[0][0] || count[0][0] < n) {
        if (count[0][0] < n) add(f, 0);
        add(in, 0);
        add(w, 0);
        add(f, 1);
        add(in, 1);
        add(w, 1);
      }
      for (int j = 0; j < d; ++j) {
        add(in, 0);
        add(in, 1);
      }
      for (int j = 0; j < p - d; ++j) {
        add(in, 0);
        add(w, 0);
      }
      while (count[1][2] < count[1][1]) add(w, 1);
      while (count[0][2] < count[0][1]) add(w, 0);
    }
    return s;
  }
};

}  // namespace

const ScheduleKind* ZbvSchedule() {
  static const Zbv kZbv;
  return &kZbv;
}

}  // namespace pp
