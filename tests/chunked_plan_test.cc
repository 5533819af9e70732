// Plans for schedules with several chunks per device (interleaved, zbv) and split backwards
// (zb-h1): layout, memory per device, the JSON round trip, and closed-form step times.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/plan.h"
#include "executor/plan_context.h"
#include "executor/schedule.h"
#include "executor/simulator.h"
#include "partitioner/planner.h"
#include "test_util.h"

namespace pp {
namespace {

// n equal layers: forward 1, backward 2 (I share `input` of it when >= 0), no transfer cost.
Profile EqualProfile(int n, double input = -1) {
  Profile p;
  p.model = "equal";
  p.backend = "analytic";
  p.device = {"test", 1 << 30};
  p.micro_batch_size = 1;
  p.link = {1e15, 0};
  for (int i = 0; i < n; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.op = "linear";
    l.forward_ms = 1;
    l.backward_ms = 2;
    if (input >= 0) {
      l.backward_input_ms = input;
      l.backward_weight_ms = 2 - input;
    }
    l.param_bytes = 10;
    l.activation_bytes = 100;
    l.output_bytes = 0;
    p.layers.push_back(l);
  }
  return p;
}

PlanRequest Request(const Profile& profile, const std::string& schedule, int p, int m) {
  PlanRequest r;
  r.profile = profile;
  r.schedule = schedule;
  r.num_stages = p;
  r.num_micro_batches = m;
  r.optimizer = Optimizer::kNone;
  r.objective = "bottleneck";  // equal chunks: the closed forms below hold for this split
  return r;
}

TEST(ChunkedPlan, InterleavedLayoutMemoryAndClosedForm) {
  // 12 layers, p = 2, V = 3: six chunks of two layers; chunk c on device c mod 2.
  PlanRequest r = Request(EqualProfile(12), "interleaved", 2, 4);
  r.virtual_stages = 3;
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->virtual_stages, 3);
  EXPECT_EQ(plan->boundaries, (std::vector<int>{2, 4, 6, 8, 10}));
  ASSERT_EQ(plan->stages.size(), 6u);
  for (const StagePlan& s : plan->stages) EXPECT_EQ(s.device, s.index % 2);
  // Equal chunks of F = 2, B = 4 ms and free transfers: step = m (f + b) + (p - 1)(f + b) / V
  // per device stage of 3 chunks: (4 + 1/3) * 18 = 78. Interleaved also pays a gap per send
  // and receive (docs/schedules.md): without it the plan's chunk times give the closed form,
  // with it the plan's step, at most two gaps per op (48 ops in all) above it.
  Result<ChunkTimes> times = PlanChunkTimes(*plan, *PlanContextOf(*plan));
  ASSERT_TRUE(times.ok()) << times.message();
  EXPECT_EQ(times->p2p_gap_ms, kDefaultP2pGapMs);
  const Schedule schedule = *BuildSchedule("interleaved", 2, 4, ScheduleOptions{3});
  EXPECT_NEAR(Simulate(schedule, *times)->step_time_ms, plan->predicted.step_time_ms, 1e-9);
  ChunkTimes free = *times;
  free.p2p_gap_ms = 0;
  const Timeline pure = *Simulate(schedule, free);
  EXPECT_NEAR(pure.step_time_ms, 4 * 18.0 + 18.0 / 3, 1e-9);
  EXPECT_NEAR(pure.bubble_ratio, 1.0 / 13, 1e-12);
  EXPECT_GT(plan->predicted.step_time_ms, pure.step_time_ms);
  EXPECT_LE(plan->predicted.step_time_ms, pure.step_time_ms + 2 * 48 * kDefaultP2pGapMs);
  // A chunk's peak is 20 + in_flight * 200 bytes; its device's, with equal chunks, is their
  // state plus 200 bytes per micro-batch the device holds at once, below the sum of its
  // chunks' peaks, which they reach at different times.
  const std::vector<int> in_flight = InFlightPerChunk(schedule);
  const std::vector<int> held = InFlightMicroBatches(schedule);
  std::vector<uint64_t> sum(2, 0), expected(2, 0);
  for (int c = 0; c < 6; ++c) sum[c % 2] += 20 + 200 * static_cast<uint64_t>(in_flight[c]);
  for (int d = 0; d < 2; ++d) {
    expected[d] = 3 * 20 + 200 * static_cast<uint64_t>(held[d]);
    EXPECT_LT(expected[d], sum[d]) << d;
  }
  EXPECT_EQ(DevicePeakMemory(*plan), expected);

  // The plan survives JSON and re-simulates to the same step.
  Result<Plan> back = PlanFromJson(Json::parse(DumpJson(PlanToJson(*plan))));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->virtual_stages, 3);
  EXPECT_EQ(back->stages[3].device, 1);
  Result<Timeline> t = SimulatePlan(*back);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_DOUBLE_EQ(t->step_time_ms, plan->predicted.step_time_ms);
  for (const StagePlan& s : plan->stages) {
    EXPECT_DOUBLE_EQ(*s.bubble_ratio, 1 - t->busy_ms[*s.device] / t->step_time_ms);
  }
  // A memory limit below a device's sum is refused, not silently exceeded.
  r.memory_limit = expected[0] - 1;
  EXPECT_FALSE(MakePlan(r).ok());
  // m not a multiple of p.
  r.memory_limit.reset();
  r.num_micro_batches = 3;
  EXPECT_FALSE(MakePlan(r).ok());
}

TEST(ChunkedPlan, ZbH1UsesTheProfilesSplitAndOneFOneBIsUnchanged) {
  // Per stage of 3 layers: F = 3, I = 3, W = 3 (input share 1 of 2 per layer); m = 6, p = 2:
  // step = 3 m t + (p - 1) t with t = 3.
  Result<Plan> zb = MakePlan(Request(EqualProfile(6, 1.0), "zb-h1", 2, 6));
  ASSERT_TRUE(zb.ok()) << zb.message();
  EXPECT_DOUBLE_EQ(zb->predicted.step_time_ms, 3 * 6 * 3.0 + 3.0);
  EXPECT_FALSE(zb->stages[0].device.has_value());
  // Without the split, I = W = 3 as well (even split): the same step.
  Result<Plan> even = MakePlan(Request(EqualProfile(6), "zb-h1", 2, 6));
  ASSERT_TRUE(even.ok());
  EXPECT_DOUBLE_EQ(even->predicted.step_time_ms, zb->predicted.step_time_ms);
  EXPECT_FALSE(HasBackwardSplit(EqualProfile(6)));
  // 1f1b: (m + p - 1)(f + b) with stages of 9 ms, no virtual_stages key in the document.
  Result<Plan> base = MakePlan(Request(EqualProfile(6), "1f1b", 2, 6));
  ASSERT_TRUE(base.ok());
  EXPECT_DOUBLE_EQ(base->predicted.step_time_ms, 7 * 9.0);
  EXPECT_FALSE(PlanToJson(*base).contains("virtual_stages"));
}

// --step-budget 0: the search stops at once; the plan is the best incumbent (never worse than
// uniform), says on stderr that it is unproven and how far from the bound, and records the
// bound; a generous budget proves a small case.
TEST(ChunkedPlan, CliStepBudgetReportsTheBound) {
  const std::string dir = testing::TempDir();
  testing::CommandResult r = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 32 --schedule interleaved "
      "--memory-limit none --step-budget 0 --format json -o " + dir + "/p.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ran out of its time budget"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("ms ms"), std::string::npos) << r.err;
  Result<Plan> plan = LoadPlan(dir + "/p.json");
  ASSERT_TRUE(plan.ok()) << plan.message();
  ASSERT_TRUE(plan->objective_bound.has_value());
  EXPECT_FALSE(plan->objective_bound->exact);
  EXPECT_LT(plan->objective_bound->lower_bound_ms, plan->predicted.step_time_ms);
  r = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 32 --schedule interleaved "
      "--memory-limit none --method uniform --format json -o " + dir + "/u.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(plan->predicted.step_time_ms, LoadPlan(dir + "/u.json")->predicted.step_time_ms);
  r = testing::RunTool(
      "plan models/gpt2-small.json --stages 2 --micro-batches 4 --schedule zbv "
      "--step-budget 30 --format json -o " + dir + "/z.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(LoadPlan(dir + "/z.json")->objective_bound->exact);
  EXPECT_EQ(testing::RunTool("plan models/gpt2-small.json --stages 2 --micro-batches 4 "
                             "--step-budget -1").exit_code,
            2);
}

TEST(ChunkedPlan, CliPlansAndSimulatesEverySchedule) {
  const std::string dir = testing::TempDir();
  for (const char* s : {"interleaved", "zb-h1", "zbv"}) {
    const std::string plan = dir + "/" + s + ".json";
    testing::CommandResult r =
        testing::RunTool(std::string("plan models/gpt2-small.json --stages 2 --micro-batches 4 ") +
                         "--schedule " + s + " --memory-limit none -o " + plan);
    ASSERT_EQ(r.exit_code, 0) << s << ": " << r.err;
    r = testing::RunTool("simulate " + plan + " --trace " + dir + "/t.json");
    ASSERT_EQ(r.exit_code, 0) << s << ": " << r.err;
    EXPECT_NE(r.out.find("bubble/ideal"), std::string::npos);
    const std::string trace = testing::ReadText(dir + "/t.json");
    if (std::string(s) != "interleaved") {
      EXPECT_NE(trace.find("backward_weight"), std::string::npos) << s;
    }
  }
  testing::CommandResult bad = testing::RunTool(
      "plan models/gpt2-small.json --stages 2 --micro-batches 3 --schedule interleaved");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("multiple"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace pp

namespace pp {
namespace {

// A device's peak against a walk of its ops: holding each chunk's activations from its
// forward to its backward (its weight gradient when split), the most it ever holds at once
// lies at or under DevicePeakMemory, which lies at or under the sum of its chunks' own peaks,
// on random unequal splits of interleaved and zbv plans.
TEST(ChunkedPlan, ADevicesPeakBoundsWhatItsScheduleHoldsAtOnce) {
  std::mt19937_64 rng(41);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int tighter = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int p = uniform(2, 4), v = 2, n = p * v + uniform(0, 8);
    Profile profile = EqualProfile(n, trial % 2 ? 1.0 : -1);
    for (LayerProfile& l : profile.layers) {
      l.param_bytes = uniform(0, 50);
      l.activation_bytes = uniform(1, 400);
    }
    PlanRequest r = Request(profile, trial % 2 ? "zbv" : "interleaved", p, p * uniform(1, 4));
    r.virtual_stages = v;
    std::vector<int> b;
    for (int c = 1; c < p * v; ++c) b.push_back(c + (c > p ? uniform(0, n - p * v) : 0));
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    if (static_cast<int>(b.size()) != p * v - 1 || b.back() >= n) continue;
    Result<Plan> plan = EvaluateSplit(r, b, "given");
    ASSERT_TRUE(plan.ok()) << plan.message();
    Result<PlanContext> ctx = PlanContextOf(*plan);
    ASSERT_TRUE(ctx.ok()) << ctx.message();
    const std::vector<uint64_t> peaks = DevicePeakMemory(*plan);
    for (int d = 0; d < p; ++d) {
      uint64_t state = 0, sum = 0;
      std::vector<uint64_t> acts(plan->stages.size(), 0);
      for (const StagePlan& s : plan->stages) {
        for (int i = s.first_layer; i <= s.last_layer; ++i) {
          acts[s.index] += profile.layers[i].activation_bytes;
        }
        if (ctx->chunk_device[s.index] != d) continue;
        sum += s.peak_memory_bytes;
        for (int i = s.first_layer; i <= s.last_layer; ++i) {
          state += profile.layers[i].param_bytes;  // no optimizer: the weights alone
        }
      }
      std::vector<int> held(plan->stages.size(), 0);
      uint64_t most = 0;
      for (const PipelineOp& op : ctx->schedule.device_ops[d]) {
        const int c = OpChunk(ctx->schedule, d, op);
        held[c] += op.kind == OpKind::kForward ? 1 : op.kind == OpKind::kBackwardInput ? 0 : -1;
        uint64_t now = 0;
        for (size_t k = 0; k < held.size(); ++k) now += static_cast<uint64_t>(held[k]) * acts[k];
        most = std::max(most, now);
      }
      EXPECT_LE(state + most, peaks[d]) << "trial " << trial << " device " << d;
      EXPECT_LE(peaks[d], sum) << "trial " << trial << " device " << d;
      tighter += peaks[d] < sum;
    }
  }
  EXPECT_GT(tighter, 20);
}

}  // namespace
}  // namespace pp
