// The dp partitioner against brute force over every split, on hundreds of random small
// cases, with and without memory limits and transfer costs. Times are multiples of 1/4 so
// every sum is exact and the brute force can add layers up directly, independently of the
// cost model's prefix sums; memory uses DESIGN.md's closed form with in-flight counts
// m (gpipe) and min(p - s, m) (1f1b).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "executor/schedule.h"
#include "partitioner/methods.h"
#include "partitioner/planner.h"
#include "partitioner/split_search.h"
#include "tests/test_util.h"

namespace pp {
namespace {

struct Case {
  Profile profile;
  int stages = 1;
  int micro_batches = 1;
  std::string schedule;
  Optimizer optimizer = Optimizer::kAdam;
  std::optional<uint64_t> memory_limit;
};

Case RandomCase(std::mt19937_64& rng) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  const int n = uniform(1, 9);
  c.stages = uniform(1, n);
  c.micro_batches = uniform(1, 6);
  c.schedule = uniform(0, 1) ? "1f1b" : "gpipe";
  c.optimizer = static_cast<Optimizer>(uniform(0, 2));
  c.profile.model = "random";
  c.profile.backend = "analytic";
  c.profile.device = {"test", 1 << 30};
  c.profile.micro_batch_size = 1;
  c.profile.dtype = uniform(0, 1) ? DType::kBf16 : DType::kFp32;
  // Transfers from none to larger than a layer.
  c.profile.link = {uniform(0, 1) ? 1e12 : 1e3 * uniform(1, 20), 0.25 * uniform(0, 4)};
  for (int i = 0; i < n; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 0.25 * uniform(0, 40);
    l.backward_ms = 0.25 * uniform(0, 80);
    l.param_bytes = static_cast<uint64_t>(uniform(0, 1000));
    l.activation_bytes = static_cast<uint64_t>(uniform(0, 1000));
    l.output_bytes = static_cast<uint64_t>(uniform(0, 5000));
    c.profile.layers.push_back(l);
  }
  return c;
}

int64_t Multiplier(const Case& c) {
  switch (c.optimizer) {
    case Optimizer::kAdam:
      return c.profile.dtype == DType::kBf16 ? 8 : 4;
    case Optimizer::kSgd:
      return 2;
    case Optimizer::kNone:
      return 1;
  }
  return 0;
}

struct Evaluated {
  double max_stage_ms = 0;
  uint64_t max_peak = 0;
  bool fits = true;
};

// Direct sums over the layers of each stage.
Evaluated Evaluate(const Case& c, const std::vector<int>& boundaries) {
  Evaluated e;
  const int n = static_cast<int>(c.profile.layers.size());
  const int p = static_cast<int>(boundaries.size()) + 1;
  for (int s = 0; s < p; ++s) {
    const int first = s == 0 ? 0 : boundaries[s - 1];
    const int last = s + 1 == p ? n - 1 : boundaries[s] - 1;
    double ms = 0;
    uint64_t params = 0, acts = 0;
    for (int i = first; i <= last; ++i) {
      ms += c.profile.layers[i].forward_ms + c.profile.layers[i].backward_ms;
      params += c.profile.layers[i].param_bytes;
      acts += c.profile.layers[i].activation_bytes;
    }
    const int in_flight = c.schedule == "gpipe" ? c.micro_batches
                                                : std::min(p - s, c.micro_batches);
    const uint64_t peak = params * Multiplier(c) + in_flight * acts;
    e.max_stage_ms = std::max(e.max_stage_ms, ms);
    e.max_peak = std::max(e.max_peak, peak);
    if (c.memory_limit && peak > *c.memory_limit) e.fits = false;
  }
  return e;
}

PlanRequest RequestOf(const Case& c, const std::string& method) {
  PlanRequest r;
  r.profile = c.profile;
  r.schedule = c.schedule;
  r.num_stages = c.stages;
  r.num_micro_batches = c.micro_batches;
  r.method = method;
  r.objective = "bottleneck";  // this file checks the bottleneck objective
  r.optimizer = c.optimizer;
  r.memory_limit = c.memory_limit;
  return r;
}

TEST(DpPartitioner, EqualsBruteForceOnRandomCases) {
  std::mt19937_64 rng(20261128);
  int feasible = 0, infeasible = 0, limited = 0;
  for (int trial = 0; trial < 600; ++trial) {
    Case c = RandomCase(rng);
    const int n = static_cast<int>(c.profile.layers.size());
    // Brute force without a limit first, to place a limit between the best and worst peaks.
    uint64_t least_peak = std::numeric_limits<uint64_t>::max(), most_peak = 0;
    testing::ForEachSplit(n, c.stages, [&](const std::vector<int>& b) {
      const Evaluated e = Evaluate(c, b);
      least_peak = std::min(least_peak, e.max_peak);
      most_peak = std::max(most_peak, e.max_peak);
    });
    const int mode = trial % 3;  // 0: no limit, 1: a limit in range, 2: below every split
    if (mode == 1) {
      c.memory_limit = least_peak + (most_peak - least_peak) * (trial % 7) / 6;
      ++limited;
    } else if (mode == 2 && least_peak > 0) {
      c.memory_limit = least_peak - 1;
    }

    double best = std::numeric_limits<double>::infinity();
    testing::ForEachSplit(n, c.stages, [&](const std::vector<int>& b) {
      const Evaluated e = Evaluate(c, b);
      if (e.fits) best = std::min(best, e.max_stage_ms);
    });

    Result<Plan> plan = MakePlan(RequestOf(c, "dp"));
    if (best == std::numeric_limits<double>::infinity()) {
      ++infeasible;
      ASSERT_FALSE(plan.ok()) << "trial " << trial;
      // The error names the smallest limit that fits: the brute-force least peak.
      EXPECT_NE(plan.message().find("(" + std::to_string(least_peak) + " bytes)"),
                std::string::npos)
          << plan.message() << " expected " << least_peak;
      continue;
    }
    ++feasible;
    ASSERT_TRUE(plan.ok()) << "trial " << trial << ": " << plan.message();
    ASSERT_EQ(static_cast<int>(plan->boundaries.size()), c.stages - 1);
    const Evaluated got = Evaluate(c, plan->boundaries);
    EXPECT_TRUE(got.fits) << "trial " << trial;
    EXPECT_EQ(got.max_stage_ms, best) << "trial " << trial;
    EXPECT_EQ(plan->predicted.max_stage_ms, best) << "trial " << trial;
    for (const StagePlan& s : plan->stages) EXPECT_LE(s.first_layer, s.last_layer);
  }
  EXPECT_GT(feasible, 300);
  EXPECT_GT(infeasible, 50);
  EXPECT_GT(limited, 100);
}

TEST(DpPartitioner, NeverWorseThanBaselines) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Case c = RandomCase(rng);
    Result<Plan> dp = MakePlan(RequestOf(c, "dp"));
    ASSERT_TRUE(dp.ok()) << dp.message();
    for (const char* method : {"uniform", "parameters", "greedy"}) {
      Result<Plan> base = MakePlan(RequestOf(c, method));
      ASSERT_TRUE(base.ok()) << method << ": " << base.message();
      EXPECT_LE(dp->predicted.max_stage_ms, base->predicted.max_stage_ms) << method;
    }
  }
}

TEST(Baselines, UniformBalancesLayerCounts) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    Case c = RandomCase(rng);
    Result<Plan> plan = MakePlan(RequestOf(c, "uniform"));
    ASSERT_TRUE(plan.ok());
    int lo = 1 << 30, hi = 0;
    for (const StagePlan& s : plan->stages) {
      const int count = s.last_layer - s.first_layer + 1;
      lo = std::min(lo, count);
      hi = std::max(hi, count);
    }
    EXPECT_LE(hi - lo, 1);
  }
}

// Each layer a transformer block or not at random: every stage takes B / p blocks (the first
// B mod p one more), every stage after the first starts at a block, and the layers before
// the first block are the first stage's; counted directly from the ops. With fewer blocks
// than stages the method refuses in one line.
TEST(Baselines, BlocksSplitsTheTransformerBlocksEvenly) {
  std::mt19937_64 rng(5);
  int planned = 0, refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    Case c = RandomCase(rng);
    int blocks = 0;
    for (LayerProfile& l : c.profile.layers) {
      l.op = std::uniform_int_distribution<int>(0, 4)(rng) < 3 ? "transformer_block" : "linear";
      blocks += l.op == "transformer_block";
    }
    Result<Plan> plan = MakePlan(RequestOf(c, "blocks"));
    if (blocks < c.stages) {
      ASSERT_FALSE(plan.ok());
      EXPECT_NE(plan.message().find("--method blocks"), std::string::npos) << plan.message();
      ++refused;
      continue;
    }
    ASSERT_TRUE(plan.ok()) << plan.message();
    ++planned;
    const int p = c.stages;
    for (int s = 0; s < p; ++s) {
      const StagePlan& st = plan->stages[s];
      int count = 0;
      for (int i = st.first_layer; i <= st.last_layer; ++i) {
        count += c.profile.layers[i].op == "transformer_block";
      }
      EXPECT_EQ(count, blocks / p + (s < blocks % p ? 1 : 0)) << "trial " << trial;
      if (s > 0) {
        EXPECT_EQ(c.profile.layers[st.first_layer].op, "transformer_block") << "trial " << trial;
      }
    }
    Result<Plan> dp = MakePlan(RequestOf(c, "dp"));
    ASSERT_TRUE(dp.ok());
    EXPECT_LE(dp->predicted.max_stage_ms, plan->predicted.max_stage_ms);
  }
  EXPECT_GT(planned, 50);
  EXPECT_GT(refused, 0);
}

TEST(Baselines, ParametersMinimisesLargestStageParams) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    Case c = RandomCase(rng);
    const int n = static_cast<int>(c.profile.layers.size());
    auto largest = [&](const std::vector<int>& b) {
      uint64_t worst = 0;
      const int p = static_cast<int>(b.size()) + 1;
      for (int s = 0; s < p; ++s) {
        uint64_t sum = 0;
        for (int i = s == 0 ? 0 : b[s - 1]; i <= (s + 1 == p ? n - 1 : b[s] - 1); ++i) {
          sum += c.profile.layers[i].param_bytes;
        }
        worst = std::max(worst, sum);
      }
      return worst;
    };
    uint64_t best = std::numeric_limits<uint64_t>::max();
    testing::ForEachSplit(n, c.stages, [&](const std::vector<int>& b) { best = std::min(best, largest(b)); });
    Result<Plan> plan = MakePlan(RequestOf(c, "parameters"));
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(largest(plan->boundaries), best) << "trial " << trial;
  }
}

TEST(SplitSearch, SmallestMemoryLimitIsTight) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    Case c = RandomCase(rng);
    const CostModel cost(c.profile, c.optimizer);
    const Schedule schedule = *BuildSchedule(c.schedule, c.stages, c.micro_batches);
    const SplitSearch search(cost, InFlightMicroBatches(schedule), std::nullopt);
    const WideBytes least = search.SmallestMemoryLimit();
    const SplitSearch at(cost, InFlightMicroBatches(schedule), static_cast<uint64_t>(least));
    EXPECT_TRUE(at.MemoryFeasible());
    if (least > 0) {
      const SplitSearch below(cost, InFlightMicroBatches(schedule),
                              static_cast<uint64_t>(least - 1));
      EXPECT_FALSE(below.MemoryFeasible());
    }
  }
}

TEST(Planner, RejectsBadRequests) {
  std::mt19937_64 rng(1);
  Case c = RandomCase(rng);
  c.profile.layers.resize(3);
  PlanRequest r = RequestOf(c, "dp");
  r.num_stages = 4;
  Result<Plan> p = MakePlan(r);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("more than the model's 3 layers"), std::string::npos) << p.message();

  r = RequestOf(c, "given");
  r.num_stages = 3;
  r.boundaries = {2, 1};
  p = MakePlan(r);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("--boundaries"), std::string::npos) << p.message();

  r = RequestOf(c, "magic");
  p = MakePlan(r);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("unknown --method"), std::string::npos);

  r = RequestOf(c, "dp");
  r.objective = "fastest";
  p = MakePlan(r);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("unknown --objective"), std::string::npos) << p.message();
}

}  // namespace
}  // namespace pp
