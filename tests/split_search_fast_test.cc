// The fast feasibility path of SplitSearch (backward greedy, O(p log n) per test) against the
// O(p n) two-pointer pass on random cases far too large for brute force: the least
// bottleneck, memory feasibility, the least memory limit and the earliest-boundary split must
// be identical. Layers with heavy activations make single layers infeasible on early stages,
// and in-flight counts that rise with the stage exercise the fallback.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "partitioner/split_search.h"
#include "tests/test_util.h"

namespace pp {
namespace {

struct BigCase {
  Profile profile;
  std::vector<int> in_flight;
};

BigCase RandomBigCase(std::mt19937_64& rng, bool monotone) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  BigCase c;
  const int n = uniform(1, 400);
  const int p = uniform(1, std::min(n, 48));
  const int m = uniform(1, 2 * p);
  c.profile.model = "random";
  c.profile.device = {"test", 1 << 30};
  c.profile.link = {1e9, 0.01};
  for (int i = 0; i < n; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 0.125 * uniform(0, 100);
    l.backward_ms = 0.125 * uniform(0, 200);
    l.param_bytes = static_cast<uint64_t>(uniform(0, 5000));
    // One layer in ten keeps a lot for its backward.
    l.activation_bytes = static_cast<uint64_t>(uniform(0, 9) == 0 ? uniform(0, 200000)
                                                                  : uniform(0, 2000));
    l.output_bytes = static_cast<uint64_t>(uniform(0, 5000));
    c.profile.layers.push_back(l);
  }
  for (int s = 0; s < p; ++s) {
    // 1f1b's count when monotone; otherwise any count per stage.
    c.in_flight.push_back(monotone ? std::min(p - s, m) : uniform(1, m));
  }
  return c;
}

TEST(SplitSearchFast, EqualsTwoPointerPassOnLargeRandomCases) {
  std::mt19937_64 rng(424242);
  int limited = 0, infeasible = 0;
  const int trials = testing::Trials(400);
  for (int trial = 0; trial < trials; ++trial) {
    const BigCase c = RandomBigCase(rng, trial % 4 != 0);
    const CostModel cost(c.profile, Optimizer::kAdam);
    const SplitSearch open(cost, c.in_flight, std::nullopt, FeasibilityPath::kTwoPointer);
    const WideBytes least = open.SmallestMemoryLimit();
    EXPECT_EQ(SplitSearch(cost, c.in_flight, std::nullopt).SmallestMemoryLimit(), least)
        << "trial " << trial;
    // No limit, a limit at the least one, one a little above, and one below it.
    std::vector<std::optional<uint64_t>> limits = {std::nullopt, static_cast<uint64_t>(least),
                                                   static_cast<uint64_t>(least * 11 / 10)};
    if (least > 0) limits.push_back(static_cast<uint64_t>(least - 1));
    for (const std::optional<uint64_t>& limit : limits) {
      const SplitSearch fast(cost, c.in_flight, limit);
      const SplitSearch slow(cost, c.in_flight, limit, FeasibilityPath::kTwoPointer);
      const bool feasible = slow.MemoryFeasible();
      ASSERT_EQ(fast.MemoryFeasible(), feasible) << "trial " << trial;
      if (!feasible) {
        ++infeasible;
        continue;
      }
      if (limit) ++limited;
      const double best = slow.MinBottleneckMs();
      ASSERT_EQ(fast.MinBottleneckMs(), best) << "trial " << trial;
      EXPECT_EQ(fast.Split(best, SplitTie::kEarly), slow.Split(best, SplitTie::kEarly))
          << "trial " << trial;
      // Just below the optimum nothing fits, on either path.
      if (best > 0) {
        const double below = std::nextafter(best, 0.0);
        EXPECT_FALSE(fast.Split(below, SplitTie::kEarly).has_value()) << "trial " << trial;
        EXPECT_FALSE(slow.Split(below, SplitTie::kEarly).has_value()) << "trial " << trial;
      }
    }
  }
  EXPECT_GT(limited, trials * 3 / 4);
  EXPECT_GT(infeasible, trials / 4);
}

// A split the greedy returns meets both limits, checked by direct sums over its layers.
TEST(SplitSearchFast, GreedySplitMeetsItsLimits) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    const BigCase c = RandomBigCase(rng, true);
    const CostModel cost(c.profile, Optimizer::kSgd);
    const SplitSearch open(cost, c.in_flight, std::nullopt);
    const uint64_t limit = static_cast<uint64_t>(open.SmallestMemoryLimit() * 5 / 4);
    const SplitSearch search(cost, c.in_flight, limit);
    const double best = search.MinBottleneckMs();
    const std::optional<std::vector<int>> split = search.Split(best, SplitTie::kEarly);
    ASSERT_TRUE(split.has_value());
    const int n = static_cast<int>(c.profile.layers.size());
    const int p = static_cast<int>(c.in_flight.size());
    ASSERT_EQ(static_cast<int>(split->size()), p - 1);
    double worst = 0;
    for (int s = 0; s < p; ++s) {
      const int first = s == 0 ? 0 : (*split)[s - 1];
      const int last = s + 1 == p ? n - 1 : (*split)[s] - 1;
      ASSERT_LE(first, last);
      double ms = 0;
      uint64_t params = 0, acts = 0;
      for (int i = first; i <= last; ++i) {
        ms += c.profile.layers[i].forward_ms + c.profile.layers[i].backward_ms;
        params += c.profile.layers[i].param_bytes;
        acts += c.profile.layers[i].activation_bytes;
      }
      worst = std::max(worst, ms);
      EXPECT_LE(params * 2 + acts * static_cast<uint64_t>(c.in_flight[s]), limit);
    }
    EXPECT_EQ(worst, best) << "trial " << trial;  // multiples of 1/8: sums are exact
  }
}

}  // namespace
}  // namespace pp
