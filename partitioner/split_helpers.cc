#include "partitioner/split_helpers.h"

#include <algorithm>

namespace pp {

std::vector<std::vector<char>> CanFinishTable(int stages, int layers,
                                              const std::function<bool(int, int, int)>& fits,
                                              bool monotone_start) {
  const int p = stages, n = layers;
  std::vector<std::vector<char>> can(p + 1, std::vector<char>(n + 1, 0));
  can[p][n] = 1;
  std::vector<int> next(n + 2);
  for (int k = p - 1; k >= 0; --k) {
    const std::vector<char>& after = can[k + 1];
    next[n + 1] = n + 1;  // the first x' >= x from which the later stages can finish
    for (int x = n; x >= 0; --x) next[x] = after[x] ? x : next[x + 1];
    int last = -1;  // the largest e with [j, e] fitting stage k
    for (int j = 0; j < n; ++j) {
      if (monotone_start) {
        last = std::max(last, j - 1);
        while (last + 1 < n && fits(k, j, last + 1)) ++last;
      } else {
        int lo = j - 1, hi = n - 1;
        while (lo < hi) {
          const int mid = lo + (hi - lo + 1) / 2;
          if (fits(k, j, mid)) lo = mid;
          else hi = mid - 1;
        }
        last = lo;
      }
      can[k][j] = last >= j && next[j + 1] <= last + 1;
    }
  }
  return can;
}

void ClimbFromSplit(int layers, std::vector<int> start,
                    const std::function<bool(const std::vector<int>&)>& offer,
                    const std::function<bool()>& stop) {
  const int p = static_cast<int>(start.size()) + 1;
  std::vector<int>& best = start;
  for (bool improved = true; improved;) {
    improved = false;
    for (int w = 1; w <= 2 && !improved; ++w) {  // w neighbouring boundaries move together
      for (int i = 0; i + w <= p - 1 && !improved; ++i) {
        for (int d = 1; d < layers && !improved; d *= 2) {
          for (const int delta : {d, -d}) {
            if (stop()) return;
            std::vector<int> b = best;
            for (int x = i; x < i + w; ++x) b[x] += delta;
            const int lo = i == 0 ? 0 : b[i - 1], hi = i + w == p - 1 ? layers : b[i + w];
            // The move keeps the inner order; it must keep the outer one too.
            if (b[i] > lo && b[i + w - 1] < hi && offer(b)) {
              best = b;
              improved = true;
              break;
            }
          }
        }
      }
    }
  }
}

}  // namespace pp
