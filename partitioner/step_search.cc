#include "partitioner/step_search.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "partitioner/split_helpers.h"
#include "partitioner/step_chains.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Larger inputs skip the branch and bound (its tables take p x n entries) and report the
// seeds' best with the root bound.
constexpr double kMaxTableEntries = 5e7;

class BranchAndBound {
 public:
  BranchAndBound(const SplitContext& ctx, const Schedule& schedule, double budget_s)
      : ctx_(ctx),
        cost_(ctx.bound_cost ? *ctx.bound_cost : *ctx.cost),
        devices_(DevicesOf(ctx)),
        n_(ctx.cost->num_layers()),
        p_(ctx.num_stages),
        m_(schedule.num_micro_batches),
        gpipe_(schedule.name == "gpipe"),
        classic_(ClassicLists(schedule)),
        lists_(schedule),
        num_devices_(schedule.num_stages),
        budget_s_(budget_s),
        start_(std::chrono::steady_clock::now()) {
    if (!classic_) {
      // Bounds 1-6 read one device's list as one stage's; the other schedules use the chain
      // shapes of bound 7 only, and these counts serve the candidate splits alone.
      alpha_.assign(p_, 0.0);
      beta_.assign(p_, 0.0);
      seg_f_.assign(p_, 0.0);
      seg_b_.assign(p_, 0.0);
      shapes_.emplace(cost_, schedule, ctx.input_lower_ms, ctx.weight_lower_ms);
    }
    for (const auto& ops : classic_ ? schedule.stages : std::vector<std::vector<PipelineOp>>{}) {
      alpha_.push_back(ForwardsLeftAtFirstBackward(ops, m_));
      beta_.push_back(LastForwardBackwards(ops));
      const auto [nf, nb] = FirstBackwardToLastForward(ops);
      seg_f_.push_back(nf);
      seg_b_.push_back(nb);
    }
    total_ = cost_.StageMs(0, n_ - 1);
    std::vector<Link> links;  // the distinct links in use
    for (const Link& l : devices_.link) {
      bool seen = false;
      for (const Link& k : links) {
        seen |= k.bandwidth_bytes_per_s == l.bandwidth_bytes_per_s && k.latency_ms == l.latency_ms;
      }
      if (!seen) links.push_back(l);
    }
    bound_transfer_.assign(n_, classic_ ? kInf : 0.0);  // bound 7 leaves transfers out
    for (int e = 0; e < n_ && classic_; ++e) {
      for (const Link& l : links) {
        bound_transfer_[e] = std::min(bound_transfer_[e], cost_.TransferMs(e, l));
      }
      if (links.empty()) bound_transfer_[e] = cost_.TransferMs(e);
    }
  }

  // Whether the bound tables fit; false: only the root bound is available.
  bool Prepare() {
    if (static_cast<double>(p_) * (n_ + 1) * 8 > kMaxTableEntries) return false;
    BuildReach();
    const int max_r = p_ - 1;
    if (!classic_) {
      // The later chunks' bound 7 taken together; the least over the chunks from p - r on
      // keeps the table's cost from falling as r falls.
      generic_ = MinMaxRows(n_, max_r, [&](int r, int i, int e) {
        double least = kInf;
        for (int c = p_ - r; c < p_; ++c) least = std::min(least, shapes_->Value(c, i, e));
        return least;
      });
      low_generic_ = generic_;
      for (std::vector<double>& row : low_generic_) {
        for (size_t x = 1; x < row.size(); ++x) row[x] = std::min(row[x], row[x - 1]);
      }
      return true;
    }
    const double b = m_ - 1.0;
    mm_x_ = MinMaxRows(n_, max_r, [&](int, int i, int e) { return cost_.StageMs(i, e); });
    mm_f_ = MinMaxRows(n_, max_r, [&](int, int i, int e) { return cost_.ForwardMs(i, e); });
    mm_b_ = MinMaxRows(n_, max_r, [&](int, int i, int e) { return cost_.BackwardMs(i, e); });
    // The later stages' bounds taken together, stage by stage (docs/cost-model.md): a stage
    // [a, b] at index s costs at least
    //   path:      every layer before a once, then m x its own time, and
    //   weighted:  total + alpha_s x its forward + (m - 1) x its backward.
    // alpha rises with s for gpipe and 1f1b, as the table needs; otherwise every stage takes
    // the smallest alpha.
    bool rising = true;
    for (int s = 1; s < p_; ++s) rising &= alpha_[s] >= alpha_[s - 1];
    for (int s = 1; s < p_; ++s) rising &= beta_[s] >= beta_[s - 1];
    for (int s = 1; s < p_; ++s) rising &= seg_f_[s] >= seg_f_[s - 1] && seg_b_[s] >= seg_b_[s - 1];
    const double alpha_min = *std::min_element(alpha_.begin(), alpha_.end());
    const double beta_min = *std::min_element(beta_.begin(), beta_.end());
    const double seg_f_min = *std::min_element(seg_f_.begin(), seg_f_.end());
    const double seg_b_min = *std::min_element(seg_b_.begin(), seg_b_.end());
    rest_joint_ = MinMaxRows(n_, max_r, [&](int r, int i, int e) {
      const double a = rising ? alpha_[p_ - r] : alpha_min;
      const double c = rising ? beta_[p_ - r] : beta_min;
      const double nf = rising ? seg_f_[p_ - r] : seg_f_min;
      const double nb = rising ? seg_b_[p_ - r] : seg_b_min;
      const double path = (i == 0 ? 0.0 : cost_.StageMs(0, i - 1)) + m_ * cost_.StageMs(i, e);
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      const double six = FirstBackwardToLastForwardMs(cost_, nf, nb, i, e);
      return std::max(path, total_ + std::max({a * f + b * g, b * f + c * g, six}));
    });
    for (const auto* rows : {&mm_x_, &mm_f_, &mm_b_, &rest_joint_}) {
      std::vector<std::vector<double>> low = *rows;
      for (std::vector<double>& row : low) {
        for (size_t x = 1; x < row.size(); ++x) row[x] = std::min(row[x], row[x - 1]);
      }
      low_.push_back(std::move(low));
    }
    min_transfer_.assign(n_ + 1, kInf);  // least transfer after a layer in [x, n - 2]
    for (int e = n_ - 2; e >= 0; --e) {
      min_transfer_[e] = std::min(min_transfer_[e + 1], TransferMs(e));
    }
    return true;
  }

  bool Reachable() const { return can_finish_[0][0] != 0; }

  void Offer(const std::vector<int>& boundaries) {
    if (!Fits(boundaries)) return;
    const double step = ctx_.step_time_ms(boundaries);
    if (step < best_) {
      best_ = step;
      best_split_ = boundaries;
    }
  }

  // Candidate splits (partitioner/split_helpers.h): for the per-stage lower bounds of the
  // doc, the split that makes the largest of them least; then caps on the largest forward.
  // Stops once `share` of the budget is spent (checked before every simulation).
  void OfferBalanced(double share) {
    if (p_ < 2) return;
    const double b = m_ - 1.0;
    const auto path = [&](int, int i, int e) {
      return (i == 0 ? 0.0 : cost_.StageMs(0, i - 1)) + m_ * cost_.StageMs(i, e);
    };
    const auto joint = [&](int s, int i, int e) {
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      const double six = FirstBackwardToLastForwardMs(cost_, seg_f_[s], seg_b_[s], i, e);
      return std::max(path(s, i, e),
                      total_ + std::max({alpha_[s] * f + b * g, b * f + beta_[s] * g, six}));
    };
    const auto balanced = [&](auto cost, double high) {
      if (Spent() > share * budget_s_) return;
      if (std::optional<std::vector<int>> split = BalancedSplit(n_, p_, cost, high)) {
        Offer(*split);
      }
    };
    if (!classic_) {
      double high = 0;
      for (int c = 0; c < p_; ++c) high = std::max(high, shapes_->Value(c, 0, n_ - 1));
      balanced([&](int c, int i, int e) { return shapes_->Value(c, i, e); }, high + 1);
    }
    balanced(path, m_ * total_ + 1);
    balanced(joint, 2 * m_ * total_ + 1);
    // Caps on the largest forward and backward together (gpipe's step is T + 2 sum t +
    // (m - 1)(max F + max B)): for forward caps from the average stage's F up by 20 %, the
    // split with the least max B under the cap.
    const auto capped = [&](double cap_f) {
      return [&, cap_f](int, int i, int e) {
        return cost_.ForwardMs(i, e) > cap_f ? kInf : cost_.BackwardMs(i, e);
      };
    };
    const double least_f = cost_.ForwardMs(0, n_ - 1) / p_;  // max F is at least this
    const double all_b = cost_.BackwardMs(0, n_ - 1) + 1;
    for (int g = 0; g <= 64; ++g) balanced(capped(least_f * (1 + 0.2 * g / 64)), all_b);
  }

  // Hill climbing from the incumbent (partitioner/split_helpers.h), until `share` of the
  // budget is spent. Only makes the incumbent better; never prunes.
  void Improve(double share) {
    if (best_split_.empty()) return;
    ClimbFromSplit(
        n_, best_split_,
        [&](const std::vector<int>& b) {
          const double before = best_;
          Offer(b);
          return best_ < before;
        },
        [&] { return Spent() > share * budget_s_; });
  }

  // Searches every split; returns whether it finished within the budget.
  bool Run() {
    boundaries_.assign(p_ - 1, 0);
    // gpipe's step is exactly T + 2 sum t + (m - 1)(max F + max B) (docs/cost-model.md), so
    // two partial splits ending at the same layer compare by (max F, max B, sum t) alone when
    // those are the stages' own times (one device type, no recomputation).
    // The memo keeps one small list per (stage, layer): at most 2e6 of them (48 MB empty).
    if (gpipe_ && classic_ && ctx_.devices.cost.empty() && !ctx_.bound_cost &&
        !ctx_.stage_fits && static_cast<double>(p_) * (n_ + 1) <= 2e6) {
      memo_.emplace(p_, n_ + 1);
    }
    Visit(0, 0, Fixed{}, 0.0);
    return !aborted_;
  }

  // The bounds at stages 0..k-1 fixed by `prefix` (k entries) and stage k ending at `e`.
  StepBoundProbe Probe(const std::vector<int>& prefix, int e) const {
    Fixed fixed;
    int j = 0;
    const int k = static_cast<int>(prefix.size());
    for (int s = 0; s < k; ++s) {
      fixed = Extend(s, fixed, j, prefix[s] - 1);
      j = prefix[s];
    }
    StepBoundProbe probe;
    probe.growing = GrowingBound(k, fixed, j, e);
    probe.skip = k + 1 < p_ ? SkipBound(k, fixed, j, e) : -kInf;
    probe.bound = Bound(k, Extend(k, fixed, j, e), e + 1);
    return probe;
  }

  double best() const { return best_; }
  const std::vector<int>& best_split() const { return best_split_; }
  double open_bound() const { return open_bound_; }
  // A bound that needs no tables: one micro-batch's round trip, and m times the average
  // stage (some stage is at least the average and runs m forwards and backwards).
  double RootBound() const {
    return classic_ ? std::max(total_, m_ * total_ / p_) : m_ * total_ / num_devices_;
  }
  int64_t nodes() const { return nodes_; }

 private:
  // Aggregates over the fixed stages 0..k.
  struct Fixed {
    double prefix = 0;        // sum of stage time + 2 x transfer over the fixed stages
    double transfers = 0;     // sum of the fixed boundaries' transfers
    double first_path = 0;    // max over fixed s of prefix_s + m x stage time
    double weighted = 0;      // max over fixed s of Weighted(s, F_s, B_s)
    // max over fixed s whose segment is not empty of bound 6's FirstBackwardToLastForwardMs
    // less 2 x the transfers before stage s (bound 6 is T + 4 sum t + this)
    double segmented = -kInf;
    double max_f = 0, max_b = 0;
    double generic = 0;        // bound 7: max over the fixed chunks
    // Bound 8, per device: m x its fixed chunks' F + B, plus the way to its first op and
    // from its last op once the chunks of those ops are fixed (DeviceMs).
    std::vector<double> busy;
  };

  // Bound 8: m x the fixed chunks' time on their busiest device (several chunks per device).
  double BusyBound(const Fixed& fixed) const {
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
      ms += shapes_->GradMs(0, j - 1);
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

  bool Fits(const std::vector<int>& b) const {
    std::vector<WideBytes> device(num_devices_, 0);
    for (int s = 0; s < p_; ++s) {
      const int first = s == 0 ? 0 : b[s - 1];
      const int last = s + 1 == p_ ? n_ - 1 : b[s] - 1;
      if (!WithinMemory(s, first, last)) return false;
      if (ctx_.stage_fits) continue;  // its own check, one chunk per device
      device[lists_.chunk_device[s]] += cost_.PeakMemory(first, last, ctx_.in_flight[s]);
    }
    // A device's peak is the sum of its chunks' (several chunks per device).
    for (int s = 0; s < p_; ++s) {
      const std::optional<uint64_t>& limit = devices_.memory_limit[s];
      if (limit && device[lists_.chunk_device[s]] > WideBytes{*limit}) return false;
    }
    return true;
  }

  // The bounds' transfer after layer e: the least over the boundaries' links, so that the
  // bounds describe one pipeline whose every time is at most the real one's.
  double TransferMs(int e) const { return bound_transfer_[e]; }

  // can_finish_[k][j]: stages k..p-1 can cover layers [j, n-1] within the memory limit. The
  // cost model's peak only grows with the range; a stage_fits check (recomputation) only
  // with its end, as the kept input changes with the start.
  void BuildReach() {
    can_finish_ = CanFinishTable(
        p_, n_, [&](int k, int first, int last) { return WithinMemory(k, first, last); },
        !ctx_.stage_fits);
  }

  bool WithinMemory(int k, int first, int last) const {
    if (ctx_.stage_fits) return ctx_.stage_fits(k, first, last);
    const std::optional<uint64_t>& limit = devices_.memory_limit[k];
    return !limit || cost_.PeakMemory(first, last, ctx_.in_flight[k]) <= WideBytes{*limit};
  }

  // Subtrees whose bound exceeds this are dropped: they cannot hold a split faster than the
  // incumbent by more than 10^-12 of it (rounding: bounds and simulations add in different
  // orders). Dropping ties too keeps models of identical blocks, where thousands of splits
  // share the least step, from being enumerated one by one.
  double Threshold() const { return best_ - 1e-12 * best_; }

  // Bounds 2 and 5 of stage k with forward f and backward b, less T + 2 sum t.
  double Weighted(int k, double f, double b) const {
    return std::max(alpha_[k] * f + (m_ - 1.0) * b, (m_ - 1.0) * f + beta_[k] * b);
  }

  // Bounds that only grow with the end e of stage k (so the scan over e may stop).
  double GrowingBound(int k, const Fixed& before, int j, int e) const {
    if (!classic_) {
      double lb = std::max({before.generic, shapes_->Value(k, j, e), BusyBound(before)});
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
    const double f = cost_.ForwardMs(j, e), b = cost_.BackwardMs(j, e);
    const double x = cost_.StageMs(j, e);
    const double base = total_ + 2 * before.transfers;
    double lb = std::max(before.first_path, before.prefix + m_ * x);
    lb = std::max(lb, base + std::max(before.weighted, Weighted(k, f, b)));
    lb = std::max(lb, base + 2 * before.transfers + before.segmented);
    if (seg_f_[k] + seg_b_[k] > 0) {  // the transfers from stage k on are left out here
      lb = std::max(lb, base + FirstBackwardToLastForwardMs(cost_, seg_f_[k], seg_b_[k], j, e));
    }
    lb = std::max(lb, base + (m_ - 1.0) * std::max(before.max_f, f));
    if (gpipe_) {
      const double most = std::max(before.max_f, f) + std::max(before.max_b, b);
      lb = std::max(lb, base + (m_ - 1.0) * most);
    }
    return lb;
  }

  Fixed Extend(int k, const Fixed& before, int j, int e) const {
    Fixed after = before;
    if (!classic_) {
      after.generic = std::max(before.generic, shapes_->Value(k, j, e));
      if (after.busy.empty()) after.busy.assign(num_devices_, 0.0);
      after.busy[lists_.chunk_device[k]] += DeviceMs(k, j, e);
      return after;
    }
    const double x = cost_.StageMs(j, e);
    const double t = k + 1 < p_ ? TransferMs(e) : 0.0;
    after.first_path = std::max(before.first_path, before.prefix + m_ * x);
    after.prefix = before.prefix + x + 2 * t;
    after.transfers = before.transfers + t;
    after.weighted =
        std::max(before.weighted, Weighted(k, cost_.ForwardMs(j, e), cost_.BackwardMs(j, e)));
    if (seg_f_[k] + seg_b_[k] > 0) {
      const double six = FirstBackwardToLastForwardMs(cost_, seg_f_[k], seg_b_[k], j, e);
      after.segmented = std::max(before.segmented, six - 2 * before.transfers);
    }
    after.max_f = std::max(before.max_f, cost_.ForwardMs(j, e));
    after.max_b = std::max(before.max_b, cost_.BackwardMs(j, e));
    return after;
  }

  // Lower bound on the step of every split that starts with the fixed stages of `fixed`
  // (stages 0..k, the next starting at layer `next`).
  double Bound(int k, const Fixed& fixed, int next) const {
    const int r = p_ - 1 - k;  // stages left
    if (!classic_) {
      double lb = std::max(fixed.generic, BusyBound(fixed));
      if (r >= 1) {
        lb = std::max(lb, generic_[r][next]);
        lb = std::max(lb, WaterBound(k, fixed.busy, cost_.StageMs(next, n_ - 1)));
      }
      return lb;
    }
    double transfers = fixed.transfers;
    if (r >= 2) transfers += (r - 1) * min_transfer_[next];
    const double base = total_ + 2 * transfers;
    double lb = std::max(fixed.first_path, base + fixed.weighted);
    lb = std::max(lb, base + 2 * transfers + fixed.segmented);
    double max_f = fixed.max_f, max_b = fixed.max_b;
    if (r >= 1) {
      lb = std::max(lb, fixed.prefix + m_ * mm_x_[r][next]);
      lb = std::max(lb, 2 * fixed.transfers + rest_joint_[r][next]);
      max_f = std::max(max_f, mm_f_[r][next]);
      max_b = std::max(max_b, mm_b_[r][next]);
    }
    lb = std::max(lb, base + (m_ - 1.0) * max_f);
    if (gpipe_) {
      // max F + max B is at least every stage's F + B, so at least the rest's least max X.
      const double rest_x = r >= 1 ? mm_x_[r][next] : 0.0;
      lb = std::max(lb, base + (m_ - 1.0) * std::max(max_f + max_b, rest_x));
    }
    return lb;
  }

  // A lower bound on Bound(k, Extend(k, before, j, e), e + 1) that does not increase with e:
  // it reads the prefix minima (low_) of the later stages' tables.
  double SkipBound(int k, const Fixed& before, int j, int e) const {
    const int r = p_ - 1 - k, x = e + 1;
    if (!classic_) {
      // The level before stage k takes any layers: at most every end's (k - 1's devices).
      double water = 0;
      if (num_devices_ < p_ && k >= 1 && !before.busy.empty()) {
        water = WaterBound(k - 1, before.busy, cost_.StageMs(j, n_ - 1));
      }
      return std::max({before.generic, BusyBound(before), low_generic_[r][x], water});
    }
    const double base = total_ + 2 * before.transfers;
    const double f = std::max(before.max_f, low_[1][r][x]);
    const double b = std::max(before.max_b, low_[2][r][x]);
    double lb = std::max(before.prefix + m_ * low_[0][r][x],
                         2 * before.transfers + low_[3][r][x]);
    lb = std::max(lb, base + 2 * before.transfers + before.segmented);
    lb = std::max(lb, base + (m_ - 1.0) * f);
    if (gpipe_) lb = std::max(lb, base + (m_ - 1.0) * std::max(f + b, low_[0][r][x]));
    return lb;
  }

  // `inherited`: the bound of the partial split that `before` fixes, which holds for every
  // split below it too (a child's own bound can be lower: its formulas differ).
  void Visit(int k, int j, const Fixed& before, double inherited) {
    const int r = p_ - 1 - k;
    const int last_end = n_ - 1 - r;
    int first_end = j;
    if (r == 0) {
      first_end = n_ - 1;  // the last stage ends at the last layer
    } else {
      // Every end before the first whose SkipBound is within the threshold has a Bound above
      // it too, so would be dropped: start the scan there (binary search, SkipBound falls).
      int lo = j, hi = last_end + 1;
      const double threshold = Threshold();
      while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (SkipBound(k, before, j, mid) > threshold) lo = mid + 1;
        else hi = mid;
      }
      first_end = lo;
    }
    for (int e = first_end; e <= last_end; ++e) {
      if (!WithinMemory(k, j, e)) break;
      if (!can_finish_[k + 1][e + 1]) continue;
      if (GrowingBound(k, before, j, e) > Threshold()) break;
      const Fixed fixed = Extend(k, before, j, e);
      const double lb = std::max(inherited, Bound(k, fixed, e + 1));
      ++nodes_;
      if (lb > Threshold()) continue;
      if (aborted_ || ((r == 0 || (nodes_ & 255) == 0) && OverBudget())) {
        aborted_ = true;
        open_bound_ = std::min(open_bound_, lb);
        continue;
      }
      if (r == 0) {
        if (num_devices_ != p_ && !Fits(boundaries_)) continue;  // chunks share a device
        const double step = ctx_.step_time_ms(boundaries_);
        if (step < best_) {
          best_ = step;
          best_split_ = boundaries_;
        }
      } else {
        // gpipe: an earlier partial split ending at the same layer with max F, max B and
        // transfer sum each at most these was searched or pruned (every completion of it at
        // least the incumbent); this one's completions are each at least its same completion.
        if (memo_ && memo_->Dominated(k, e + 1, {fixed.max_f, fixed.max_b, fixed.transfers})) {
          continue;
        }
        boundaries_[k] = e + 1;
        Visit(k + 1, e + 1, fixed, lb);
      }
    }
  }

  double Spent() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  bool OverBudget() const { return Spent() > budget_s_; }
  const SplitContext& ctx_;
  const CostModel& cost_;  // times at most every stage's own (ctx.bound_cost)
  const StageSetup devices_;
  const int n_, p_, m_;
  const bool gpipe_;
  const bool classic_;       // bounds 1-6 apply (gpipe, 1f1b); otherwise 7-9
  const DeviceLists lists_;  // bounds 8 and 9: what the device lists say
  const int num_devices_;
  const double budget_s_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<double> alpha_, beta_;
  std::vector<double> seg_f_, seg_b_;  // bound 6's counts per device
  std::optional<ChainShapes> shapes_;  // bound 7 (not gpipe or 1f1b)
  mutable std::vector<double> level_scratch_, busy_scratch_;  // reused by the bounds
  std::vector<std::vector<double>> generic_, low_generic_;
  double total_ = 0;
  std::vector<std::vector<char>> can_finish_;
  std::vector<std::vector<double>> mm_x_, mm_f_, mm_b_, rest_joint_;
  std::vector<std::vector<std::vector<double>>> low_;  // prefix minima over j of the tables
  std::vector<double> min_transfer_;
  std::vector<double> bound_transfer_;  // per layer, TransferMs's table
  std::vector<int> boundaries_;
  std::optional<DominanceMemo> memo_;  // gpipe's, per (stage, next layer)
  double best_ = kInf;
  std::vector<int> best_split_;
  double open_bound_ = kInf;
  bool aborted_ = false;
  int64_t nodes_ = 0;
};

}  // namespace

Status StepSearchApplies(const Schedule& schedule) { return ValidateSchedule(schedule); }

Result<StepBoundProbe> ProbeStepBounds(const SplitContext& ctx, const Schedule& schedule,
                                       const std::vector<int>& prefix, int e) {
  PP_RETURN_IF_ERROR(StepSearchApplies(schedule));
  BranchAndBound search(ctx, schedule, 0);
  if (!search.Prepare()) return Status::Error("the bound tables do not fit");
  return search.Probe(prefix, e);
}

Result<StepSearchResult> MinStepSplit(const SplitContext& ctx, const Schedule& schedule,
                                      const StepSearchOptions& options) {
  PP_RETURN_IF_ERROR(StepSearchApplies(schedule));
  if (NumChunks(schedule) != ctx.num_stages || !ctx.step_time_ms) {
    return Status::Error("internal error: the step search needs the plan's schedule");
  }
  BranchAndBound search(ctx, schedule, options.time_budget_s);
  const bool tables = search.Prepare();
  if (tables && !search.Reachable()) {
    return Status::Error("no split of the layers into " + std::to_string(ctx.num_stages) +
                         " stages fits the memory limit");
  }
  for (const std::vector<int>& seed : options.seeds) {
    if (static_cast<int>(seed.size()) == ctx.num_stages - 1) search.Offer(seed);
  }
  if (tables && options.candidates) {  // better incumbents first: candidates, local moves
    search.OfferBalanced(0.1);
    search.Improve(0.2);
  }
  StepSearchResult result;
  const bool finished = tables && search.Run();
  if (search.best_split().empty() && ctx.num_stages > 1) {
    if (finished) {  // every split was looked at: with chunks, no device sum fits
      return Status::Error("no split of the layers into " + std::to_string(ctx.num_stages) +
                           " chunks fits the memory limit on every device");
    }
    return Status::Error("the step search found no split within the memory limit in its time "
                         "budget (--step-budget)");
  }
  result.boundaries = search.best_split();
  result.step_ms = search.best();
  result.nodes = search.nodes();
  // Unfinished: the least bound over the subtrees left open (or, without the tables, the
  // bound before any stage is fixed).
  const double open = finished ? kInf : tables ? search.open_bound() : search.RootBound();
  result.lower_bound_ms = std::min(result.step_ms, open);
  result.exact = result.lower_bound_ms >= result.step_ms;
  return result;
}

}  // namespace pp
