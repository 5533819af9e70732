// Bounds 1-6 of docs/cost-model.md, for one chunk per device with lists of whole forwards
// and backwards (gpipe, 1f1b), and with gpipe's closed form bound 4 and the dominance rule.
#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "partitioner/split_helpers.h"
#include "partitioner/step_bounds.h"
#include "partitioner/step_chains.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class ClassicStepBounds final : public StepBounds {
 public:
  ClassicStepBounds(const SplitContext& ctx, const Schedule& schedule, bool closed_form)
      : ctx_(ctx),
        cost_(BoundCost(ctx)),
        n_(ctx.cost->num_layers()),
        p_(ctx.num_stages),
        m_(schedule.num_micro_batches),
        gpipe_(closed_form),
        levels_(p_ + 1) {
    for (const std::vector<PipelineOp>& ops : schedule.device_ops) {
      alpha_.push_back(ForwardsLeftAtFirstBackward(ops, m_));
      beta_.push_back(LastForwardBackwards(ops));
      const auto [nf, nb] = FirstBackwardToLastForward(ops);
      seg_f_.push_back(nf);
      seg_b_.push_back(nb);
    }
    total_ = cost_.StageMs(0, n_ - 1);
    std::vector<Link> links;  // the distinct links in use
    for (const Link& l : DevicesOf(ctx).link) {
      bool seen = false;
      for (const Link& k : links) {
        seen |= k.bandwidth_bytes_per_s == l.bandwidth_bytes_per_s && k.latency_ms == l.latency_ms;
      }
      if (!seen) links.push_back(l);
    }
    bound_transfer_.assign(n_, kInf);
    for (int e = 0; e < n_; ++e) {
      for (const Link& l : links) {
        bound_transfer_[e] = std::min(bound_transfer_[e], cost_.TransferMs(e, l));
      }
      if (links.empty()) bound_transfer_[e] = cost_.TransferMs(e);
    }
  }

  void Prepare() override {
    const int max_r = p_ - 1;
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
      const double path = FirstPathMs(cost_, m_, i, e);
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
    // gpipe's step is exactly T + 2 sum t + (m - 1)(max F + max B) (docs/cost-model.md), so
    // two partial splits ending at the same layer compare by (max F, max B, sum t) alone when
    // those are the stages' own times (one device type, no recomputation).
    // The memo keeps one small list per (stage, layer): at most 2e6 of them (48 MB empty).
    if (gpipe_ && ctx_.devices.cost.empty() && !ctx_.bound_cost && !ctx_.stage_fits &&
        static_cast<double>(p_) * (n_ + 1) <= 2e6) {
      memo_.emplace(p_, n_ + 1);
    }
  }

  // One micro-batch's round trip, and m times the average stage (some stage is at least the
  // average and runs m forwards and backwards).
  double RootBound() const override { return std::max(total_, m_ * total_ / p_); }

  double Growing(int k, int j, int e) const override {
    const Fixed& before = levels_[k];
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

  // Reads the prefix minima (low_) of the later stages' tables.
  double Skip(int k, int /*j*/, int e) const override {
    const Fixed& before = levels_[k];
    const int r = p_ - 1 - k, x = e + 1;
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

  int FirstEnd(int k, int j, int last, int guess, double threshold) const override {
    return FirstEndWithin(j, last + 1, guess, threshold, [&](int e) { return Skip(k, j, e); });
  }

  double Fix(int k, int j, int e) override {
    const Fixed& before = levels_[k];
    Fixed& after = levels_[k + 1];
    after = before;
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
    return Bound(k, e + 1);
  }

  // gpipe: an earlier partial split ending at the same layer with max F, max B and transfer
  // sum each at most these was searched or pruned (every completion of it at least the
  // incumbent); this one's completions are each at least its same completion.
  bool Dominated(int k, int next) override {
    const Fixed& fixed = levels_[k + 1];
    return memo_ && memo_->Dominated(k, next, {fixed.max_f, fixed.max_b, fixed.transfers});
  }

  // The splits that make the largest per-stage bound 1, and 1, 2 and 5 together, least.
  std::vector<CandidateCost> CandidateCosts() const override {
    const double b = m_ - 1.0;
    const auto joint = [this, b](int s, int i, int e) {
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      const double six = FirstBackwardToLastForwardMs(cost_, seg_f_[s], seg_b_[s], i, e);
      return std::max(FirstPathMs(cost_, m_, i, e),
                      total_ + std::max({alpha_[s] * f + b * g, b * f + beta_[s] * g, six}));
    };
    return {{[this](int, int i, int e) { return FirstPathMs(cost_, m_, i, e); }, m_ * total_ + 1},
            {joint, 2 * m_ * total_ + 1}};
  }

 private:
  // With stages 0..k fixed and the next one starting at layer `next`: on every split that
  // continues them.
  double Bound(int k, int next) const {
    const Fixed& fixed = levels_[k + 1];
    const int r = p_ - 1 - k;  // stages left
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
  };

  // Bounds 2 and 5 of stage k with forward f and backward b, less T + 2 sum t.
  double Weighted(int k, double f, double b) const {
    return std::max(alpha_[k] * f + (m_ - 1.0) * b, (m_ - 1.0) * f + beta_[k] * b);
  }

  // The bounds' transfer after layer e: the least over the boundaries' links, so that the
  // bounds describe one pipeline whose every time is at most the real one's.
  double TransferMs(int e) const { return bound_transfer_[e]; }

  const SplitContext& ctx_;
  const CostModel& cost_;
  const int n_, p_, m_;
  const bool gpipe_;  // bound 4 and the dominance rule
  std::vector<double> alpha_, beta_;   // bounds 2 and 5, per device
  std::vector<double> seg_f_, seg_b_;  // bound 6's counts per device
  double total_ = 0;
  std::vector<double> bound_transfer_;  // per layer, TransferMs's table
  std::vector<std::vector<double>> mm_x_, mm_f_, mm_b_, rest_joint_;
  std::vector<std::vector<std::vector<double>>> low_;  // prefix minima over j of the tables
  std::vector<double> min_transfer_;
  std::vector<Fixed> levels_;  // [k]: stages 0..k-1 as fixed last
  std::optional<DominanceMemo> memo_;  // gpipe's, per (stage, next layer)
};

}  // namespace

std::unique_ptr<StepBounds> MakeClassicStepBounds(const SplitContext& ctx,
                                                  const Schedule& schedule, bool closed_form) {
  return std::make_unique<ClassicStepBounds>(ctx, schedule, closed_form);
}

}  // namespace pp
