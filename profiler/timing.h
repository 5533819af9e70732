// The one timing protocol every measurement uses: warm up, time each of N repeats, report the
// median and the 95th percentile. Correctness checks stay outside the timed region.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "core/stats.h"

namespace pp {

struct Timing {
  double median_ms = 0;
  double p95_ms = 0;
  int repeats = 0;
};

// Median and nearest-rank 95th percentile of `samples_ms` (which it sorts).
inline Timing Summarize(std::vector<double> samples_ms) {
  Timing t;
  if (samples_ms.empty()) return t;
  std::sort(samples_ms.begin(), samples_ms.end());
  const size_t n = samples_ms.size();
  t.median_ms = MedianOfSorted(samples_ms);
  const size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(n)));
  t.p95_ms = samples_ms[std::clamp<size_t>(rank, 1, n) - 1];
  t.repeats = static_cast<int>(n);
  return t;
}

// One call of `run()` on the host clock, in ms.
template <typename Fn>
double TimeOnceOnHost(Fn&& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  const auto end = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// Times `run()` on the host clock: `warmup` untimed calls, then `repeats` timed ones.
template <typename Fn>
Timing TimeOnHost(Fn&& run, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> samples;
  samples.reserve(repeats);
  for (int i = 0; i < repeats; ++i) samples.push_back(TimeOnceOnHost(run));
  return Summarize(std::move(samples));
}

}  // namespace pp
