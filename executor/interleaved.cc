// Interleaved 1F1B (Megatron-LM's virtual pipeline): the model is cut into p*V chunks and
// chunk c runs on device c mod p, so each device holds V non-adjacent chunks. Each device
// walks a sequence of m*V "virtual micro-batches" k; docs/schedules.md derives the order:
//   forward k runs micro-batch (k / (p*V)) * p + k mod p on its local chunk (k mod p*V) / p,
//   backward k runs the same micro-batch on local chunk V - 1 - (k mod p*V) / p;
//   device d warms up with min(2*(p-d-1) + (V-1)*p, m*V) forwards, then alternates forward,
//   backward, then drains the backwards.
// This is the order of current Megatron-LM and torch.distributed.pipelining's
// ScheduleInterleaved1F1B for every such m, m = p included. Needs m a multiple of p and V >= 2
// (V = 1 is 1f1b).
#include <algorithm>
#include <string>

#include "executor/schedules.h"

namespace pp {
namespace {

class Interleaved final : public ScheduleKind {
 public:
  std::string_view name() const override { return "interleaved"; }
  std::string_view summary() const override {
    return "Megatron's interleaved 1F1B over V chunks per device (--virtual-stages V); m % p = 0";
  }
  ScheduleTraits traits() const override {
    return {.splits_backward = false,
            .step_bounds = StepBoundsFamily::kChunked,
            .per_stage_recompute = true,
            .searched_by_default = true,
            .torch_class = "ScheduleInterleaved1F1B",
            .megatron = FrameworkFit::kSame,
            .torchgpipe = FrameworkFit::kNo,
            // Megatron-LM runs each step's sends and receives as one batched exchange and
            // waits for it (then synchronises the device) before the next op: every transfer
            // a device starts is exposed on it.
            .pays_transfer_gaps = true,
            .exposed_transfer_share = 1.0};
  }
  Status CheckOptions(const ScheduleOptions& options) const override {
    if (options.virtual_stages < 2) {
      return Status::Error("interleaved needs --virtual-stages V >= 2 (V = 1 is 1f1b), got " +
                           std::to_string(options.virtual_stages));
    }
    return Status::Ok();
  }
  Status Check(int stages, int micro_batches, const ScheduleOptions& /*options*/) const override {
    if (micro_batches % stages != 0) {
      return Status::Error("interleaved needs the micro-batch count (" +
                           std::to_string(micro_batches) + ") to be a multiple of the stage " +
                           "count (" + std::to_string(stages) + ")");
    }
    return Status::Ok();
  }
  int ChunksPerDevice(const ScheduleOptions& options) const override {
    return options.virtual_stages;
  }
  int ChunkDevice(int chunk, int stages, const ScheduleOptions& /*options*/) const override {
    return chunk % stages;
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& options) const override {
    const int p = stages, m = micro_batches, v = options.virtual_stages;
    const int group = p * v, total = m * v;
    Schedule s{std::string(name()), p, m, {}, {}};
    for (int c = 0; c < group; ++c) s.chunk_device.push_back(ChunkDevice(c, p, options));
    s.device_ops.resize(p);
    for (int d = 0; d < p; ++d) {
      auto op = [&](OpKind kind, int k) {
        const int local = (k % group) / p;
        const int chunk = (kind == OpKind::kForward ? local : v - 1 - local) * p + d;
        return PipelineOp{kind, (k / group) * p + k % p, chunk};
      };
      const int warmup = std::min(2 * (p - d - 1) + (v - 1) * p, total);
      auto& ops = s.device_ops[d];
      for (int k = 0; k < warmup; ++k) ops.push_back(op(OpKind::kForward, k));
      for (int k = 0; k < total - warmup; ++k) {
        ops.push_back(op(OpKind::kForward, warmup + k));
        ops.push_back(op(OpKind::kBackward, k));
      }
      for (int k = total - warmup; k < total; ++k) ops.push_back(op(OpKind::kBackward, k));
    }
    return s;
  }
};

}  // namespace

const ScheduleKind* InterleavedSchedule() {
  static const Interleaved kInterleaved;
  return &kInterleaved;
}

}  // namespace pp
