#include "partitioner/step_search.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <utility>

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
        classic_(Classic(schedule)),
        budget_s_(budget_s),
        start_(std::chrono::steady_clock::now()) {
    for (int c = 0; c < p_; ++c) chunk_device_.push_back(ChunkDevice(schedule, c));
    num_devices_ = schedule.num_stages;
    for (int d = 0; d < num_devices_; ++d) {
      const std::vector<PipelineOp>& ops = schedule.stages[d];
      first_op_chunk_.push_back(ops.empty() ? -1 : OpChunk(schedule, d, ops.front()));
      last_op_chunk_.push_back(ops.empty() ? -1 : OpChunk(schedule, d, ops.back()));
      first_op_forward_.push_back(!ops.empty() && ops.front().kind == OpKind::kForward);
      last_op_gradient_.push_back(!ops.empty() && (ops.back().kind == OpKind::kBackward ||
                                                   ops.back().kind == OpKind::kBackwardInput));
    }
    // later_devices_[k]: the devices of chunks k+1..p-1 (bound 9).
    later_has_.assign(p_, std::vector<char>(num_devices_, 0));
    later_devices_.assign(p_, {});
    for (int k = p_ - 2; k >= 0; --k) {
      later_has_[k] = later_has_[k + 1];
      later_has_[k][chunk_device_[k + 1]] = 1;
      for (int d = 0; d < num_devices_; ++d) {
        if (later_has_[k][d]) later_devices_[k].push_back(d);
      }
    }
    if (!classic_) {
      // Bounds 1-6 read one device's list as one stage's; the other schedules use the chain
      // shapes of bound 7 only, and these counts serve the candidate splits alone.
      alpha_.assign(p_, 0.0);
      beta_.assign(p_, 0.0);
      seg_f_.assign(p_, 0.0);
      seg_b_.assign(p_, 0.0);
      BuildShapes(schedule);
    }
    // alpha_[s] = m - (forwards device s runs before its first backward).
    for (const auto& ops : classic_ ? schedule.stages : std::vector<std::vector<PipelineOp>>{}) {
      int forwards = 0;
      while (forwards < static_cast<int>(ops.size()) && ops[forwards].kind == OpKind::kForward) {
        ++forwards;
      }
      alpha_.push_back(static_cast<double>(m_ - forwards));
      beta_.push_back(Beta(ops));
      const auto [nf, nb] = Segment(ops);
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

  // One chunk per device, full backwards, every list starting with a forward and ending with
  // a backward (gpipe, 1f1b): bounds 1-6 hold.
  static bool Classic(const Schedule& schedule) {
    if (!schedule.chunk_device.empty()) return false;
    for (const auto& ops : schedule.stages) {
      if (ops.empty() || ops.front().kind != OpKind::kForward ||
          ops.back().kind != OpKind::kBackward) {
        return false;
      }
      for (const PipelineOp& op : ops) {
        if (op.kind != OpKind::kForward && op.kind != OpKind::kBackward) return false;
      }
    }
    return true;
  }

  // Bound 7 (docs/cost-model.md): a chain through one chunk c of layers [i, e] is worth
  //   cf F + cb B + ci I + cw W + hf F(before) + hg G(before) + tf F(after) + tg G(after)
  //   + kf F(all),
  // with F, B, I, W the chunk's own times (I, W: lower bounds, below) and "before"/"after"
  // the layers outside it; G is a gradient op's time: B, or I when the schedule splits.
  struct Shape {
    double cf = 0, cb = 0, ci = 0, cw = 0, hf = 0, hg = 0, tf = 0, tg = 0, kf = 0;
  };

  static double Diff(const std::vector<double>& prefix, int first, int last) {
    return first > last ? 0.0 : prefix[last + 1] - prefix[first];
  }
  double GradMs(int first, int last) const {
    if (first > last) return 0.0;
    return splits_ ? Diff(input_, first, last) : cost_.BackwardMs(first, last);
  }

  double ShapeValue(const Shape& x, int i, int e) const {
    const double before_f = i == 0 ? 0.0 : cost_.ForwardMs(0, i - 1);
    const double after_f = e + 1 >= n_ ? 0.0 : cost_.ForwardMs(e + 1, n_ - 1);
    return x.cf * cost_.ForwardMs(i, e) + x.cb * cost_.BackwardMs(i, e) +
           x.ci * Diff(input_, i, e) + x.cw * Diff(weight_, i, e) + x.hf * before_f +
           x.hg * GradMs(0, i - 1) + x.tf * after_f + x.tg * GradMs(e + 1, n_ - 1) +
           x.kf * all_f_;
  }

  // Per-layer lower bounds on the input- and weight-gradient times a chunk gets (prefix sums
  // over ctx.input_lower_ms / weight_lower_ms, or half of each backward without them).
  void BuildSplitTimes() {
    input_.assign(n_ + 1, 0.0);
    weight_.assign(n_ + 1, 0.0);
    const bool given = static_cast<int>(ctx_.input_lower_ms.size()) == n_ &&
                       static_cast<int>(ctx_.weight_lower_ms.size()) == n_;
    for (int l = 0; l < n_; ++l) {
      const double half = cost_.BackwardMs(l, l) / 2;
      input_[l + 1] = input_[l] + (given ? ctx_.input_lower_ms[l] : half);
      weight_[l + 1] = weight_[l] + (given ? ctx_.weight_lower_ms[l] : half);
    }
  }

  // Bound 7 of chunk c over layers [i, e]: the largest of its shapes.
  double Generic(int c, int i, int e) const {
    double best = 0;
    for (const Shape& x : shapes_[c]) best = std::max(best, ShapeValue(x, i, e));
    return best;
  }

  // For every chunk, chains "reach op a; run the chunk's ops from a to z (the device's other
  // ops in between are left out); go on from z to the end". Reaching a forward needs the
  // forwards of the layers before; a backward or input gradient needs its micro-batch's
  // forward through every layer and the gradient back from the layers after (a weight
  // gradient also its own I before it); after a forward come the forwards of the layers
  // after, the gradients back through them, the chunk's own and those of the layers before;
  // after B or I the gradients of the layers before; nothing after W. What a and z add depends
  // only on their kind (F; B or I; W), and a longer run only adds ops, so for each pair of
  // kinds the longest run, from the first op of a's kind to the last of z's, is the one to
  // keep: at most nine shapes per chunk. Gradients of other chunks count at the least share
  // an input gradient can take (input_share_low) when the schedule splits backwards anywhere,
  // else as whole backwards.
  void BuildShapes(const Schedule& schedule) {
    splits_ = false;
    for (const auto& ops : schedule.stages) {
      for (const PipelineOp& op : ops) {
        splits_ |= op.kind != OpKind::kForward && op.kind != OpKind::kBackward;
      }
    }
    BuildSplitTimes();
    const auto kind_class = [](OpKind k) {
      return k == OpKind::kForward ? 0 : k == OpKind::kBackwardWeight ? 2 : 1;
    };
    shapes_.assign(p_, {});
    for (int c = 0; c < p_; ++c) {
      std::vector<OpKind> kinds;  // chunk c's ops in its device's order
      const int d = chunk_device_[c];
      for (const PipelineOp& op : schedule.stages[d]) {
        if (OpChunk(schedule, d, op) == c) kinds.push_back(op.kind);
      }
      bool whole = false;
      for (OpKind k : kinds) whole |= k == OpKind::kBackward;
      int first[3] = {-1, -1, -1}, last[3] = {-1, -1, -1};
      for (int x = 0; x < static_cast<int>(kinds.size()); ++x) {
        const int k = kind_class(kinds[x]);
        if (first[k] < 0) first[k] = x;
        last[k] = x;
      }
      for (int h = 0; h < 3; ++h) {
        for (int t = 0; t < 3; ++t) {
          const int a = first[h], z = last[t];
          if (a < 0 || z < a) continue;
          Shape y;
          if (h == 0) {
            y.hf = 1;
          } else {
            y.kf = 1;
            y.tg = 1;
            if (h == 2) y.ci += 1;  // the W's own I ran before it
          }
          for (int x = a; x <= z; ++x) {
            switch (kinds[x]) {
              case OpKind::kForward: y.cf += 1; break;
              case OpKind::kBackward: y.cb += 1; break;
              case OpKind::kBackwardInput: y.ci += 1; break;
              case OpKind::kBackwardWeight: y.cw += 1; break;
            }
          }
          if (t == 0) {  // the forward's way down and back, through this chunk's gradient too
            y.tf += 1;
            y.tg += 1;
            y.hg += 1;
            (whole ? y.cb : y.ci) += 1;
          } else if (t == 1) {
            y.hg += 1;
          }
          // A coefficient outside the chunk above its own would let the value fall as the
          // chunk grows; lowering it keeps a valid (smaller) chain and makes it monotone. A
          // layer's G is at most its B, and with splits at most its I.
          const double own_g = splits_ ? y.cb + y.ci : y.cb;
          y.hf = std::min(y.hf, y.cf);
          y.tf = std::min(y.tf, y.cf);
          y.hg = std::min(y.hg, own_g);
          y.tg = std::min(y.tg, own_g);
          shapes_[c].push_back(y);
        }
      }
    }
  }

  // Bound 6 (docs/cost-model.md): the forwards and backwards from device s's first backward to
  // its last forward, inclusive; (0, 0) when the first backward comes after the last forward.
  static std::pair<double, double> Segment(const std::vector<PipelineOp>& ops) {
    int first_backward = -1, last_forward = -1;
    for (int x = 0; x < static_cast<int>(ops.size()); ++x) {
      if (ops[x].kind == OpKind::kForward) last_forward = x;
      if (ops[x].kind == OpKind::kBackward && first_backward < 0) first_backward = x;
    }
    if (first_backward < 0 || last_forward < first_backward) return {0.0, 0.0};
    double nf = 0, nb = 0;
    for (int x = first_backward; x <= last_forward; ++x) {
      (ops[x].kind == OpKind::kForward ? nf : nb) += 1;
    }
    return {nf, nb};
  }

  // Bound 6 of a stage [i, e] run with segment counts (nf, nb), less T + 2 sum t + 2 x the
  // transfers from the stage on: the layers after the stage (T - their prefix) once more, and
  // the segment. With a count of zero the term for the later layers is left out, so that the
  // value still grows with the range.
  double Segmented(double nf, double nb, int i, int e) const {
    const double own = nf * cost_.ForwardMs(i, e) + nb * cost_.BackwardMs(i, e);
    if (nf < 1 || nb < 1) return own;
    return own + (total_ - cost_.StageMs(0, e));
  }

  // Whether the bound tables fit; false: only the root bound is available.
  bool Prepare() {
    if (static_cast<double>(p_) * (n_ + 1) * 8 > kMaxTableEntries) return false;
    BuildReach();
    const int max_r = p_ - 1;
    all_f_ = cost_.ForwardMs(0, n_ - 1);
    if (!classic_) {
      // The later chunks' bound 7 taken together; the least over the chunks from p - r on
      // keeps the table's cost from falling as r falls.
      generic_ = MinMaxRows(n_, max_r, [&](int r, int i, int e) {
        double least = kInf;
        for (int c = p_ - r; c < p_; ++c) least = std::min(least, Generic(c, i, e));
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
      return std::max(path, total_ + std::max({a * f + b * g, b * f + c * g,
                                               Segmented(nf, nb, i, e)}));
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
      return std::max(path(s, i, e),
                      total_ + std::max({alpha_[s] * f + b * g, b * f + beta_[s] * g,
                                         Segmented(seg_f_[s], seg_b_[s], i, e)}));
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
    if (!classic_) {
      double high = 0;
      for (int c = 0; c < p_; ++c) high = std::max(high, Generic(c, 0, n_ - 1));
      balanced([&](int c, int i, int e) { return Generic(c, i, e); }, high + 1);
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
    // gpipe's step is exactly T + 2 sum t + (m - 1)(max F + max B) (docs/cost-model.md), so
    // two partial splits ending at the same layer compare by (max F, max B, sum t) alone when
    // those are the stages' own times (one device type, no recomputation).
    // The memo keeps one small list per (stage, layer): at most 2e6 of them (48 MB empty).
    memo_ = gpipe_ && classic_ && ctx_.devices.cost.empty() && !ctx_.bound_cost &&
            !ctx_.stage_fits && static_cast<double>(p_) * (n_ + 1) <= 2e6;
    if (memo_) seen_.assign(static_cast<size_t>(p_) * (n_ + 1), {});
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
  int64_t nodes() const { return nodes_; }

 private:
  // Aggregates over the fixed stages 0..k.
  struct Fixed {
    double prefix = 0;        // sum of stage time + 2 x transfer over the fixed stages
    double transfers = 0;     // sum of the fixed boundaries' transfers
    double first_path = 0;    // max over fixed s of prefix_s + m x stage time
    double weighted = 0;      // max over fixed s of Weighted(s, F_s, B_s)
    // max over fixed s whose segment is not empty of Segmented(s) - 2 x the transfers before
    // stage s (bound 6 is T + 4 sum t + this)
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
    const int d = chunk_device_[k];
    if (first_op_chunk_[d] == k && first_op_forward_[d] && j > 0) ms += cost_.ForwardMs(0, j - 1);
    if (last_op_chunk_[d] == k && last_op_gradient_[d]) ms += GradMs(0, j - 1);
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
    for (int d : later_devices_[k]) level.push_back(busy[d]);
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
      device[chunk_device_[s]] += cost_.PeakMemory(first, last, ctx_.in_flight[s]);
    }
    // A device's peak is the sum of its chunks' (several chunks per device).
    for (int s = 0; s < p_; ++s) {
      const std::optional<uint64_t>& limit = devices_.memory_limit[s];
      if (limit && device[chunk_device_[s]] > WideBytes{*limit}) return false;
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
      int last = -1;  // largest e with [j, e] within memory
      for (int j = 0; j < n_; ++j) {
        if (ctx_.stage_fits) {
          // Only monotone in e for a fixed start (the kept input changes with the start).
          int lo = j - 1, hi = n_ - 1;
          while (lo < hi) {
            const int mid = lo + (hi - lo + 1) / 2;
            if (WithinMemory(k, j, mid)) lo = mid;
            else hi = mid - 1;
          }
          last = lo;
        } else {  // the cost model's peak: non-decreasing in j too (two pointers)
          last = std::max(last, j - 1);
          while (last + 1 < n_ && WithinMemory(k, j, last + 1)) ++last;
        }
        can_finish_[k][j] = last >= j && next[j + 1] <= last + 1;
      }
    }
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
      double lb = std::max({before.generic, Generic(k, j, e), BusyBound(before)});
      if (num_devices_ < p_) {
        std::vector<double>& busy = busy_scratch_;
        if (before.busy.empty()) busy.assign(num_devices_, 0.0);
        else busy.assign(before.busy.begin(), before.busy.end());
        busy[chunk_device_[k]] += DeviceMs(k, j, e);
        lb = std::max(lb, busy[chunk_device_[k]]);
        // Stage k's layers moved from the rest onto its own device: the level only rises
        // when that device still takes later chunks (else it may fall, so it is left out).
        if (k + 1 < p_ && later_has_[k][chunk_device_[k]]) {
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
      lb = std::max(lb, base + Segmented(seg_f_[k], seg_b_[k], j, e));
    }
    lb = std::max(lb, base + (m_ - 1.0) * std::max(before.max_f, f));
    if (gpipe_) {
      lb = std::max(lb, base + (m_ - 1.0) * (std::max(before.max_f, f) + std::max(before.max_b, b)));
    }
    return lb;
  }

  Fixed Extend(int k, const Fixed& before, int j, int e) const {
    Fixed after = before;
    if (!classic_) {
      after.generic = std::max(before.generic, Generic(k, j, e));
      if (after.busy.empty()) after.busy.assign(num_devices_, 0.0);
      after.busy[chunk_device_[k]] += DeviceMs(k, j, e);
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
      after.segmented = std::max(before.segmented,
                                 Segmented(seg_f_[k], seg_b_[k], j, e) - 2 * before.transfers);
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
        if (memo_ && Dominated(k, e + 1, fixed)) continue;
        boundaries_[k] = e + 1;
        Visit(k + 1, e + 1, fixed, lb);
      }
    }
  }

  // gpipe: whether an earlier partial split with stages 0..k ending at layer next - 1 had a
  // max F, max B and transfer sum each at most this one's. Its subtree was searched or pruned
  // (every completion of it at least the incumbent), and this one's completions are each at
  // least that one's same completion: nothing below the incumbent. Keeps up to 16 per cell.
  bool Dominated(int k, int next, const Fixed& f) {
    std::vector<Seen>& cell = seen_[static_cast<size_t>(k) * (n_ + 1) + next];
    for (const Seen& x : cell) {
      if (x.max_f <= f.max_f && x.max_b <= f.max_b && x.transfers <= f.transfers) return true;
    }
    if (cell.size() < 16) cell.push_back({f.max_f, f.max_b, f.transfers});
    return false;
  }

  double Spent() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  bool OverBudget() const { return Spent() > budget_s_; }

 public:
  // A bound that needs no tables: one micro-batch's round trip, and m times the average
  // stage (some stage is at least the average and runs m forwards and backwards).
  double RootBound() const {
    return classic_ ? std::max(total_, m_ * total_ / p_) : m_ * total_ / num_devices_;
  }

 private:
  const SplitContext& ctx_;
  const CostModel& cost_;  // times at most every stage's own (ctx.bound_cost)
  const StageSetup devices_;
  const int n_, p_, m_;
  const bool gpipe_;
  const bool classic_;  // bounds 1-6 apply (gpipe, 1f1b); otherwise 7 and 8
  const double budget_s_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<double> alpha_, beta_;
  std::vector<double> seg_f_, seg_b_;  // bound 6's counts per device
  std::vector<int> chunk_device_;      // per chunk (stage of the split)
  std::vector<std::vector<char>> later_has_;     // [k][d]: device d runs a chunk after k
  // Per device: the chunks of its first and last ops, whether the first is a forward and the
  // last a gradient op (B or I).
  std::vector<int> first_op_chunk_, last_op_chunk_;
  std::vector<char> first_op_forward_, last_op_gradient_;
  std::vector<std::vector<int>> later_devices_;  // [k]: those devices
  int num_devices_ = 0;
  std::vector<std::vector<Shape>> shapes_;  // bound 7, per chunk
  mutable std::vector<double> level_scratch_, busy_scratch_;  // reused by the bounds
  bool splits_ = false;                     // some op is an I or a W
  std::vector<double> input_, weight_;      // prefix sums of the I and W lower bounds
  double all_f_ = 0;                        // sum of every layer's forward
  std::vector<std::vector<double>> generic_, low_generic_;
  double total_ = 0;
  std::vector<std::vector<char>> can_finish_;
  std::vector<std::vector<double>> mm_x_, mm_f_, mm_b_, rest_joint_;
  std::vector<std::vector<std::vector<double>>> low_;  // prefix minima over j of the tables
  std::vector<double> min_transfer_;
  std::vector<double> bound_transfer_;  // per layer, TransferMs's table
  std::vector<int> boundaries_;
  struct Seen {
    double max_f, max_b, transfers;
  };
  bool memo_ = false;
  std::vector<std::vector<Seen>> seen_;  // gpipe's dominance memo, per (k, next)
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
