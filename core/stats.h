// Order statistics shared by every measurement (run, profile, benchmarks).
#pragma once

#include <algorithm>
#include <vector>

namespace pp {

// The median of `sorted` (ascending); 0 when empty.
inline double MedianOfSorted(const std::vector<double>& sorted) {
  const size_t n = sorted.size();
  if (n == 0) return 0;
  return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

// The median of `values`; 0 when empty.
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return MedianOfSorted(values);
}

}  // namespace pp
