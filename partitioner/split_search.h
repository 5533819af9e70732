// Exact search over contiguous splits of n layers into p non-empty stages.
//
// A split "fits" a limit pair (T, L) when every stage s covering layers [i, j] has
// StageMs(i, j) <= T and PeakMemory(i, j, in_flight[s]) <= L. Both quantities grow with the
// range, so for a fixed stage and last layer j the fitting first layers form a suffix
// [lo_s(j), j] with lo_s non-decreasing in j. The set of layers at which stage s can end is
// then computed from stage s-1's set in O(n) with two pointers and prefix counts, and the
// whole test costs O(p n). The least T (or L) for which a split exists is found by bisection
// over the ordered bit patterns of non-negative doubles (or over integers), so it is exact:
// the answer is the smallest representable value that fits, which is some stage's cost.
//
// Fast path: a backward greedy (the last stage takes the longest suffix that fits, then the
// stage before it, each leaving one layer per earlier stage) decides the same question in
// O(p log n) with binary searches over the prefix sums. A greedy success is a witness, so it
// is always right when it says "fits"; its "does not fit" is exact when later stages are never
// held to a tighter limit than earlier ones (no memory limit, or in_flight non-increasing in s:
// gpipe, 1f1b). docs/cost-model.md proves it. Otherwise a greedy failure is re-checked by the
// O(p n) pass.
//
// Heterogeneous stages (StageSetup: each stage its own device's times and memory limit) use
// the same tests with stage s's own costs; the greedy's "does not fit" is then re-checked by
// the O(p n) pass unless every stage shares one device.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "partitioner/cost_model.h"

namespace pp {

// Which split to return among those that meet the limits.
enum class SplitTie {
  kFewestTransferMs,  // least total transfer time over the p-1 boundaries
  kEarly,             // each boundary as early as possible (working from the last stage)
  kLate,              // each boundary as late as possible
};

// How feasibility is decided: the greedy where it is exact (falling back otherwise), or the
// O(p n) two-pointer pass always (the reference the tests compare the greedy with).
enum class FeasibilityPath { kAuto, kTwoPointer };

// Above this many p x n entries Split() keeps no tables: every tie is answered with kEarly's
// split, which the backward greedy reconstructs in O(p log n) with O(p) memory.
inline constexpr int64_t kMaxReconstructEntries = int64_t{1} << 22;

class SplitSearch {
 public:
  // `cost` must outlive the search. `in_flight` has one entry per stage (p entries).
  // No memory limit when `memory_limit` is empty.
  SplitSearch(const CostModel& cost, std::vector<int> in_flight,
              std::optional<uint64_t> memory_limit, FeasibilityPath path = FeasibilityPath::kAuto);
  // Per-stage devices; `setup`'s cost models must outlive the search.
  SplitSearch(StageSetup setup, std::vector<int> in_flight,
              FeasibilityPath path = FeasibilityPath::kAuto);

  int num_stages() const { return static_cast<int>(in_flight_.size()); }

  // Whether some split meets the memory limits (any stage time).
  bool MemoryFeasible() const;
  // The least memory limit, one for every stage, under which some split fits: min over splits
  // of the largest stage peak memory.
  WideBytes SmallestMemoryLimit() const;
  // The least max_stage_ms over splits that meet the memory limit. Requires MemoryFeasible().
  double MinBottleneckMs() const;
  // A split whose stages all take <= `bottleneck_ms` and meet the memory limit, chosen by
  // `tie`, as its p-1 boundaries; nullopt when none exists (or, rather than a made-up split,
  // when costs that are not numbers leave no choice). Past kMaxReconstructEntries (fast path)
  // every tie gives kEarly's split.
  std::optional<std::vector<int>> Split(double bottleneck_ms, SplitTie tie) const;

 private:
  struct Limits {
    double time_ms;
    WideBytes memory;   // one limit for every stage, when limit_memory
    bool limit_memory;
    bool stage_memory;  // otherwise each stage's own limit from the setup
  };
  bool StageFits(const Limits& limits, int s, int first, int last) const;
  // Fills `lo` (p x n; lo[s][j] = first layer of the widest fitting stage s ending at j, or
  // j + 1 when none) and `reach` (p x n; whether stage s can end at j) when given.
  bool Fits(const Limits& limits, std::vector<std::vector<int>>* lo,
            std::vector<std::vector<char>>* reach) const;
  Limits MemoryOnly(WideBytes memory) const;
  // The backward greedy; fills `boundaries` (p-1 entries) when given and it succeeds.
  bool GreedyFits(const Limits& limits, std::vector<int>* boundaries) const;
  // Whether a greedy failure under `limits` proves that no split fits.
  bool GreedyIsExact(const Limits& limits) const;
  Limits LimitsAt(double time_ms) const;
  SplitSearch(const CostModel& base, const StageSetup& setup, std::vector<int> in_flight,
              FeasibilityPath path);

  StageSetup setup_;
  const CostModel& cost_;  // stage 0's; byte counts are the same for every stage
  std::vector<int> in_flight_;
  FeasibilityPath path_;
  bool same_devices_;
  bool any_memory_limit_;
  bool in_flight_non_increasing_;
};

// Boundaries that minimise the largest per-stage sum of `weights` (exact; ties toward early
// boundaries). Used by the parameter-count baseline. Requires 1 <= p <= weights.size().
std::vector<int> MinMaxWeightSplit(const std::vector<uint64_t>& weights, int p);

}  // namespace pp
