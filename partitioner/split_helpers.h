// Helpers of the split searches over contiguous stages: which starts can still be finished
// within memory, and candidate splits for the step search's incumbent (heuristics only: the
// search simulates each candidate and keeps it when it is faster and fits, so they can make
// the search faster but never change its answer).
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <vector>

namespace pp {

// can[k][j] (k in [0, stages], j in [0, layers]): stages k..stages-1 can cover layers
// [j, layers-1], each stage s over [i, e] only where fits(s, i, e); can[stages][layers] is 1.
// `fits` must not turn true again as e grows for a fixed i. With `monotone_start` it must
// also stay true as i grows for a fixed e, and one two-pointer pass per stage answers (O(p n));
// otherwise a binary search per start (O(p n log n)).
std::vector<std::vector<char>> CanFinishTable(int stages, int layers,
                                              const std::function<bool(int, int, int)>& fits,
                                              bool monotone_start);

// The split of `layers` layers into `stages` non-empty stages whose largest `cost(stage,
// first, last)` is least, to the precision of a bisection on the value between 0 and `high`:
// for a value, a greedy gives every stage the most layers it allows. `cost` must not fall as
// a range grows. nullopt when even `high` is not met.
template <typename Cost>
std::optional<std::vector<int>> BalancedSplit(int layers, int stages, Cost cost, double high) {
  std::vector<int> split(stages - 1);
  const auto greedy = [&](double limit) {
    int i = 0;
    for (int s = 0; s + 1 < stages; ++s) {
      int lo = i, hi = layers - 1 - (stages - 1 - s);  // the largest end within `limit`
      if (lo > hi || cost(s, i, lo) > limit) return false;
      while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (cost(s, i, mid) <= limit) lo = mid;
        else hi = mid - 1;
      }
      split[s] = lo + 1;
      i = lo + 1;
    }
    return cost(stages - 1, i, layers - 1) <= limit;
  };
  if (stages < 2 || !greedy(high)) return std::nullopt;
  double lo = 0;
  for (int it = 0; it < 100 && lo < 0.5 * (lo + high) && 0.5 * (lo + high) < high; ++it) {
    (greedy(0.5 * (lo + high)) ? high : lo) = 0.5 * (lo + high);
  }
  if (!greedy(high)) return std::nullopt;
  return split;
}

// Per cell (row, column): up to 16 points seen. Dominated(row, column, x) says whether some
// point seen there is at most x in every coordinate, and records x when not (while the cell
// has room). The step search's dominance rule for gpipe keeps (max F, max B, transfer sum) per
// (stage, first layer after it).
class DominanceMemo {
 public:
  using Point = std::array<double, 3>;
  DominanceMemo(int rows, int columns)
      : columns_(columns), cells_(static_cast<size_t>(rows) * columns) {}
  bool Dominated(int row, int column, const Point& x) {
    std::vector<Point>& cell = cells_[static_cast<size_t>(row) * columns_ + column];
    for (const Point& seen : cell) {
      if (seen[0] <= x[0] && seen[1] <= x[1] && seen[2] <= x[2]) return true;
    }
    if (cell.size() < 16) cell.push_back(x);
    return false;
  }

 private:
  size_t columns_;
  std::vector<std::vector<Point>> cells_;
};

// Hill climbing from `start` (p - 1 boundaries over `layers` layers): moves of one boundary,
// or of two neighbouring ones together, by +-1, 2, 4, ... layers, each passed to `offer`,
// which returns whether it became the new incumbent (the climb then goes on from it). Stops
// when no move helps or `stop` says so (asked before every move).
void ClimbFromSplit(int layers, std::vector<int> start,
                    const std::function<bool(const std::vector<int>&)>& offer,
                    const std::function<bool()>& stop);

}  // namespace pp
