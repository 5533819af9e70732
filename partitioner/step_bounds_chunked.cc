// Bounds 7-9 of docs/cost-model.md, for the schedules bounds 1-6 do not cover: several
// chunks per device, split backwards, lists from a CSV. Transfers are left out.
#include <algorithm>
#include <limits>
#include <vector>

#include "partitioner/step_bounds.h"
#include "partitioner/step_chains.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class ChunkedStepBounds final : public StepBounds {
 public:
  ChunkedStepBounds(const SplitContext& ctx, const Schedule& schedule)
      : cost_(BoundCost(ctx)),
        n_(ctx.cost->num_layers()),
        p_(ctx.num_stages),
        m_(schedule.num_micro_batches),
        num_devices_(schedule.num_devices),
        lists_(schedule),
        shapes_(cost_, schedule, ctx.input_lower_ms, ctx.weight_lower_ms),
        total_(cost_.StageMs(0, n_ - 1)),
        levels_(p_ + 1) {}

  void Prepare() override {
    // The later chunks' bound 7 taken together; the least over the chunks from p - r on
    // keeps the table's cost from falling as r falls. Chunks of one shape class have one
    // Value, so the least is over the classes among chunks p - r..p - 1 (classes[r]).
    std::vector<std::vector<int>> classes(p_);
    for (int r = 1; r < p_; ++r) {
      classes[r] = classes[r - 1];
      const int c = shapes_.ShapeClass(p_ - r);
      if (std::find(classes[r].begin(), classes[r].end(), c) == classes[r].end()) {
        classes[r].push_back(c);
      }
    }
    generic_ = MinMaxRows(n_, p_ - 1, [&](int r, int i, int e) {
      double least = kInf;
      for (int c : classes[r]) least = std::min(least, shapes_.Value(c, i, e));
      return least;
    });
    low_generic_ = generic_;
    for (std::vector<double>& row : low_generic_) {
      for (size_t x = 1; x < row.size(); ++x) row[x] = std::min(row[x], row[x - 1]);
    }
  }

  // m times the average device's share: some device runs at least that.
  double RootBound() const override { return m_ * total_ / num_devices_; }

  double Growing(int k, int j, int e) const override {
    const Fixed& before = levels_[k];
    double lb = std::max({before.generic, shapes_.Value(k, j, e), BusyBound(before)});
    if (num_devices_ < p_) {
      std::vector<double>& busy = busy_scratch_;
      if (before.busy.empty()) busy.assign(num_devices_, 0.0);
      else busy.assign(before.busy.begin(), before.busy.end());
      busy[lists_.chunk_device[k]] += DeviceMs(k, j, e);
      lb = std::max(lb, busy[lists_.chunk_device[k]]);
      // Stage k's layers moved from the rest onto its own device: the level only rises
      // when that device still takes later chunks (else it may fall, so it is left out).
      if (k + 1 < p_ && lists_.later_has[k][lists_.chunk_device[k]]) {
        lb = std::max(lb, WaterBound(k, busy, e + 1 < n_ ? cost_.StageMs(e + 1, n_ - 1) : 0));
      }
    }
    return lb;
  }

  double Skip(int k, int j, int e) const override {
    const Fixed& before = levels_[k];
    const int r = p_ - 1 - k, x = e + 1;
    // The level before stage k takes any layers: at most every end's (k - 1's devices).
    double water = 0;
    if (num_devices_ < p_ && k >= 1 && !before.busy.empty()) {
      water = WaterBound(k - 1, before.busy, cost_.StageMs(j, n_ - 1));
    }
    return std::max({before.generic, BusyBound(before), low_generic_[r][x], water});
  }

  int FirstEnd(int k, int j, int last, int guess, double threshold) const override {
    return FirstEndWithin(j, last + 1, guess, threshold, [&](int e) { return Skip(k, j, e); });
  }

  double Fix(int k, int j, int e) override {
    const Fixed& before = levels_[k];
    Fixed& after = levels_[k + 1];
    after = before;  // reuses the level's storage
    after.generic = std::max(before.generic, shapes_.Value(k, j, e));
    if (after.busy.empty()) after.busy.assign(num_devices_, 0.0);
    after.busy[lists_.chunk_device[k]] += DeviceMs(k, j, e);
    return Bound(k, e + 1);
  }

  // The splits that make the largest chain shape (bound 7) least, then two costs per stage
  // as for one chunk per device: bound 1 (transfers left out), and it beside one round trip
  // and m - 1 times the larger of the stage's forward and backward.
  std::vector<CandidateCost> CandidateCosts() const override {
    double high = 0;
    for (int c = 0; c < p_; ++c) high = std::max(high, shapes_.Value(c, 0, n_ - 1));
    const double b = m_ - 1.0;
    const auto path = [this](int, int i, int e) { return FirstPathMs(cost_, m_, i, e); };
    const auto joint = [this, b, path](int s, int i, int e) {
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      return std::max(path(s, i, e), total_ + std::max({b * g, b * f, 0.0}));
    };
    return {{[this](int c, int i, int e) { return shapes_.Value(c, i, e); }, high + 1},
            {path, m_ * total_ + 1},
            {joint, 2 * m_ * total_ + 1}};
  }

 private:
  // With stages 0..k fixed and the next one starting at layer `next`: on every split that
  // continues them.
  double Bound(int k, int next) const {
    const Fixed& fixed = levels_[k + 1];
    const int r = p_ - 1 - k;  // stages left
    double lb = std::max(fixed.generic, BusyBound(fixed));
    if (r >= 1) {
      lb = std::max(lb, generic_[r][next]);
      lb = std::max(lb, WaterBound(k, fixed.busy, cost_.StageMs(next, n_ - 1)));
    }
    return lb;
  }

  // Aggregates over the fixed chunks 0..k.
  struct Fixed {
    double generic = 0;  // bound 7: max over the fixed chunks
    // Bound 8, per device: m x its fixed chunks' F + B, plus the way to its first op and
    // from its last op once the chunks of those ops are fixed (DeviceMs). Empty before
    // any chunk is fixed.
    std::vector<double> busy;
  };

  // Bound 8: m x the fixed chunks' time on their busiest device.
  static double BusyBound(const Fixed& fixed) {
    double most = 0;
    for (double b : fixed.busy) most = std::max(most, b);
    return most;
  }

  // What chunk k over [j, e] adds to its device's bound 8: m x its F + B, and when its op
  // is the device's first (a forward) the forwards of the layers before it, when its op is
  // the device's last (B or I) the gradients back through the layers before it.
  double DeviceMs(int k, int j, int e) const {
    double ms = m_ * cost_.StageMs(j, e);
    const int d = lists_.chunk_device[k];
    if (lists_.first_op_chunk[d] == k && lists_.first_op_forward[d] && j > 0) {
      ms += cost_.ForwardMs(0, j - 1);
    }
    if (lists_.last_op_chunk[d] == k && lists_.last_op_gradient[d]) {
      ms += shapes_.GradMs(0, j - 1);
    }
    return ms;
  }

  // Bound 9: the layers from `next` on (`rest` ms of F + B) still go to the devices of
  // chunks k+1..; however they are cut, some device's bound 8 then reaches at least the water
  // level L with sum over those devices of max(0, L - busy) = m x rest (poured into the
  // emptiest first).
  double WaterBound(int k, const std::vector<double>& busy, double rest) const {
    if (busy.empty() || k + 1 >= p_) return 0.0;
    std::vector<double>& level = level_scratch_;  // no allocation per call
    level.clear();
    for (int d : lists_.later_devices[k]) level.push_back(busy[d]);
    std::sort(level.begin(), level.end());
    double poured = m_ * rest;
    for (size_t i = 0; i < level.size(); ++i) {
      poured += level[i];
      const double l = poured / static_cast<double>(i + 1);
      if (i + 1 == level.size() || l <= level[i + 1]) return l;
    }
    return 0.0;
  }

  const CostModel& cost_;
  const int n_, p_, m_;
  const int num_devices_;
  const DeviceLists lists_;  // bounds 8 and 9: what the device lists say
  const ChainShapes shapes_;  // bound 7
  const double total_;
  std::vector<std::vector<double>> generic_, low_generic_;
  std::vector<Fixed> levels_;  // [k]: chunks 0..k-1 as fixed last
  mutable std::vector<double> level_scratch_, busy_scratch_;  // reused by the bounds
};

}  // namespace

std::unique_ptr<StepBounds> MakeChunkedStepBounds(const SplitContext& ctx,
                                                  const Schedule& schedule) {
  return std::make_unique<ChunkedStepBounds>(ctx, schedule);
}

}  // namespace pp
