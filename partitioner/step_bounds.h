// The lower bounds the exact step search prunes with (partitioner/step_search.cc), behind one
// interface: the search fixes stages (chunks) 0, 1, ... left to right, depth first, and asks
// these at each partial split. docs/cost-model.md derives them, in two families:
//   classic (step_bounds_classic.cc): bounds 1-6, and for gpipe its closed form (4) with the
//     dominance rule; one chunk per device, lists of whole forwards and backwards;
//   chunked (step_bounds_chunked.cc): bounds 7-9, for every other schedule (several chunks
//     per device, split backwards, lists from a CSV).
// Every value is in ms and at most the simulated step of every split it is asked about
// (within rounding), so that the search may drop what lies above its incumbent.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "executor/schedule.h"
#include "partitioner/cost_model.h"
#include "partitioner/methods.h"

namespace pp {

// The times the bounds read: at most every stage's own (ctx.bound_cost; else ctx.cost).
const CostModel& BoundCost(const SplitContext& ctx);

// A cost per stage for a candidate split: the search simulates the split of the layers that
// makes the largest cost(stage, first, last) least (BalancedSplit, split_helpers.h). A
// heuristic for the incumbent only; `high` is above the largest cost of some split.
struct CandidateCost {
  std::function<double(int s, int first, int last)> cost;
  double high = 0;
};

// One family of bounds over the splits of ctx.cost's layers into ctx.num_stages stages.
// It keeps the fixed stages' aggregates per depth: Fix(k, j, e) fixes stage k as layers
// [j, e] on top of stages 0..k-1 as they were last fixed, replacing any stage k fixed before
// (and with it the stages after). Built by MakeStepBounds; lives while the search does, holding
// references to its context and schedule.
class StepBounds {
 public:
  virtual ~StepBounds() = default;

  // The tables of Fix's bound and of Skip (about 8 x p x n entries); before any call below
  // but RootBound and CandidateCosts.
  virtual void Prepare() = 0;

  // On every split; needs no tables.
  virtual double RootBound() const = 0;

  // With stages 0..k-1 fixed and stage k over [j, e]: on every split whose stage k starts at
  // j and ends at e or later (so it never falls as e grows).
  virtual double Growing(int k, int j, int e) const = 0;
  // The same, on every split whose stage k ends at e or earlier (k < p - 1): at most what
  // Fix(k, j, e) returns, and never rising as e grows.
  virtual double Skip(int k, int j, int e) const = 0;

  // The first end e in [j, last] with Skip(k, j, e) at most `threshold`, last + 1 when none
  // (FirstEndWithin below, with the family's Skip, starting at `guess`).
  virtual int FirstEnd(int k, int j, int last, int guess, double threshold) const = 0;

  // Fixes stage k as [j, e] and returns the bound on every split that continues stages 0..k
  // (the next stage starting at e + 1).
  virtual double Fix(int k, int j, int e) = 0;

  // With stages 0..k fixed (k < p - 1; the next one starting at `next`): true when every
  // split continuing them simulates at least as slow as the same continuation of fixed
  // stages passed here before, whose subtree the search then took on; otherwise records
  // these (so the search must take this subtree on). The default never prunes.
  virtual bool Dominated(int /*k*/, int /*next*/) { return false; }

  // The per-stage costs of the candidate splits, in the order they are tried.
  virtual std::vector<CandidateCost> CandidateCosts() const = 0;
};

// The first x in [lo, hi) with skip(x) at most `threshold`, hi when none; `skip` must not rise
// with x. Steps of 1, 2, 4, ... from `guess` bracket it, then a binary search: few calls when
// the guess is near.
template <typename Skip>
int FirstEndWithin(int lo, int hi, int guess, double threshold, const Skip& skip) {
  const auto above = [&](int x) { return skip(x) > threshold; };
  guess = std::clamp(guess, lo, hi);
  if (guess < hi && !above(guess)) {  // at most guess
    hi = guess;
    int step = 1;
    while (hi - step >= lo && !above(hi - step)) {
      hi -= step;
      step *= 2;
    }
    lo = std::max(lo, hi - step + 1);
  } else if (guess < hi) {  // above guess
    lo = guess + 1;
    int step = 1;
    while (lo + step - 1 < hi && above(lo + step - 1)) {
      lo += step;
      step *= 2;
    }
    hi = std::min(hi, lo + step - 1);
  }
  // The first end in [lo, hi) that is not above (above holds on a prefix).
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (above(mid)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The family for `schedule` (the one ctx.step_time_ms simulates, passing ValidateSchedule):
// the only place that chooses.
std::unique_ptr<StepBounds> MakeStepBounds(const SplitContext& ctx, const Schedule& schedule);

// The families, for MakeStepBounds. `closed_form`: the step is gpipe's
// T + 2 sum t + (m - 1)(max F + max B) (bound 4 and the dominance rule apply).
std::unique_ptr<StepBounds> MakeClassicStepBounds(const SplitContext& ctx,
                                                  const Schedule& schedule, bool closed_form);
std::unique_ptr<StepBounds> MakeChunkedStepBounds(const SplitContext& ctx,
                                                  const Schedule& schedule);

}  // namespace pp
