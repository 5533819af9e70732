// The `--stages auto` search against brute force over its candidate grid, enumerated here:
// every depth p dividing G, every profile's micro-batch size b with N / (p' b) whole (p' = G/p
// replicas), every schedule that can run the shape (interleaved needs m a multiple of p,
// interleaved and zbv at least two devices and a layer per chunk); each grid point planned
// with dp and its time per batch taken as the simulated step plus a ring all-reduce written out
// below from DESIGN's link formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "partitioner/planner.h"
#include "partitioner/search.h"

namespace pp {
namespace {

// Layer times grow with the micro-batch size b (a little less than linearly).
std::vector<Profile> RandomProfiles(std::mt19937_64& rng, int layers) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<double> f, bwd;
  std::vector<uint64_t> params, acts, outs;
  for (int i = 0; i < layers; ++i) {
    f.push_back(0.25 * uniform(1, 40));
    bwd.push_back(0.25 * uniform(1, 80));
    params.push_back(static_cast<uint64_t>(uniform(1, 1 << 20)));
    acts.push_back(static_cast<uint64_t>(uniform(1, 1 << 16)));
    outs.push_back(static_cast<uint64_t>(uniform(1, 1 << 16)));
  }
  std::vector<Profile> profiles;
  for (int64_t b : {1, 2, 4}) {
    Profile p;
    p.model = "random";
    p.backend = "analytic";
    p.device = {"test", uint64_t{1} << 40};
    p.micro_batch_size = b;
    p.link = {1e9, 0.05};
    for (int i = 0; i < layers; ++i) {
      LayerProfile l;
      l.name = "l" + std::to_string(i);
      l.forward_ms = f[i] * (0.5 + 0.5 * b);
      l.backward_ms = bwd[i] * (0.5 + 0.5 * b);
      l.param_bytes = params[i];
      l.activation_bytes = acts[i] * b;
      l.output_bytes = outs[i] * b;
      p.layers.push_back(l);
    }
    profiles.push_back(p);
  }
  return profiles;
}

// A search request over `profiles` (one per micro-batch size) on G GPUs and N samples.
PlanRequest SearchOver(const std::vector<Profile>& profiles, int gpus_total,
                       int64_t global_batch) {
  PlanRequest request;
  request.profile = profiles.front();
  request.search.emplace();
  request.search->gpus_total = gpus_total;
  request.search->global_batch = global_batch;
  for (size_t i = 1; i < profiles.size(); ++i) {
    request.search->other_sizes.push_back({profiles[i], {}});
  }
  return request;
}

double BatchMs(const Plan& plan, int replicas) {
  uint64_t largest = 0;
  for (const StagePlan& s : plan.stages) largest = std::max(largest, s.param_bytes);
  const Link& link = plan.profile.link;
  const double r = replicas;
  const double allreduce =
      replicas == 1 ? 0.0
                    : 2.0 * (r - 1) / r * (1000.0 * static_cast<double>(largest) /
                                           link.bandwidth_bytes_per_s) +
                          2.0 * (r - 1) * link.latency_ms;
  return plan.predicted.step_time_ms + allreduce;
}

TEST(Search, BestEqualsBruteForceOverTheGrid) {
  std::mt19937_64 rng(606);
  for (int trial = 0; trial < 30; ++trial) {
    const int layers = 4 + trial % 5;
    const std::vector<Profile> profiles = RandomProfiles(rng, layers);
    PlanRequest request = SearchOver(profiles, trial % 2 == 0 ? 4 : 6, trial % 3 == 0 ? 24 : 48);
    const int gpus_total = request.search->gpus_total;
    const int64_t global_batch = request.search->global_batch;
    request.memory_limit = uint64_t{1} << 40;
    request.objective = trial % 3 == 1 ? "bottleneck" : "step";
    request.step_budget_s = 600;  // small cases: every step search finishes
    Result<SearchResult> result = SearchPlans(request);
    ASSERT_TRUE(result.ok()) << result.message();

    double best = std::numeric_limits<double>::infinity();
    int points = 0;
    for (int p = 1; p <= std::min(gpus_total, layers); ++p) {
      if (gpus_total % p != 0) continue;
      const int r = gpus_total / p;
      for (const Profile& profile : profiles) {
        const int64_t b = profile.micro_batch_size;
        if (global_batch % (r * b) != 0) continue;
        for (const char* schedule : {"gpipe", "1f1b", "zb-h1", "interleaved", "zbv"}) {
          const int m = static_cast<int>(global_batch / (r * b));
          const bool chunked = std::string(schedule) == "interleaved" ||
                               std::string(schedule) == "zbv";
          if (chunked && (p < 2 || 2 * p > layers)) continue;
          if (std::string(schedule) == "interleaved" && m % p != 0) continue;
          PlanRequest pr;
          pr.profile = profile;
          pr.schedule = schedule;
          pr.num_stages = p;
          pr.num_micro_batches = m;
          pr.objective = request.objective;
          pr.step_budget_s = 60;
          pr.memory_limit = request.memory_limit;
          Result<Plan> plan = MakePlan(pr);
          ASSERT_TRUE(plan.ok()) << plan.message();
          best = std::min(best, BatchMs(*plan, r));
          ++points;
        }
      }
    }
    EXPECT_EQ(result->evaluated, points);
    for (const SearchCandidate& c : result->ranked) EXPECT_TRUE(c.exact);
    ASSERT_FALSE(result->ranked.empty());
    EXPECT_DOUBLE_EQ(result->ranked.front().batch_ms, best) << "trial " << trial;
    EXPECT_DOUBLE_EQ(BatchMs(result->best, result->ranked.front().replicas), best);
    // The list is sorted, at most 10 long, and every entry after the first says why it loses.
    EXPECT_LE(result->ranked.size(), 10u);
    for (size_t i = 1; i < result->ranked.size(); ++i) {
      EXPECT_LE(result->ranked[i - 1].batch_ms, result->ranked[i].batch_ms);
      EXPECT_NEAR(result->ranked[i].behind_ms,
                  result->ranked[i].batch_ms - result->ranked.front().batch_ms, 1e-9);
      if (result->ranked[i].behind_ms > 0) {
        EXPECT_NE(result->ranked[i].reason, LossReason::kNone);
        EXPECT_NE(result->ranked[i].reason, LossReason::kMemory);
      }
    }
  }
}

TEST(Search, InfeasibleMemoryIsAClearError) {
  std::mt19937_64 rng(1);
  PlanRequest request = SearchOver(RandomProfiles(rng, 5), 4, 16);
  request.memory_limit = 1000;  // below any stage's parameters
  Result<SearchResult> result = SearchPlans(request);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("no candidate of the search fits the memory limit"),
            std::string::npos)
      << result.message();
  EXPECT_NE(result.message().find("the smallest limit under which one fits"), std::string::npos);
}

TEST(Search, MemoryLimitRemovesCandidatesAndNamesThem) {
  std::mt19937_64 rng(2);
  PlanRequest request = SearchOver(RandomProfiles(rng, 8), 8, 32);
  request.memory_limit = std::nullopt;
  Result<SearchResult> open = SearchPlans(request);
  ASSERT_TRUE(open.ok());
  // A limit just under the unconstrained best's peak: every ranked candidate meets it, and
  // those over it that would be faster are listed with the reason "memory".
  request.memory_limit = open->ranked.front().peak_memory_bytes - 1;
  Result<SearchResult> limited = SearchPlans(request);
  if (!limited.ok()) GTEST_SKIP() << limited.message();
  for (const SearchCandidate& c : limited->ranked) {
    EXPECT_LE(c.peak_memory_bytes, *request.memory_limit);
  }
  EXPECT_GE(limited->ranked.front().batch_ms, open->ranked.front().batch_ms);
  for (const SearchCandidate& c : limited->over_memory) {
    EXPECT_EQ(c.reason, LossReason::kMemory);
    EXPECT_GT(c.peak_memory_bytes, *request.memory_limit);
    EXPECT_LT(c.batch_ms, limited->ranked.front().batch_ms);
  }
}

TEST(Search, RingAllReduceClosedForm) {
  const Link link{1e9, 0.5};
  EXPECT_EQ(RingAllReduceMs(1 << 20, 1, link), 0.0);
  // r = 4: 2 * 3/4 * 1 MiB / 1 GB/s = 1.572864 ms, plus 2 * 3 * 0.5 ms.
  EXPECT_NEAR(RingAllReduceMs(1 << 20, 4, link), 1.572864 + 3.0, 1e-12);
}

}  // namespace
}  // namespace pp
