#include "partitioner/step_search.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Larger inputs skip the branch and bound (its tables take p x n entries) and report the
// seeds' best with the root bound.
constexpr double kMaxTableEntries = 5e7;

// rows[r][j], r in [1, max_r]: the least, over splits of layers [j, n-1] into the last r
// stages p-r..p-1 (non-empty), of the largest stage cost; infinity when n - j < r.
// `cost(r, i, e)` is the cost of layers [i, e] as stage p-r; it must not decrease as the range
// grows, nor (for one range) as r falls (later stages cost at least as much). Then
// rows[r-1][x] does not increase with x on the x that can still be split, so the best end of
// the first stage is where its rising cost crosses the falling rest: a binary search.
template <typename Cost>
std::vector<std::vector<double>> MinMaxRows(int n, int max_r, Cost cost) {
  std::vector<std::vector<double>> rows(max_r + 1, std::vector<double>(n + 1, kInf));
  if (max_r < 1) return rows;
  for (int j = 0; j < n; ++j) rows[1][j] = cost(1, j, n - 1);
  for (int r = 2; r <= max_r; ++r) {
    const std::vector<double>& rest = rows[r - 1];
    for (int j = 0; j + r <= n; ++j) {
      int lo = j, hi = n - r;  // first stage [j, e]; the rest [e + 1, n - 1] needs r - 1 layers
      while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cost(r, j, mid) >= rest[mid + 1]) hi = mid;
        else lo = mid + 1;
      }
      double best = std::max(cost(r, j, lo), rest[lo + 1]);
      if (lo > j) best = std::min(best, std::max(cost(r, j, lo - 1), rest[lo]));
      rows[r][j] = best;
    }
  }
  return rows;
}

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
        budget_s_(budget_s),
        start_(std::chrono::steady_clock::now()) {
    // alpha_[s] = m - (forwards device s runs before its first backward).
    for (const auto& ops : schedule.stages) {
      int forwards = 0;
      while (forwards < static_cast<int>(ops.size()) && ops[forwards].kind == OpKind::kForward) {
        ++forwards;
      }
      alpha_.push_back(static_cast<double>(m_ - forwards));
      beta_.push_back(Beta(ops));
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
    bound_transfer_.assign(n_, kInf);
    for (int e = 0; e < n_; ++e) {
      for (const Link& l : links) {
        bound_transfer_[e] = std::min(bound_transfer_[e], cost_.TransferMs(e, l));
      }
      if (links.empty()) bound_transfer_[e] = cost_.TransferMs(e);
    }
  }

  // beta_s (docs/cost-model.md, bound 5): with i the micro-batch of the device's last forward,
  // the backwards before that forward plus those from B(i) on, less one; 0 (bound 3) when the
  // list is not of that shape (B(i) before the last forward, or missing).
  static double Beta(const std::vector<PipelineOp>& ops) {
    int last_forward = -1;
    for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
      if (ops[x].kind == OpKind::kForward) last_forward = x;
    }
    if (last_forward < 0) return 0;
    const int i = ops[last_forward].micro_batch;
    int count = 0, own = -1;
    for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
      if (ops[x].kind != OpKind::kBackward) continue;
      if (ops[x].micro_batch == i && own < 0) own = x;
      if (x < last_forward || (own >= 0 && x >= own)) ++count;
    }
    if (own < last_forward) return 0;
    return std::max(0, count - 1);
  }

  // Whether the bound tables fit; false: only the root bound is available.
  bool Prepare() {
    if (static_cast<double>(p_) * (n_ + 1) * 8 > kMaxTableEntries) return false;
    BuildReach();
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
    const double alpha_min = *std::min_element(alpha_.begin(), alpha_.end());
    const double beta_min = *std::min_element(beta_.begin(), beta_.end());
    rest_joint_ = MinMaxRows(n_, max_r, [&](int r, int i, int e) {
      const double a = rising ? alpha_[p_ - r] : alpha_min;
      const double c = rising ? beta_[p_ - r] : beta_min;
      const double path = (i == 0 ? 0.0 : cost_.StageMs(0, i - 1)) + m_ * cost_.StageMs(i, e);
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      return std::max(path, total_ + std::max(a * f + b * g, b * f + c * g));
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

  // Candidate splits (heuristic, only ever offered): for the per-stage lower bounds of the
  // doc, the split that makes the largest of them least, found by bisection on the value with
  // a greedy that gives every stage as many layers as the value allows.
  // Both stop once `share` of the budget is spent (checked before every simulation).
  void OfferBalanced(double share) {
    if (p_ < 2) return;
    const double b = m_ - 1.0;
    const auto path = [&](int, int i, int e) {
      return (i == 0 ? 0.0 : cost_.StageMs(0, i - 1)) + m_ * cost_.StageMs(i, e);
    };
    const auto joint = [&](int s, int i, int e) {
      const double f = cost_.ForwardMs(i, e), g = cost_.BackwardMs(i, e);
      return std::max(path(s, i, e), total_ + std::max(alpha_[s] * f + b * g,
                                                        b * f + beta_[s] * g));
    };
    const auto balanced = [&](auto cost, double high) {
      std::vector<int> split(p_ - 1);
      const auto greedy = [&](double limit) {
        int i = 0;
        for (int s = 0; s + 1 < p_; ++s) {
          int lo = i, hi = n_ - 1 - (p_ - 1 - s);  // the largest end within `limit`
          if (lo > hi || cost(s, i, lo) > limit) return false;
          while (lo < hi) {
            const int mid = lo + (hi - lo + 1) / 2;
            if (cost(s, i, mid) <= limit) lo = mid;
            else hi = mid - 1;
          }
          split[s] = lo + 1;
          i = lo + 1;
        }
        return cost(p_ - 1, i, n_ - 1) <= limit;
      };
      if (Spent() > share * budget_s_ || !greedy(high)) return;
      double lo = 0, hi = high;
      for (int it = 0; it < 100 && lo < 0.5 * (lo + hi) && 0.5 * (lo + hi) < hi; ++it) {
        (greedy(0.5 * (lo + hi)) ? hi : lo) = 0.5 * (lo + hi);
      }
      if (greedy(hi)) Offer(split);
    };
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

  // Hill climbing from the incumbent: moves of one boundary, or of a run of neighbouring
  // boundaries together, by +-1, 2, 4, ... layers, kept while the simulated step falls. Only
  // makes the incumbent (a simulated split within the memory limit) better; never prunes.
  void Improve(double share) {
    for (bool improved = true; improved && !best_split_.empty();) {
      improved = false;
      for (int w = 1; w <= 2 && !improved; ++w) {  // w neighbouring boundaries move together
        for (int i = 0; i + w <= p_ - 1 && !improved; ++i) {
          for (int d = 1; d < n_ && !improved; d *= 2) {
            for (const int delta : {d, -d}) {
              if (Spent() > share * budget_s_) return;
              std::vector<int> b = best_split_;
              for (int x = i; x < i + w; ++x) b[x] += delta;
              const int lo = i == 0 ? 0 : b[i - 1], hi = i + w == p_ - 1 ? n_ : b[i + w];
              const double before = best_;
              if (b[i] > lo && b[i + w - 1] < hi) Offer(b);  // inner order is kept by the move
              if ((improved = best_ < before)) break;
            }
          }
        }
      }
    }
  }

  // Searches every split; returns whether it finished within the budget.
  bool Run() {
    boundaries_.assign(p_ - 1, 0);
    Visit(0, 0, Fixed{});
    return !aborted_;
  }

  double best() const { return best_; }
  const std::vector<int>& best_split() const { return best_split_; }
  double open_bound() const { return open_bound_; }
  int64_t nodes() const { return nodes_; }

 private:
  // Aggregates over the fixed stages 0..k.
  struct Fixed {
    double prefix = 0;        // sum of stage time + 2 x transfer over the fixed stages
    double transfers = 0;     // sum of the fixed boundaries' transfers
    double first_path = 0;    // max over fixed s of prefix_s + m x stage time
    double weighted = 0;      // max over fixed s of Weighted(s, F_s, B_s)
    double max_f = 0, max_b = 0;
  };

  bool Fits(const std::vector<int>& b) const {
    for (int s = 0; s < p_; ++s) {
      const int first = s == 0 ? 0 : b[s - 1];
      const int last = s + 1 == p_ ? n_ - 1 : b[s] - 1;
      if (!WithinMemory(s, first, last)) return false;
    }
    return true;
  }

  // The bounds' transfer after layer e: the least over the boundaries' links, so that the
  // bounds describe one pipeline whose every time is at most the real one's.
  double TransferMs(int e) const { return bound_transfer_[e]; }

  // can_finish_[k][j]: stages k..p-1 can cover layers [j, n-1] within the memory limit.
  void BuildReach() {
    can_finish_.assign(p_ + 1, std::vector<char>(n_ + 1, 0));
    can_finish_[p_][n_] = 1;
    std::vector<int> next(n_ + 2);
    for (int k = p_ - 1; k >= 0; --k) {
      const std::vector<char>& after = can_finish_[k + 1];
      next[n_ + 1] = n_ + 1;
      for (int x = n_; x >= 0; --x) next[x] = after[x] ? x : next[x + 1];
      int last = -1;  // largest e with [j, e] within memory, non-decreasing in j
      for (int j = 0; j < n_; ++j) {
        last = std::max(last, j - 1);
        while (last + 1 < n_ && WithinMemory(k, j, last + 1)) ++last;
        can_finish_[k][j] = last >= j && next[j + 1] <= last + 1;
      }
    }
  }

  bool WithinMemory(int k, int first, int last) const {
    const std::optional<uint64_t>& limit = devices_.memory_limit[k];
    return !limit || cost_.PeakMemory(first, last, ctx_.in_flight[k]) <= WideBytes{*limit};
  }

  double Threshold() const { return best_ + 1e-12 * best_; }

  // Bounds 2 and 5 of stage k with forward f and backward b, less T + 2 sum t.
  double Weighted(int k, double f, double b) const {
    return std::max(alpha_[k] * f + (m_ - 1.0) * b, (m_ - 1.0) * f + beta_[k] * b);
  }

  // Bounds that only grow with the end e of stage k (so the scan over e may stop).
  double GrowingBound(int k, const Fixed& before, int j, int e) const {
    const double f = cost_.ForwardMs(j, e), b = cost_.BackwardMs(j, e);
    const double x = cost_.StageMs(j, e);
    const double base = total_ + 2 * before.transfers;
    double lb = std::max(before.first_path, before.prefix + m_ * x);
    lb = std::max(lb, base + std::max(before.weighted, Weighted(k, f, b)));
    lb = std::max(lb, base + (m_ - 1.0) * std::max(before.max_f, f));
    if (gpipe_) {
      lb = std::max(lb, base + (m_ - 1.0) * (std::max(before.max_f, f) + std::max(before.max_b, b)));
    }
    return lb;
  }

  Fixed Extend(int k, const Fixed& before, int j, int e) const {
    Fixed after = before;
    const double x = cost_.StageMs(j, e);
    const double t = k + 1 < p_ ? TransferMs(e) : 0.0;
    after.first_path = std::max(before.first_path, before.prefix + m_ * x);
    after.prefix = before.prefix + x + 2 * t;
    after.transfers = before.transfers + t;
    after.weighted =
        std::max(before.weighted, Weighted(k, cost_.ForwardMs(j, e), cost_.BackwardMs(j, e)));
    after.max_f = std::max(before.max_f, cost_.ForwardMs(j, e));
    after.max_b = std::max(before.max_b, cost_.BackwardMs(j, e));
    return after;
  }

  // Lower bound on the step of every split that starts with the fixed stages of `fixed`
  // (stages 0..k, the next starting at layer `next`).
  double Bound(int k, const Fixed& fixed, int next) const {
    const int r = p_ - 1 - k;  // stages left
    double transfers = fixed.transfers;
    if (r >= 2) transfers += (r - 1) * min_transfer_[next];
    const double base = total_ + 2 * transfers;
    double lb = std::max(fixed.first_path, base + fixed.weighted);
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
  double SkipBound(int k, const Fixed& before, int e) const {
    const int r = p_ - 1 - k, x = e + 1;
    const double base = total_ + 2 * before.transfers;
    const double f = std::max(before.max_f, low_[1][r][x]);
    const double b = std::max(before.max_b, low_[2][r][x]);
    double lb = std::max(before.prefix + m_ * low_[0][r][x],
                         2 * before.transfers + low_[3][r][x]);
    lb = std::max(lb, base + (m_ - 1.0) * f);
    if (gpipe_) lb = std::max(lb, base + (m_ - 1.0) * std::max(f + b, low_[0][r][x]));
    return lb;
  }

  void Visit(int k, int j, const Fixed& before) {
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
        if (SkipBound(k, before, mid) > threshold) lo = mid + 1;
        else hi = mid;
      }
      first_end = lo;
    }
    for (int e = first_end; e <= last_end; ++e) {
      if (!WithinMemory(k, j, e)) break;
      if (!can_finish_[k + 1][e + 1]) continue;
      if (GrowingBound(k, before, j, e) > Threshold()) break;
      const Fixed fixed = Extend(k, before, j, e);
      const double lb = Bound(k, fixed, e + 1);
      ++nodes_;
      if (lb > Threshold()) continue;
      if (aborted_ || ((nodes_ & 1023) == 0 && OverBudget())) {
        aborted_ = true;
        open_bound_ = std::min(open_bound_, lb);
        continue;
      }
      if (r == 0) {
        const double step = ctx_.step_time_ms(boundaries_);
        if (step < best_) {
          best_ = step;
          best_split_ = boundaries_;
        }
      } else {
        boundaries_[k] = e + 1;
        Visit(k + 1, e + 1, fixed);
      }
    }
  }

  double Spent() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  bool OverBudget() const { return Spent() > budget_s_; }

 public:
  // A bound that needs no tables: one micro-batch's round trip, and m times the average
  // stage (some stage is at least the average and runs m forwards and backwards).
  double RootBound() const { return std::max(total_, m_ * total_ / p_); }

 private:
  const SplitContext& ctx_;
  const CostModel& cost_;  // times at most every stage's own (ctx.bound_cost)
  const StageSetup devices_;
  const int n_, p_, m_;
  const bool gpipe_;
  const double budget_s_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<double> alpha_, beta_;
  double total_ = 0;
  std::vector<std::vector<char>> can_finish_;
  std::vector<std::vector<double>> mm_x_, mm_f_, mm_b_, rest_joint_;
  std::vector<std::vector<std::vector<double>>> low_;  // prefix minima over j of the tables
  std::vector<double> min_transfer_;
  std::vector<double> bound_transfer_;  // per layer, TransferMs's table
  std::vector<int> boundaries_;
  double best_ = kInf;
  std::vector<int> best_split_;
  double open_bound_ = kInf;
  bool aborted_ = false;
  int64_t nodes_ = 0;
};

}  // namespace

Status StepSearchApplies(const Schedule& schedule) {
  const std::string why = "--objective step is not available yet for schedule " + schedule.name;
  if (!schedule.chunk_device.empty()) return Status::Error(why + " (several chunks per device)");
  for (const auto& ops : schedule.stages) {
    for (const PipelineOp& op : ops) {
      if (op.kind == OpKind::kBackwardInput || op.kind == OpKind::kBackwardWeight) {
        return Status::Error(why + " (split backward)");
      }
    }
    if (ops.empty() || ops.front().kind != OpKind::kForward ||
        ops.back().kind != OpKind::kBackward) {
      return Status::Error(why);
    }
  }
  return Status::Ok();
}

Result<StepSearchResult> MinStepSplit(const SplitContext& ctx, const Schedule& schedule,
                                      const StepSearchOptions& options) {
  PP_RETURN_IF_ERROR(StepSearchApplies(schedule));
  if (schedule.num_stages != ctx.num_stages || !ctx.step_time_ms) {
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
  if (tables) {  // better incumbents first: candidate splits, then local moves
    search.OfferBalanced(0.1);
    search.Improve(0.2);
  }
  StepSearchResult result;
  const bool finished = tables && search.Run();
  if (search.best_split().empty() && ctx.num_stages > 1) {
    return Status::Error("the step search found no split within its time budget");
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
