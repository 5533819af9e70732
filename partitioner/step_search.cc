#include "partitioner/step_search.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "partitioner/recompute.h"
#include "partitioner/split_helpers.h"
#include "partitioner/step_bounds.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Larger inputs skip the branch and bound (its tables take p x n entries) and report the
// seeds' best with the root bound.
constexpr double kMaxTableEntries = 5e7;

// The branch and bound over the stage ends; the bounds it prunes with come from `bounds_`.
class BranchAndBound {
 public:
  BranchAndBound(const SplitContext& ctx, const Schedule& schedule, double budget_s)
      : ctx_(ctx),
        cost_(BoundCost(ctx)),
        devices_(DevicesOf(ctx)),
        n_(ctx.cost->num_layers()),
        p_(ctx.num_stages),
        num_devices_(schedule.num_devices),
        bounds_(MakeStepBounds(ctx, schedule)),
        budget_s_(budget_s),
        start_(std::chrono::steady_clock::now()) {
    for (int c = 0; c < NumChunks(schedule); ++c) {
      chunk_device_.push_back(ChunkDevice(schedule, c));
    }
  }

  // Whether the bound tables fit; false: only the root bound is available.
  bool Prepare() {
    if (static_cast<double>(p_) * (n_ + 1) * 8 > kMaxTableEntries) return false;
    BuildReach();
    bounds_->Prepare();
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

  // Candidate splits (partitioner/split_helpers.h): for the bounds' per-stage costs, the
  // split that makes the largest of them least; then caps on the largest forward.
  // Stops once `share` of the budget is spent (checked before every simulation).
  void OfferBalanced(double share) {
    if (p_ < 2) return;
    const auto balanced = [&](const auto& cost, double high) {
      if (Spent() > share * budget_s_) return;
      if (std::optional<std::vector<int>> split = BalancedSplit(n_, p_, cost, high)) {
        Offer(*split);
      }
    };
    for (const CandidateCost& c : bounds_->CandidateCosts()) balanced(c.cost, c.high);
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

  // With several chunks per device a device's memory is the sum of its chunks', which the
  // seeds (split without that limit) and the left-to-right search (whose reach table checks
  // chunks one by one) rarely meet when the limit is tight. When no seed fits, a descent on
  // the devices' memory finds a split that does: starting from equal layer counts, it moves
  // one layer at a time from a chunk of a device over the limit to any other chunk (the
  // boundaries between them shift by one), taking the move that most lowers the bytes over
  // the limit summed over the devices, then the largest device's; it stops when nothing is
  // over, no move helps or after 4 n moves. Only ever offers a split (Offer checks it); never
  // prunes. Runs whatever the budget: without a fitting split the search has no answer.
  void OfferMemoryFit() {
    if (!best_split_.empty() || num_devices_ == p_ || ctx_.stage_fits || p_ < 2 || n_ < p_) {
      return;
    }
    bool limited = false;
    for (const std::optional<uint64_t>& limit : devices_.memory_limit) limited |= limit.has_value();
    if (!limited) return;
    std::vector<int> b(p_ - 1);
    for (int s = 1; s < p_; ++s) b[s - 1] = static_cast<int>(int64_t{n_} * s / p_);
    // A device is held to the least limit of its chunks (as Fits holds it to each).
    std::vector<std::optional<WideBytes>> device_limit(num_devices_);
    for (int s = 0; s < p_; ++s) {
      const std::optional<uint64_t>& limit = devices_.memory_limit[s];
      std::optional<WideBytes>& held = device_limit[chunk_device_[s]];
      if (limit && (!held || WideBytes{*limit} < *held)) held = WideBytes{*limit};
    }
    std::vector<WideBytes> device(num_devices_);
    // (bytes over the limits summed over the devices, the largest device's bytes)
    const auto score = [&](const std::vector<int>& split) {
      DevicePeaks(split, &device);
      WideBytes over = 0, most = 0;
      for (int d = 0; d < num_devices_; ++d) {
        most = std::max(most, device[d]);
        if (device_limit[d] && device[d] > *device_limit[d]) over += device[d] - *device_limit[d];
      }
      return std::make_pair(over, most);
    };
    const auto size = [&](const std::vector<int>& split, int s) {
      const int first = s == 0 ? 0 : split[s - 1];
      const int end = s + 1 == p_ ? n_ : split[s];
      return end - first;
    };
    std::pair<WideBytes, WideBytes> current = score(b);
    std::vector<int> trial;
    // Each move lowers the score, so the descent ends; the cap keeps it short.
    for (int64_t moves = 0; current.first > 0 && moves < int64_t{4} * n_; ++moves) {
      score(b);  // `device` now holds b's
      const std::vector<WideBytes> held = device;
      const int fullest =
          static_cast<int>(std::max_element(held.begin(), held.end()) - held.begin());
      std::optional<std::pair<WideBytes, WideBytes>> best;
      std::vector<int> best_split;
      // Moves off the fullest device first; when none helps, off any device over its limit.
      for (int pass = 0; pass < 2 && !best; ++pass) {
        for (int from = 0; from < p_; ++from) {
          const int d = chunk_device_[from];
          const bool source = pass == 0 ? d == fullest
                                        : device_limit[d] && held[d] > *device_limit[d];
          if (!source || size(b, from) < 2) continue;
          for (int to = 0; to < p_; ++to) {
            if (to == from) continue;
            trial = b;
            // from < to: chunk `from` gives its last layer and each boundary up to `to` moves
            // down one; from > to: it gives its first and each boundary from `to` moves up.
            if (from < to) {
              for (int k = from; k < to; ++k) --trial[k];
            } else {
              for (int k = to; k < from; ++k) ++trial[k];
            }
            const std::pair<WideBytes, WideBytes> value = score(trial);
            if (value < current && (!best || value < *best)) {
              best = value;
              best_split = trial;
            }
          }
        }
      }
      if (!best) break;
      current = *best;
      b = std::move(best_split);
    }
    if (current.first == 0) Offer(b);
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
    skipped_.assign(p_, 0);
    Visit(0, 0, 0.0);
    return !aborted_;
  }

  // The bounds at stages 0..k-1 fixed by `prefix` (k entries) and stage k ending at `e`.
  StepBoundProbe Probe(const std::vector<int>& prefix, int e) {
    int j = 0;
    const int k = static_cast<int>(prefix.size());
    for (int s = 0; s < k; ++s) {
      bounds_->Fix(s, j, prefix[s] - 1);
      j = prefix[s];
    }
    StepBoundProbe probe;
    probe.growing = bounds_->Growing(k, j, e);
    probe.skip = k + 1 < p_ ? bounds_->Skip(k, j, e) : -kInf;
    probe.bound = bounds_->Fix(k, j, e);
    return probe;
  }

  double best() const { return best_; }
  const std::vector<int>& best_split() const { return best_split_; }
  double open_bound() const { return open_bound_; }
  double RootBound() const { return bounds_->RootBound(); }
  int64_t nodes() const { return nodes_; }

 private:
  bool Fits(const std::vector<int>& b) const {
    for (int s = 0; s < p_; ++s) {
      const int first = s == 0 ? 0 : b[s - 1];
      const int last = s + 1 == p_ ? n_ - 1 : b[s] - 1;
      if (!WithinMemory(s, first, last)) return false;
    }
    if (ctx_.stage_fits) return true;  // its own check, one chunk per device
    std::vector<WideBytes> device;
    DevicePeaks(b, &device);
    // A device's peak over its chunks (several chunks per device).
    for (int s = 0; s < p_; ++s) {
      const std::optional<uint64_t>& limit = devices_.memory_limit[s];
      if (limit && device[chunk_device_[s]] > WideBytes{*limit}) return false;
    }
    return true;
  }

  // can_finish_[k][j]: stages k..p-1 can cover layers [j, n-1] within the memory limit. The
  // cost model's peak only grows with the range; with recomputation (stage_fits, chunk_memory)
  // only with its end, as the kept input changes with the start.
  void BuildReach() {
    can_finish_ = CanFinishTable(
        p_, n_, [&](int k, int first, int last) { return WithinMemory(k, first, last); },
        !ctx_.stage_fits && !ctx_.chunk_memory);
  }

  // Each device's peak under split `b` (cost_model.h DeviceMemory), or the sum of its
  // chunks' where the context gives no device counts.
  void DevicePeaks(const std::vector<int>& b, std::vector<WideBytes>* device) const {
    const bool counted = ctx_.device_in_flight.size() == static_cast<size_t>(num_devices_);
    std::vector<DeviceMemory> memory(num_devices_);
    for (int s = 0; s < p_; ++s) {
      const int first = s == 0 ? 0 : b[s - 1];
      const int last = s + 1 == p_ ? n_ - 1 : b[s] - 1;
      memory[chunk_device_[s]].Add(Memory(s, first, last), ctx_.in_flight[s]);
    }
    device->resize(num_devices_);
    for (int d = 0; d < num_devices_; ++d) {
      (*device)[d] = counted ? memory[d].Peak(ctx_.device_in_flight[d]) : memory[d].sum;
    }
  }

  // Chunk s's memory over [first, last]: the cost model's, or ctx_.chunk_memory's
  // (recomputation).
  ChunkMemory Memory(int s, int first, int last) const {
    return ctx_.chunk_memory ? ctx_.chunk_memory(s, first, last)
                             : ChunkMemoryOf(cost_, first, last, false, RecomputeInput{});
  }
  WideBytes ChunkPeak(int s, int first, int last) const {
    return Memory(s, first, last).Peak(ctx_.in_flight[s]);
  }

  bool WithinMemory(int k, int first, int last) const {
    if (ctx_.stage_fits) return ctx_.stage_fits(k, first, last);
    const std::optional<uint64_t>& limit = devices_.memory_limit[k];
    return !limit || ChunkPeak(k, first, last) <= WideBytes{*limit};
  }

  // Subtrees whose bound exceeds this are dropped: they cannot hold a split faster than the
  // incumbent by more than 10^-12 of it (rounding: bounds and simulations add in different
  // orders). Dropping ties too keeps models of identical blocks, where thousands of splits
  // share the least step, from being enumerated one by one.
  double Threshold() const { return best_ - 1e-12 * best_; }

  // Stage k starts at layer j, stages 0..k-1 fixed in bounds_. `inherited`: their bound,
  // which holds for every split below them too (a child's own bound can be lower: its
  // formulas differ).
  void Visit(int k, int j, double inherited) {
    const int r = p_ - 1 - k;
    const int last_end = n_ - 1 - r;
    int first_end = j;
    if (r == 0) {
      first_end = n_ - 1;  // the last stage ends at the last layer
    } else {
      // Every end before the first whose Skip is within the threshold has a bound above it
      // too, so would be dropped: start the scan there (Skip falls, so a search finds it,
      // guessing that it lies as far past j as it did in the last scan at this depth).
      first_end = bounds_->FirstEnd(k, j, last_end, j + skipped_[k], Threshold());
      skipped_[k] = first_end - j;
    }
    for (int e = first_end; e <= last_end; ++e) {
      if (!WithinMemory(k, j, e)) break;
      if (!can_finish_[k + 1][e + 1]) continue;
      if (bounds_->Growing(k, j, e) > Threshold()) break;
      const double lb = std::max(inherited, bounds_->Fix(k, j, e));
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
        if (bounds_->Dominated(k, e + 1)) continue;
        boundaries_[k] = e + 1;
        Visit(k + 1, e + 1, lb);
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
  const int n_, p_;
  const int num_devices_;
  std::vector<int> chunk_device_;  // per chunk
  const std::unique_ptr<StepBounds> bounds_;
  const double budget_s_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<std::vector<char>> can_finish_;
  std::vector<int> boundaries_;
  std::vector<int> skipped_;  // per stage: how far past its start the last scan began
  double best_ = kInf;
  std::vector<int> best_split_;
  double open_bound_ = kInf;
  bool aborted_ = false;
  int64_t nodes_ = 0;
};

}  // namespace

namespace {
// MinStepSplit for a schedule that passed ValidateSchedule.
Result<StepSearchResult> MinStepSplitValid(const SplitContext& ctx, const Schedule& schedule,
                                           const StepSearchOptions& options);
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
  return MinStepSplitValid(ctx, schedule, options);
}

Result<StepSearchResult> MinStepSplit(const SplitContext& ctx, const PlanContext& context,
                                      const StepSearchOptions& options) {
  return MinStepSplitValid(ctx, context.schedule, options);
}

namespace {

Result<StepSearchResult> MinStepSplitValid(const SplitContext& ctx, const Schedule& schedule,
                                           const StepSearchOptions& options) {
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
    search.OfferMemoryFit();
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

}  // namespace

}  // namespace pp
