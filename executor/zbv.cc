// ZB-V (zero bubble, V shape): 2p chunks; device d runs chunk d (going down) and chunk
// 2p-1-d (coming back up), so the last device turns the forward around without a transfer and
// device 0 holds both the first and the last chunk. Backward is split into I and W. The order
// per device d (phases as in docs/schedules.md), counting micro-batches per chunk, built for
// n = max(2p-1, m) micro-batches and then keeping only those below m:
//   2(p-d)-1 forwards of chunk 0; d pairs (F chunk 1, F chunk 0); p-d triples (F, I, W) of
//   chunk 1; while forwards remain: (F chunk 0 if any left, I W chunk 0, F I W chunk 1);
//   d pairs (I chunk 0, I chunk 1); p-d pairs (I, W) of chunk 0; the remaining Ws of chunk 1,
//   then of chunk 0.
// With F = I = W the bubble nearly vanishes for m >= 2p. Other times (ScheduleOptions::times,
// from the plan's profile) may call for another order: Build also runs a list scheduler over
// those times (GreedyOrder, three ways of filling idle time with Ws), polishes small
// schedules by swapping neighbouring ops, and keeps the fixed order unless one of these
// simulates strictly faster under the times without holding any chunk's activations longer.
#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "executor/schedules.h"
#include "executor/simulator.h"

namespace pp {
namespace {

// The fixed order of the header comment, per device.
std::vector<std::vector<PipelineOp>> FixedOrder(int p, int m) {
  const int n = std::max(2 * p - 1, m);
  std::vector<std::vector<PipelineOp>> device_ops(p);
  for (int d = 0; d < p; ++d) {
    const std::array<int, 2> chunk = {d, 2 * p - 1 - d};
    // count[h][k]: how many ops of kind k (F, I, W) chunk h has been given.
    int count[2][3] = {{0, 0, 0}, {0, 0, 0}};
    auto& ops = device_ops[d];
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
  return device_ops;
}

// Equal chunks with the hinted times, charged as zbv's runtime pays per transfer.
ChunkTimes HintedTimes(int p, const OpTimesHint& hint) {
  const auto chunks = static_cast<size_t>(2 * p);
  ChunkTimes t;
  t.forward_ms.assign(chunks, hint.forward_ms);
  t.backward_ms.assign(chunks, hint.input_ms + hint.weight_ms);
  t.backward_input_ms.assign(chunks, hint.input_ms);
  t.transfer_ms.assign(chunks - 1, hint.transfer_ms);
  t.p2p_gap_ms = hint.p2p_gap_ms;  // zbv pays gaps and exposes nothing (ChargeTransfers)
  return t;
}

double HintedStepMs(const Schedule& schedule, const ChunkTimes& times) {
  Result<Timeline> timeline = Simulate(schedule, times);
  return timeline.ok() ? timeline->step_time_ms : std::numeric_limits<double>::infinity();
}

// A list scheduler over the hinted times: devices take ops in the order of their start
// times; a device runs the input-gradient or forward op it can start first (I before F, the
// up chunk before the down chunk on ties), and a pending W instead when waiting for that op
// would leave it idle for at least `fill` W times (any idle at all when `fill` is 0). A
// forward waits while its chunk holds `cap[chunk]` micro-batches. Nothing when it gets stuck.
std::optional<std::vector<std::vector<PipelineOp>>> GreedyOrder(int p, int m,
                                                                const OpTimesHint& hint,
                                                                double fill,
                                                                const std::vector<int>& cap) {
  const double kUnknown = std::numeric_limits<double>::infinity();
  const int chunks = 2 * p;
  auto device_of = [p](int c) { return c < p ? c : 2 * p - 1 - c; };
  auto at = [m](int c, int i) { return static_cast<size_t>(c) * m + i; };
  std::vector<double> f_end(static_cast<size_t>(chunks) * m, kUnknown), i_end(f_end);
  struct Device {
    double free = 0;
    std::array<int, 2> forwards = {0, 0}, inputs = {0, 0}, weights = {0, 0};
    std::deque<std::pair<int, int>> pending;  // (local chunk, micro-batch) with I done, W not
  };
  std::vector<Device> dev(p);
  std::vector<std::vector<PipelineOp>> ops(p);
  // When the input of chunk c's next op of `kind` (micro-batch i) is there, kUnknown if not.
  auto ready = [&](int c, OpKind kind, int i) {
    if (kind == OpKind::kForward) {
      if (c == 0) return 0.0;
      const double e = f_end[at(c - 1, i)];
      return device_of(c - 1) == device_of(c) ? e : e + hint.transfer_ms;
    }
    if (c == chunks - 1) return f_end[at(c, i)];
    const double e = i_end[at(c + 1, i)];
    return device_of(c + 1) == device_of(c) ? e : e + hint.transfer_ms;
  };
  const int total = 6 * m * p;
  for (int placed = 0; placed < total; ++placed) {
    int best_d = -1;
    double best_start = kUnknown;
    PipelineOp best_op;
    for (int d = 0; d < p; ++d) {
      Device& v = dev[d];
      const std::array<int, 2> chunk = {d, chunks - 1 - d};
      double crit_start = kUnknown;
      PipelineOp crit;
      for (const OpKind kind : {OpKind::kBackwardInput, OpKind::kForward}) {
        for (const int h : {1, 0}) {
          const bool forward = kind == OpKind::kForward;
          const int i = forward ? v.forwards[h] : v.inputs[h];
          if (i >= m || (forward && v.forwards[h] - v.weights[h] >= cap[chunk[h]])) continue;
          const double start = std::max(v.free, ready(chunk[h], kind, i));
          if (start < crit_start) {
            crit_start = start;
            crit = {kind, i, chunk[h]};
          }
        }
      }
      double start = crit_start;
      PipelineOp op = crit;
      const bool idle = crit_start > v.free;
      if (!v.pending.empty() &&
          (crit_start == kUnknown || (idle && crit_start - v.free >= fill * hint.weight_ms))) {
        start = v.free;
        op = {OpKind::kBackwardWeight, v.pending.front().second, chunk[v.pending.front().first]};
      }
      if (start < best_start) {
        best_start = start;
        best_d = d;
        best_op = op;
      }
    }
    if (best_d < 0) return std::nullopt;
    Device& v = dev[best_d];
    const int h = best_op.chunk == best_d ? 0 : 1;
    const size_t slot = at(best_op.chunk, best_op.micro_batch);
    switch (best_op.kind) {
      case OpKind::kForward:
        v.free = f_end[slot] = best_start + hint.forward_ms;
        ++v.forwards[h];
        break;
      case OpKind::kBackwardInput:
        v.free = i_end[slot] = best_start + hint.input_ms;
        ++v.inputs[h];
        v.pending.emplace_back(h, best_op.micro_batch);
        break;
      default:
        v.free = best_start + hint.weight_ms;
        ++v.weights[h];
        v.pending.pop_front();
        break;
    }
    ops[best_d].push_back(best_op);
  }
  return ops;
}

// Whether no chunk of `schedule` holds more micro-batches than `cap` allows.
bool WithinCap(const Schedule& schedule, const std::vector<int>& cap) {
  const std::vector<int> held = InFlightPerChunk(schedule);
  for (size_t c = 0; c < held.size(); ++c) {
    if (held[c] > cap[c]) return false;
  }
  return true;
}

// Local search on small schedules (at most kPolishOps ops): swaps two neighbouring ops of one
// device within the first or last 6p ops of its list (the warm-up and the drain, where the
// orders differ) and keeps each swap that shortens the hinted step without breaking `cap`;
// stops after a pass without one, or after four passes. Returns the step reached.
constexpr int kPolishOps = 256;
double Polish(Schedule* s, const ChunkTimes& times, const std::vector<int>& cap, double step) {
  const int p = s->num_devices;
  if (6 * p * s->num_micro_batches > kPolishOps) return step;
  for (int pass = 0; pass < 4; ++pass) {
    bool better = false;
    for (int d = 0; d < p; ++d) {
      std::vector<PipelineOp>& ops = s->device_ops[d];
      const int n = static_cast<int>(ops.size()), window = 6 * p;
      for (int j = 0; j + 1 < n; ++j) {
        if (j >= window && j < n - 1 - window) j = n - 1 - window;
        if (ops[j].chunk == ops[j + 1].chunk && ops[j].micro_batch == ops[j + 1].micro_batch) {
          continue;  // one chunk's F, I, W of one micro-batch stay in order
        }
        std::swap(ops[j], ops[j + 1]);
        const double trial = WithinCap(*s, cap) ? HintedStepMs(*s, times)
                                                : std::numeric_limits<double>::infinity();
        if (trial < step * (1 - 1e-12)) {
          step = trial;
          better = true;
        } else {
          std::swap(ops[j], ops[j + 1]);
        }
      }
    }
    if (!better) break;
  }
  return step;
}

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
            .torchgpipe = FrameworkFit::kNo,
            // Zero-bubble runtimes post sends asynchronously and wait only before the op that
            // consumes a receive: launch gaps, nothing of the transfer itself exposed.
            .pays_transfer_gaps = true,
            .exposed_transfer_share = 0.0};
  }
  int ChunksPerDevice(const ScheduleOptions& /*options*/) const override { return 2; }
  int ChunkDevice(int chunk, int stages, const ScheduleOptions& /*options*/) const override {
    return chunk < stages ? chunk : 2 * stages - 1 - chunk;
  }
  Schedule Build(int stages, int micro_batches, const ScheduleOptions& options) const override {
    const int p = stages, m = micro_batches;
    Schedule s{std::string(name()), p, m, {}, {}};
    for (int c = 0; c < 2 * p; ++c) s.chunk_device.push_back(ChunkDevice(c, p, options));
    s.device_ops = FixedOrder(p, m);
    if (p < 2) return s;
    // The greedy orders, kept only when they beat the fixed one under the hinted times and
    // hold no chunk's activations longer than it does.
    const ChunkTimes times = HintedTimes(p, options.times);
    const std::vector<int> cap = InFlightPerChunk(s);
    Schedule trial = s;
    double best = Polish(&s, times, cap, HintedStepMs(s, times));
    for (const double fill : {1.0, 0.5, 0.0}) {
      std::optional<std::vector<std::vector<PipelineOp>>> ops =
          GreedyOrder(p, m, options.times, fill, cap);
      if (!ops) continue;
      trial.device_ops = std::move(*ops);
      const double step = Polish(&trial, times, cap, HintedStepMs(trial, times));
      if (step < best * (1 - 1e-12)) {
        best = step;
        s.device_ops = trial.device_ops;
      }
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
