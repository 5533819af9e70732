// Heterogeneous devices and nodes against brute force over every split and closed forms.
// Each stage's times are summed directly from its own device type's layers and simulated
// with the executor's simulator, independently of the cost model's prefix sums. Times are
// multiples of 1/4 and links are chosen so that every transfer is too, so sums are exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>

#include "executor/schedule.h"
#include "executor/simulator.h"
#include "partitioner/planner.h"
#include "partitioner/search.h"
#include "partitioner/split_search.h"
#include "tests/test_util.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Profile RandomProfile(std::mt19937_64& rng, int n, const std::string& device, uint64_t memory) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Profile p;
  p.model = "random";
  p.backend = "analytic";
  p.device = {device, memory};
  p.micro_batch_size = 1;
  p.link = {4000.0, 0.25 * uniform(0, 2)};  // bytes / 4 ms per transfer: exact
  for (int i = 0; i < n; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 0.25 * uniform(0, 40);
    l.backward_ms = 0.25 * uniform(0, 80);
    l.param_bytes = static_cast<uint64_t>(uniform(0, 1000));
    l.activation_bytes = static_cast<uint64_t>(uniform(0, 1000));
    l.output_bytes = 4 * static_cast<uint64_t>(uniform(0, 40));
    p.layers.push_back(l);
  }
  return p;
}

// A second device type: the same bytes, its own times and memory.
Profile OtherType(std::mt19937_64& rng, const Profile& base, uint64_t memory) {
  Profile p = RandomProfile(rng, static_cast<int>(base.layers.size()), "other", memory);
  for (size_t i = 0; i < p.layers.size(); ++i) {
    p.layers[i].param_bytes = base.layers[i].param_bytes;
    p.layers[i].activation_bytes = base.layers[i].activation_bytes;
    p.layers[i].output_bytes = base.layers[i].output_bytes;
  }
  p.link = base.link;
  return p;
}

struct Direct {
  double max_stage_ms = 0;
  double step_ms = 0;
  bool fits = true;
};

// Stage (chunk) s on its device's type's profile; each device's chunks together under its
// memory (adam bf16: 8 x params): the sum of its chunks' peaks, or their state plus the most
// micro-batches the device holds at once times its largest chunk's activations, the less.
Direct Evaluate(const PlanRequest& r, const std::vector<int>& b) {
  Direct d;
  const int n = static_cast<int>(r.profile.layers.size());
  // zbv chooses its order for the profile's typical op times (docs/schedules.md).
  const int chunks = NumChunks(*BuildSchedule(r.schedule, r.num_stages, r.num_micro_batches));
  const Schedule schedule = *BuildSchedule(r.schedule, r.num_stages, r.num_micro_batches,
                                           ScheduleOptions{2, OpTimesHintOf(r.profile, chunks)});
  const int p = NumChunks(schedule);
  const std::vector<int> chunk_in_flight = InFlightPerChunk(schedule);
  const std::vector<int> device_held = InFlightMicroBatches(schedule);
  std::vector<uint64_t> device_bytes(r.num_stages, 0), device_state(r.num_stages, 0),
      device_most(r.num_stages, 0);
  std::vector<int> device_chunks(r.num_stages, 0);
  ChunkTimes times;
  for (int s = 0; s < p; ++s) {
    const int device = ChunkDevice(schedule, s);
    const std::string& type = r.devices.stage_type[device];
    const Profile& prof =
        type == r.devices.stage_type[0] ? r.profile : r.devices.profiles.at(type);
    const int first = s == 0 ? 0 : b[s - 1];
    const int last = s + 1 == p ? n - 1 : b[s] - 1;
    double f = 0, bw = 0;
    uint64_t params = 0, acts = 0;
    for (int i = first; i <= last; ++i) {
      f += prof.layers[i].forward_ms;
      bw += prof.layers[i].backward_ms;
      params += prof.layers[i].param_bytes;
      acts += prof.layers[i].activation_bytes;
    }
    int in_flight = chunk_in_flight[s];
    if (r.schedule == "gpipe") in_flight = r.num_micro_batches;
    if (r.schedule == "1f1b") in_flight = std::min(p - s, r.num_micro_batches);
    device_bytes[device] += params * 8 + in_flight * acts;
    device_state[device] += params * 8;
    device_most[device] = std::max(device_most[device], acts);
    ++device_chunks[device];
    d.max_stage_ms = std::max(d.max_stage_ms, f + bw);
    times.forward_ms.push_back(f);
    times.backward_ms.push_back(bw);
    if (s + 1 < p) {
      const int k = r.devices.gpus_per_node;
      const int next = ChunkDevice(schedule, s + 1);
      const bool crosses = k > 0 && device / k != next / k;
      const Link& link = crosses ? *r.devices.inter_node_link : r.profile.link;
      times.transfer_ms.push_back(link.latency_ms + 1000.0 * prof.layers[last].output_bytes /
                                                        link.bandwidth_bytes_per_s);
    }
  }
  for (int device = 0; device < r.num_stages; ++device) {
    const std::string& type = r.devices.stage_type[device];
    const Profile& prof = type == r.devices.stage_type[0] ? r.profile : r.devices.profiles.at(type);
    uint64_t peak = device_bytes[device];
    if (device_chunks[device] > 1) {
      peak = std::min(peak, device_state[device] +
                                static_cast<uint64_t>(device_held[device]) * device_most[device]);
    }
    if (peak > prof.device.memory_bytes) d.fits = false;
  }
  ChargeTransfers(schedule, &times);  // what the kind pays per transfer
  d.step_ms = Simulate(schedule, times)->step_time_ms;
  return d;
}

PlanRequest RandomRequest(std::mt19937_64& rng) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  PlanRequest r;
  const int n = uniform(1, 9);
  r.num_stages = uniform(1, std::min(n, 5));
  r.num_micro_batches = uniform(1, 6);
  r.schedule = uniform(0, 1) ? "1f1b" : "gpipe";
  r.optimizer = Optimizer::kAdam;
  r.method = "dp";
  r.step_budget_s = 60;
  // Memory from tight to ample, different per type.
  r.profile = RandomProfile(rng, n, "fast", 1000 * static_cast<uint64_t>(uniform(8, 60)));
  r.devices.profiles["slow"] = OtherType(rng, r.profile, 1000 * uniform(8, 60));
  for (int s = 0; s < r.num_stages; ++s) {
    r.devices.stage_type.push_back(uniform(0, 1) ? "fast" : "slow");
  }
  r.devices.profiles.erase(r.devices.stage_type[0]);
  if (r.devices.stage_type[0] == "slow") {
    // Stage 0's type is the base profile: swap so that "slow" is the base.
    r.devices.profiles["fast"] = r.profile;
    r.profile = OtherType(rng, r.profile, 1000 * uniform(8, 60));
  }
  r.devices.per_device_memory = true;
  if (uniform(0, 1)) {
    r.devices.gpus_per_node = uniform(1, 3);
    r.devices.inter_node_link = Link{1000.0, 0.25 * uniform(0, 8)};  // bytes ms: exact
  }
  return r;
}

// With `chunked`, every request runs interleaved (V = 2) or zbv on at most n / 2 devices.
void CheckAgainstBruteForce(const std::string& objective, uint64_t seed, bool chunked = false) {
  std::mt19937_64 rng(seed);
  int feasible = 0, infeasible = 0, mixed = 0;
  const int trials = testing::Trials(400);
  for (int trial = 0; trial < trials; ++trial) {
    PlanRequest r = RandomRequest(rng);
    r.objective = objective;
    const int n = static_cast<int>(r.profile.layers.size());
    if (chunked) {
      if (n < 2) continue;
      r.num_stages = std::min(r.num_stages, n / 2);
      r.devices.stage_type.resize(r.num_stages);
      r.schedule = trial % 2 ? "zbv" : "interleaved";
      if (r.schedule == "interleaved") r.num_micro_batches = r.num_stages * (1 + trial % 3);
    }
    const int chunks = NumChunks(*BuildSchedule(r.schedule, r.num_stages, r.num_micro_batches));
    double best_bottleneck = kInf, best_step = kInf;
    testing::ForEachSplit(n, chunks, [&](const std::vector<int>& b) {
      const Direct d = Evaluate(r, b);
      if (!d.fits) return;
      best_bottleneck = std::min(best_bottleneck, d.max_stage_ms);
      best_step = std::min(best_step, d.step_ms);
    });
    mixed += r.devices.profiles.size() > 0;
    Result<Plan> plan = MakePlan(r);
    if (best_step == kInf) {
      ++infeasible;
      EXPECT_FALSE(plan.ok()) << "trial " << trial;
      continue;
    }
    ++feasible;
    ASSERT_TRUE(plan.ok()) << "trial " << trial << ": " << plan.message();
    const Direct got = Evaluate(r, plan->boundaries);
    EXPECT_TRUE(got.fits) << "trial " << trial;
    EXPECT_TRUE(StagesOverLimit(*plan).empty()) << "trial " << trial;
    EXPECT_EQ(plan->predicted.step_time_ms, got.step_ms) << "trial " << trial;
    if (objective == "step") {
      EXPECT_EQ(got.step_ms, best_step) << "trial " << trial << " " << r.schedule;
      ASSERT_TRUE(plan->objective_bound.has_value());
      EXPECT_TRUE(plan->objective_bound->exact);
    } else {
      EXPECT_EQ(got.max_stage_ms, best_bottleneck) << "trial " << trial;
      EXPECT_EQ(plan->predicted.max_stage_ms, best_bottleneck) << "trial " << trial;
    }
    for (const StagePlan& st : plan->stages) {
      EXPECT_EQ(st.device_type, r.devices.stage_type[st.device.value_or(st.index)]);
    }
  }
  EXPECT_GT(feasible, trials * 3 / 8);
  EXPECT_GT(infeasible, trials / 40);
  EXPECT_GT(mixed, trials * 3 / 8);
}

TEST(HeterogeneousDevices, BottleneckEqualsBruteForce) {
  CheckAgainstBruteForce("bottleneck", 20261128);
}

TEST(HeterogeneousDevices, StepEqualsBruteForce) { CheckAgainstBruteForce("step", 99); }

// Several chunks per device (interleaved, zbv) on devices of two types and nodes: each chunk
// takes its device's times, node and memory, and a device's chunks share that memory.
TEST(HeterogeneousDevices, StepEqualsBruteForceWithChunks) {
  CheckAgainstBruteForce("step", 7, /*chunked=*/true);
}

TEST(HeterogeneousDevices, FastPathEqualsTwoPointerPass) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    PlanRequest r = RandomRequest(rng);
    Result<std::unique_ptr<StageCosts>> costs = StageCosts::Make(
        r.profile, r.devices, r.optimizer, r.num_stages, std::nullopt);
    ASSERT_TRUE(costs.ok()) << costs.message();
    const std::vector<int> in_flight =
        InFlightPerChunk(*BuildSchedule(r.schedule, r.num_stages, r.num_micro_batches));
    const SplitSearch fast((*costs)->setup(), in_flight, FeasibilityPath::kAuto);
    const SplitSearch reference((*costs)->setup(), in_flight, FeasibilityPath::kTwoPointer);
    ASSERT_EQ(fast.MemoryFeasible(), reference.MemoryFeasible()) << "trial " << trial;
    if (!fast.MemoryFeasible()) continue;
    EXPECT_EQ(fast.MinBottleneckMs(), reference.MinBottleneckMs()) << "trial " << trial;
  }
}

// Four equal layers of f = 1, b = 2 and 8 output bytes; link 4000 B/s (2 ms per transfer),
// inter-node link 1000 B/s and 1 ms latency (9 ms per transfer).
PlanRequest EqualLayers(int n, int stages) {
  PlanRequest r;
  r.profile.model = "equal";
  r.profile.backend = "analytic";
  r.profile.device = {"dev", uint64_t{1} << 40};
  r.profile.micro_batch_size = 1;
  r.profile.link = {4000.0, 0.0};
  for (int i = 0; i < n; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 1.0;
    l.backward_ms = 2.0;
    l.output_bytes = 8;
    r.profile.layers.push_back(l);
  }
  r.num_stages = stages;
  r.num_micro_batches = 5;
  r.schedule = "gpipe";
  r.method = "given";
  r.objective = "bottleneck";
  return r;
}

TEST(Nodes, GpipeWithOneSlowBoundaryIsClosedForm) {
  // p = 4 stages of one layer, two GPUs per node: only boundary 1|2 crosses nodes.
  PlanRequest r = EqualLayers(4, 4);
  r.boundaries = {1, 2, 3};
  r.devices.gpus_per_node = 2;
  r.devices.inter_node_link = Link{1000.0, 1.0};
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  const int m = 5, p = 4;
  // step = (m + p - 1)(f + b) + 2 x (2 + 9 + 2)
  EXPECT_DOUBLE_EQ(plan->predicted.step_time_ms, (m + p - 1) * 3.0 + 2 * (2.0 + 9.0 + 2.0));
  // The plan records the nodes, and simulating it again gives the same step.
  Result<Plan> back = PlanFromJson(PlanToJson(*plan));
  ASSERT_TRUE(back.ok()) << back.message();
  ASSERT_TRUE(back->gpus_per_node.has_value());
  EXPECT_EQ(*back->gpus_per_node, 2);
  Result<Timeline> again = SimulatePlan(*back);
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(again->step_time_ms, plan->predicted.step_time_ms);
}

TEST(Nodes, SplitAvoidsACostlyInterNodeBoundary) {
  // Six layers on two stages on two nodes; layer 2's output is large, so ending stage 0
  // there (the balanced split) costs a slow inter-node transfer. Brute force decides.
  PlanRequest r = EqualLayers(6, 2);
  r.profile.link = {4e6, 0.0};  // 1 ms for layer 2's output within a node
  r.profile.layers[2].output_bytes = 4000;
  r.method = "dp";
  r.objective = "step";
  r.step_budget_s = 60;
  Result<Plan> one_node = MakePlan(r);
  ASSERT_TRUE(one_node.ok()) << one_node.message();
  r.devices.gpus_per_node = 1;
  r.devices.inter_node_link = Link{1000.0, 0.0};
  Result<Plan> two_nodes = MakePlan(r);
  ASSERT_TRUE(two_nodes.ok()) << two_nodes.message();
  double best = kInf;
  std::vector<int> best_split;
  r.devices.stage_type = {"dev", "dev"};
  r.devices.per_device_memory = true;
  testing::ForEachSplit(6, 2, [&](const std::vector<int>& b) {
    const double step = Evaluate(r, b).step_ms;
    if (step < best) {
      best = step;
      best_split = b;
    }
  });
  EXPECT_DOUBLE_EQ(two_nodes->predicted.step_time_ms, best);
  EXPECT_EQ(two_nodes->boundaries, best_split);
  EXPECT_EQ(one_node->boundaries, std::vector<int>{3});
  EXPECT_NE(two_nodes->boundaries, one_node->boundaries);
}

TEST(HeterogeneousDevices, OlderPlansStayReadable) {
  PlanRequest r = EqualLayers(4, 2);
  r.boundaries = {2};
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok());
  Json doc = PlanToJson(*plan);
  EXPECT_FALSE(doc.contains("device_profiles"));
  EXPECT_FALSE(doc.contains("gpus_per_node"));
  EXPECT_FALSE(doc["stages"][0].contains("device_type"));
  Result<Plan> back = PlanFromJson(doc);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(back->device_profiles.empty());
  EXPECT_EQ(SimulatePlan(*back)->step_time_ms, plan->predicted.step_time_ms);
}

TEST(HeterogeneousDevices, CliShowsEachStagesDevice) {
  const std::string dir = testing::TempDir();
  const testing::CommandResult text = testing::RunTool(
      "plan models/gpt2-small.json --device-types h100:2,a100:2 --micro-batches 8");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("0 h100"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3 a100"), std::string::npos) << text.out;
  const testing::CommandResult json = testing::RunTool(
      "plan models/gpt2-small.json --device-types h100:2,a100:2 --micro-batches 8 "
      "--format json -o " + dir + "/plan.json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Result<Plan> plan = LoadPlan(dir + "/plan.json");
  ASSERT_TRUE(plan.ok()) << plan.message();
  ASSERT_EQ(plan->device_profiles.count("a100"), 1u);
  EXPECT_EQ(plan->stages[3].device_type, "a100");
  // Re-derived from the embedded profiles: the same step.
  EXPECT_EQ(SimulatePlan(*plan)->step_time_ms, plan->predicted.step_time_ms);
  // The search on this pipeline of types: its depth is the type list's (two replicas of it),
  // the best plan keeps each stage's type, and nodes of 2 GPUs put the all-reduce on the
  // inter-node link.
  const testing::CommandResult stages_auto = testing::RunTool(
      "plan models/gpt2-small.json --stages auto --gpus-total 8 --global-batch 32 "
      "--device-types h100:2,a100:2 --gpus-per-node 2 --inter-node-link 25e9,0.005 "
      "-o " + dir + "/best.json");
  ASSERT_EQ(stages_auto.exit_code, 0) << stages_auto.err;
  EXPECT_NE(stages_auto.out.find("p=4 r=2"), std::string::npos) << stages_auto.out;
  EXPECT_EQ(stages_auto.out.find("p=2 "), std::string::npos) << stages_auto.out;
  Result<Plan> best = LoadPlan(dir + "/best.json");
  ASSERT_TRUE(best.ok()) << best.message();
  ASSERT_EQ(best->num_stages, 4);
  for (const StagePlan& st : best->stages) {
    EXPECT_EQ(*st.device_type, st.device.value_or(st.index) < 2 ? "h100" : "a100");
  }
  EXPECT_EQ(best->gpus_per_node, 2);
  const testing::CommandResult odd = testing::RunTool(
      "plan models/gpt2-small.json --stages auto --gpus-total 6 --global-batch 24 "
      "--device-types h100:2,a100:2");
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("not a whole number of copies"), std::string::npos) << odd.err;
}

// SearchPlans on a typed pipeline against planning every (micro-batch size, schedule) point of
// it directly with the same layout; the all-reduce over the inter-node link once G exceeds
// the GPUs of one node, over the profile's link otherwise.
TEST(HeterogeneousDevices, SearchEqualsBruteForceOnATypedPipeline) {
  std::mt19937_64 rng(3);
  int searched = 0;
  for (int trial = 0; trial < 60; ++trial) {
    PlanRequest base = RandomRequest(rng);
    const int n = static_cast<int>(base.profile.layers.size());
    if (base.num_stages < 2 || n < 2 * base.num_stages) continue;
    const int p = base.num_stages;
    PlanRequest req;  // the search's own defaults, on the base's profile and device types
    req.profile = base.profile;
    req.devices = base.devices;
    req.search.emplace();
    Profile second = base.profile;  // a second micro-batch size: every time doubled
    second.micro_batch_size = 2;
    for (LayerProfile& l : second.layers) {
      l.forward_ms *= 2;
      l.backward_ms *= 2;
    }
    std::map<std::string, Profile> second_types = base.devices.profiles;
    for (auto& [type, prof] : second_types) {
      prof.micro_batch_size = 2;
      for (LayerProfile& l : prof.layers) {
        l.forward_ms *= 2;
        l.backward_ms *= 2;
      }
    }
    req.search->other_sizes = {{second, second_types}};
    req.devices.per_device_memory = false;
    req.memory_limit = std::nullopt;
    req.search->gpus_total = 2 * p;
    req.search->global_batch = 4 * p;
    req.devices.gpus_per_node = trial % 2 ? p : 2 * p;  // the replicas on two nodes, or on one
    req.devices.inter_node_link = Link{1000.0, 0.25};
    req.step_budget_s = 600;
    const std::vector<Profile> sizes = {base.profile, second};
    const std::vector<std::map<std::string, Profile>> size_types = {base.devices.profiles,
                                                                    second_types};
    Result<SearchResult> found = SearchPlans(req);
    ASSERT_TRUE(found.ok()) << found.message();
    double best = kInf;
    for (const Profile& prof : sizes) {
      for (const char* schedule : {"gpipe", "1f1b", "zb-h1", "interleaved", "zbv"}) {
        PlanRequest r = base;
        r.profile = prof;
        r.devices.profiles = prof.micro_batch_size == 1 ? size_types[0] : size_types[1];
        r.devices.per_device_memory = false;
        r.devices.gpus_per_node = req.devices.gpus_per_node;
        r.devices.inter_node_link = req.devices.inter_node_link;
        r.memory_limit = std::nullopt;
        r.schedule = schedule;
        r.num_micro_batches = static_cast<int>(4 * p / (2 * prof.micro_batch_size));
        if (std::string(schedule) == "interleaved" && r.num_micro_batches % p != 0) continue;
        Result<Plan> plan = MakePlan(r);
        ASSERT_TRUE(plan.ok()) << plan.message();
        uint64_t largest = 0;
        for (const StagePlan& st : plan->stages) largest = std::max(largest, st.param_bytes);
        const Link& link =
            req.devices.gpus_per_node < 2 * p ? *req.devices.inter_node_link : prof.link;
        best = std::min(best, plan->predicted.step_time_ms + RingAllReduceMs(largest, 2, link));
      }
    }
    ASSERT_FALSE(found->ranked.empty());
    EXPECT_DOUBLE_EQ(found->ranked.front().batch_ms, best) << "trial " << trial;
    for (const SearchCandidate& c : found->ranked) EXPECT_EQ(c.stages, p);
    ++searched;
  }
  EXPECT_GT(searched, 10);
}

}  // namespace
}  // namespace pp
