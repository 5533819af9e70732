#include "partitioner/split_search.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>

namespace pp {
namespace {

// Non-negative doubles order like their bit patterns.
uint64_t Bits(double v) { return std::bit_cast<uint64_t>(v); }
double FromBits(uint64_t b) { return std::bit_cast<double>(b); }

// Feasible end sets for a monotone `fits(s, i, j)` predicate (see split_search.h).
template <typename FitsFn>
bool ReachEnd(int n, int p, FitsFn fits, std::vector<std::vector<int>>* lo_out,
              std::vector<std::vector<char>>* reach_out) {
  std::vector<char> prev(n, 0), cur(n, 0);
  std::vector<int> count(n + 1, 0);  // prefix counts of prev
  std::vector<int> lo_row(n);
  if (lo_out) lo_out->assign(p, std::vector<int>(n));
  if (reach_out) reach_out->assign(p, std::vector<char>(n, 0));
  for (int s = 0; s < p; ++s) {
    int lo = 0;
    bool any = false;
    for (int j = 0; j < n; ++j) {
      while (lo <= j && !fits(s, lo, j)) ++lo;
      lo_row[j] = lo;
      bool ok = false;
      if (lo <= j) {
        if (s == 0) {
          ok = lo == 0;
        } else {
          // Some e in [lo - 1, j - 1] where stage s-1 can end.
          const int a = lo - 1 < 0 ? 0 : lo - 1;
          ok = j >= 1 && count[j] - count[a] > 0;
        }
      }
      cur[j] = ok;
      any |= ok;
    }
    if (lo_out) (*lo_out)[s] = lo_row;
    if (reach_out) (*reach_out)[s] = cur;
    if (!any) return false;
    count[0] = 0;
    for (int j = 0; j < n; ++j) count[j + 1] = count[j] + cur[j];
    prev.swap(cur);
  }
  return prev[n - 1] != 0;
}

}  // namespace

SplitSearch::SplitSearch(const CostModel& cost, std::vector<int> in_flight,
                         std::optional<uint64_t> memory_limit, FeasibilityPath path)
    : SplitSearch(cost,
                  StageSetup::Uniform(cost, static_cast<int>(in_flight.size()), memory_limit),
                  in_flight, path) {}  // a copy: the setup reads its size

SplitSearch::SplitSearch(StageSetup setup, std::vector<int> in_flight, FeasibilityPath path)
    : SplitSearch(*setup.cost.at(0), setup, std::move(in_flight), path) {}

SplitSearch::SplitSearch(const CostModel& base, const StageSetup& setup,
                         std::vector<int> in_flight, FeasibilityPath path)
    : setup_(setup),
      cost_(base),
      in_flight_(std::move(in_flight)),
      path_(path),
      same_devices_(setup_.SameDevices()),
      any_memory_limit_(false),
      in_flight_non_increasing_(std::is_sorted(in_flight_.rbegin(), in_flight_.rend())) {
  for (const std::optional<uint64_t>& limit : setup_.memory_limit) {
    any_memory_limit_ |= limit.has_value();
  }
}

bool SplitSearch::StageFits(const Limits& limits, int s, int first, int last) const {
  if (setup_.cost[s]->StageMs(first, last) > limits.time_ms) return false;
  if (limits.limit_memory) return cost_.PeakMemory(first, last, in_flight_[s]) <= limits.memory;
  if (limits.stage_memory && setup_.memory_limit[s]) {
    return cost_.PeakMemory(first, last, in_flight_[s]) <= WideBytes{*setup_.memory_limit[s]};
  }
  return true;
}

bool SplitSearch::GreedyIsExact(const Limits& limits) const {
  // A common memory limit (SmallestMemoryLimit) with no time limit treats every stage alike.
  const bool alike = same_devices_ || (limits.limit_memory && std::isinf(limits.time_ms));
  if (!alike) return false;
  const bool memory = limits.limit_memory || (limits.stage_memory && any_memory_limit_);
  return !memory || in_flight_non_increasing_;
}

bool SplitSearch::GreedyFits(const Limits& limits, std::vector<int>* boundaries) const {
  const int n = cost_.num_layers();
  const int p = num_stages();
  if (p > n || p < 1) return false;
  auto fits = [&](int s, int i, int j) { return StageFits(limits, s, i, j); };
  if (boundaries) boundaries->assign(p - 1, 0);
  int end = n - 1;  // last layer of stage s
  for (int s = p - 1; s >= 1; --s) {
    if (!fits(s, end, end)) return false;
    // The earliest first layer that fits, leaving one layer for each of stages 0..s-1; stage
    // costs only fall as the first layer moves right, so binary search.
    int lo = s, hi = end;
    while (lo < hi) {
      const int mid = lo + (hi - lo) / 2;
      if (fits(s, mid, end)) hi = mid;
      else lo = mid + 1;
    }
    if (boundaries) (*boundaries)[s - 1] = lo;
    end = lo - 1;
  }
  return fits(0, 0, end);
}

bool SplitSearch::Fits(const Limits& limits, std::vector<std::vector<int>>* lo,
                       std::vector<std::vector<char>>* reach) const {
  if (path_ == FeasibilityPath::kAuto && lo == nullptr && reach == nullptr) {
    if (GreedyFits(limits, nullptr)) return true;
    if (GreedyIsExact(limits)) return false;
  }
  auto fits = [&](int s, int i, int j) { return StageFits(limits, s, i, j); };
  return ReachEnd(cost_.num_layers(), num_stages(), fits, lo, reach);
}

SplitSearch::Limits SplitSearch::MemoryOnly(WideBytes memory) const {
  return {std::numeric_limits<double>::infinity(), memory, true, false};
}

bool SplitSearch::MemoryFeasible() const {
  if (!any_memory_limit_) return num_stages() <= cost_.num_layers();
  return Fits(LimitsAt(std::numeric_limits<double>::infinity()), nullptr, nullptr);
}

WideBytes SplitSearch::SmallestMemoryLimit() const {
  const int n = cost_.num_layers();
  int max_in_flight = 0;
  for (int f : in_flight_) max_in_flight = std::max(max_in_flight, f);
  WideBytes lo = 0, hi = cost_.PeakMemory(0, n - 1, max_in_flight);  // hi always fits
  if (!Fits(MemoryOnly(hi), nullptr, nullptr)) return hi;  // only when p > n
  while (lo < hi) {
    const WideBytes mid = lo + (hi - lo) / 2;
    if (Fits(MemoryOnly(mid), nullptr, nullptr)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

SplitSearch::Limits SplitSearch::LimitsAt(double time_ms) const {
  return {time_ms, WideBytes{0}, false, true};
}

double SplitSearch::MinBottleneckMs() const {
  const int n = cost_.num_layers();
  auto fits = [&](double t) { return Fits(LimitsAt(t), nullptr, nullptr); };
  // Every stage is at most the whole model on its slowest device, so that always fits.
  double total = cost_.StageMs(0, n - 1);
  for (const CostModel* c : setup_.cost) total = std::max(total, c->StageMs(0, n - 1));
  uint64_t lo = 0, hi = Bits(total);
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (fits(FromBits(mid))) hi = mid;
    else lo = mid + 1;
  }
  return FromBits(lo);
}

std::optional<std::vector<int>> SplitSearch::Split(double bottleneck_ms, SplitTie tie) const {
  const int n = cost_.num_layers();
  const int p = num_stages();
  const Limits limits = LimitsAt(bottleneck_ms);
  if (path_ == FeasibilityPath::kAuto && GreedyIsExact(limits) &&
      (tie == SplitTie::kEarly || static_cast<int64_t>(p) * n > kMaxReconstructEntries)) {
    // The greedy's split puts every boundary as early as any fitting split may (the exchange
    // argument in docs/cost-model.md), which is kEarly's choice.
    std::vector<int> boundaries;
    if (!GreedyFits(limits, &boundaries)) return std::nullopt;
    return boundaries;
  }
  std::vector<std::vector<int>> lo;
  std::vector<std::vector<char>> reach;
  if (!Fits(limits, &lo, &reach)) return std::nullopt;
  if (p == 1) return std::vector<int>();

  // best[s][j]: least summed boundary cost of a fitting split of layers [0, j] into s + 1
  // stages; choice[s][j]: where stage s - 1 ends in it. Window minimum with a monotone deque:
  // for stage s ending at j the previous end e ranges over [lo - 1, j - 1], both ends rising.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto boundary_cost = [&](int s, int e) {  // the boundary after stage s - 1, at layer e
    return tie == SplitTie::kFewestTransferMs ? cost_.TransferMs(e, setup_.link[s - 1]) : 0.0;
  };
  // Whether best[s - 1][e] is set is kept apart from its value, which may itself be infinite
  // (a link too slow for its bytes), so that every reachable end gets a choice.
  std::vector<double> prev(n, kInf), cur(n, kInf);
  std::vector<char> prev_set(n, 0), cur_set(n, 0);
  std::vector<std::vector<int>> choice(p, std::vector<int>(n, -1));
  for (int j = 0; j < n; ++j) {
    if (reach[0][j]) prev[j] = 0, prev_set[j] = 1;
  }
  for (int s = 1; s < p; ++s) {
    std::deque<int> window;  // candidate ends e, increasing; values non-decreasing from front
    int pushed = 0;          // next e to consider
    auto value = [&](int e) { return prev[e] + boundary_cost(s, e); };
    for (int j = 0; j < n; ++j) {
      cur[j] = kInf;
      cur_set[j] = 0;
      while (pushed <= j - 1) {
        const int e = pushed++;
        if (!prev_set[e]) continue;
        const double v = value(e);
        // kLate keeps the later of equal candidates; the others keep the earlier.
        if (tie == SplitTie::kLate) {
          while (!window.empty() && value(window.back()) >= v) window.pop_back();
        } else {
          while (!window.empty() && value(window.back()) > v) window.pop_back();
        }
        window.push_back(e);
      }
      const int first_end = lo[s][j] - 1;
      while (!window.empty() && window.front() < first_end) window.pop_front();
      if (!reach[s][j] || window.empty()) continue;
      cur[j] = value(window.front());
      cur_set[j] = 1;
      choice[s][j] = window.front();
    }
    prev.swap(cur);
    prev_set.swap(cur_set);
  }
  std::vector<int> boundaries(p - 1);
  int end = n - 1;
  for (int s = p - 1; s >= 1; --s) {
    // Unreachable when `reach` holds (it says some earlier end exists); a NaN cost could still
    // empty the window, and no boundary is made up from an unset choice.
    if (choice[s][end] < 0) return std::nullopt;
    end = choice[s][end];
    boundaries[s - 1] = end + 1;
  }
  return boundaries;
}

std::vector<int> MinMaxWeightSplit(const std::vector<uint64_t>& weights, int p) {
  const int n = static_cast<int>(weights.size());
  std::vector<WideBytes> prefix(n + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + weights[i];
  auto fits_under = [&](WideBytes limit, std::vector<std::vector<int>>* lo,
                        std::vector<std::vector<char>>* reach) {
    auto fits = [&](int, int i, int j) { return prefix[j + 1] - prefix[i] <= limit; };
    return ReachEnd(n, p, fits, lo, reach);
  };
  WideBytes lo = 0, hi = prefix[n];
  while (lo < hi) {
    const WideBytes mid = lo + (hi - lo) / 2;
    if (fits_under(mid, nullptr, nullptr)) hi = mid;
    else lo = mid + 1;
  }
  std::vector<std::vector<int>> first;
  std::vector<std::vector<char>> reach;
  fits_under(lo, &first, &reach);
  // Working back from the last stage, end each earlier stage as early as it may.
  std::vector<int> boundaries(p - 1);
  int end = n - 1;
  for (int s = p - 1; s >= 1; --s) {
    int e = std::max(first[s][end] - 1, 0);
    while (!reach[s - 1][e]) ++e;
    boundaries[s - 1] = e + 1;
    end = e;
  }
  return boundaries;
}

}  // namespace pp
