// Per-stage activation recomputation against closed forms and brute force over every split.
// Times are multiples of 1/4 so every sum is exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "executor/schedule.h"
#include "partitioner/planner.h"
#include "partitioner/search.h"
#include "tests/test_util.h"

namespace pp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A token model of n layers (mbs 2, seq 16: 128 bytes of token ids per micro-batch) with a
// profile of the given layer times and bytes.
PlanRequest Request(const std::vector<LayerProfile>& layers) {
  PlanRequest r;
  Model model;
  model.name = "m";
  model.input.micro_batch_size = 2;
  model.input.seq_len = 16;
  for (size_t i = 0; i < layers.size(); ++i) {
    Layer l;
    l.name = layers[i].name;
    l.op = LayerKind::kLayerNorm;
    l.hidden = 4;
    model.layers.push_back(l);
  }
  r.model = model;
  r.profile.model = "m";
  r.profile.backend = "analytic";
  r.profile.device = {"dev", uint64_t{1} << 40};
  r.profile.micro_batch_size = 2;
  r.profile.dtype = DType::kBf16;
  r.profile.link = {1e12, 0.0};  // transfers of 6e-8 ms: compared with a tolerance
  r.profile.layers = layers;
  r.schedule = "gpipe";
  r.optimizer = Optimizer::kSgd;  // 2 x param_bytes
  r.objective = "bottleneck";
  return r;
}

LayerProfile Layer(int i, double f, double b, uint64_t params, uint64_t acts, uint64_t out) {
  LayerProfile l;
  l.name = "l" + std::to_string(i);
  l.forward_ms = f;
  l.backward_ms = b;
  l.param_bytes = params;
  l.activation_bytes = acts;
  l.output_bytes = out;
  return l;
}

// The plan's JSON without its model (this test's model is a stand-in, not a full model
// document).
Json BareJson(Plan plan) {
  plan.model_spec.reset();
  return PlanToJson(plan);
}

// Four layers of 10 parameter bytes and 100 activation bytes each (outputs 40, 60, 70, 0),
// split {2} into two gpipe stages with m = 4.
PlanRequest TwoStages() {
  PlanRequest r = Request({Layer(0, 1, 2, 10, 100, 40), Layer(1, 1, 2, 10, 100, 60),
                           Layer(2, 1, 2, 10, 100, 70), Layer(3, 1, 2, 10, 100, 0)});
  r.num_stages = 2;
  r.num_micro_batches = 4;
  r.method = "given";
  r.boundaries = {2};
  return r;
}

TEST(Recompute, MemoryAndTimeAreClosedForms) {
  // Two stages of two layers, gpipe with m = 4 (4 micro-batches in flight on each stage).
  PlanRequest r = TwoStages();
  for (const std::string mode : {"none", "all"}) {
    r.recompute = mode;
    Result<Plan> plan = MakePlan(r);
    ASSERT_TRUE(plan.ok()) << plan.message();
    const bool on = mode == "all";
    // peak = 2 x params + in_flight x kept + one micro-batch's activations when recomputing.
    EXPECT_EQ(plan->stages[0].peak_memory_bytes, on ? 2 * 20 + 4 * 128 + 200 : 2 * 20 + 4 * 200);
    EXPECT_EQ(plan->stages[1].peak_memory_bytes, on ? 2 * 20 + 4 * 60 + 200 : 2 * 20 + 4 * 200);
    EXPECT_EQ(plan->stages[0].recompute, on);
    // B grows by F: f = 2, b = 4 (+2); gpipe step = (m + p - 1)(f + b).
    EXPECT_EQ(plan->stages[0].backward_ms, on ? 6.0 : 4.0);
    EXPECT_NEAR(plan->predicted.step_time_ms, (4 + 2 - 1) * (on ? 8.0 : 6.0), 1e-6);
    // The recorded flags re-simulate to the same step; older readers' plans lack them.
    Plan bare = *plan;
    bare.model_spec.reset();  // this test's model is a stand-in, not a full model document
    Result<Plan> back = PlanFromJson(PlanToJson(bare));
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(back->stages[0].recompute, on);
    EXPECT_EQ(PlanToJson(*plan)["stages"][0].contains("recompute"), on);
    EXPECT_EQ(SimulatePlan(*back)->step_time_ms, plan->predicted.step_time_ms);
    EXPECT_FALSE(PlanToJson(*plan).contains("recompute_unit"));
  }
  // Layer by layer: each stage keeps every layer's input (stage 0: the 128 bytes of token ids
  // and layer 0's output, 40; stage 1: 60 + 70) and rebuilds one layer's 100 bytes; the same
  // time. The plan records the unit and reads it back.
  r.recompute = "all";
  r.recompute_unit = RecomputeUnit::kLayer;
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->stages[0].peak_memory_bytes, 2 * 20 + 4 * (128 + 40) + 100);
  EXPECT_EQ(plan->stages[1].peak_memory_bytes, 2 * 20 + 4 * (60 + 70) + 100);
  EXPECT_EQ(plan->stages[0].backward_ms, 6.0);
  EXPECT_NEAR(plan->predicted.step_time_ms, (4 + 2 - 1) * 8.0, 1e-6);
  const Json doc = BareJson(*plan);
  EXPECT_EQ(doc["recompute_unit"], "layer");
  Result<Plan> back = PlanFromJson(doc);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->recompute_unit, RecomputeUnit::kLayer);
  Json bad = doc;
  bad["recompute_unit"] = "blocks";
  Result<Plan> refused = PlanFromJson(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("recompute_unit"), std::string::npos) << refused.message();
  bad["recompute_unit"] = "layer";
  bad["recompute_blocks"] = 2;
  EXPECT_FALSE(PlanFromJson(bad).ok());
}

// Selective: each recomputing stage drops its layers' core attention bytes and rebuilds one
// layer's at a time; B grows by their core attention's forward. A profile without the figures
// is refused in one line.
TEST(Recompute, SelectiveIsAClosedForm) {
  PlanRequest r = TwoStages();
  r.recompute = "all";
  r.recompute_unit = RecomputeUnit::kSelective;
  Result<Plan> refused = MakePlan(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("core_attention_bytes"), std::string::npos) << refused.message();
  const double core_ms[] = {0, 0.25, 0.5, 0.25};
  const uint64_t core_bytes[] = {0, 60, 30, 50};
  for (int i = 0; i < 4; ++i) {
    r.profile.layers[i].module(RecomputeModule::kCoreAttn) =
        ModuleFigures{core_ms[i], core_bytes[i]};
  }
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->stages[0].peak_memory_bytes, 2 * 20 + 4 * (200 - 60) + 60);
  EXPECT_EQ(plan->stages[1].peak_memory_bytes, 2 * 20 + 4 * (200 - 80) + 50);
  EXPECT_EQ(plan->stages[0].backward_ms, 4.25);
  EXPECT_EQ(plan->stages[1].backward_ms, 4.75);
  const Json doc = BareJson(*plan);
  EXPECT_EQ(doc["recompute_unit"], "selective");
  Result<Plan> back = PlanFromJson(doc);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->recompute_unit, RecomputeUnit::kSelective);
  EXPECT_EQ(SimulatePlan(*back)->step_time_ms, plan->predicted.step_time_ms);
}

// Selective by module: each layer drops what its recomputed modules keep, each part once (moe
// contains moe_act and shared_experts), and runs their forwards again; the plan records the
// modules and re-simulates to the same step. A module no layer has is refused in one line.
TEST(Recompute, SelectiveModulesAreAClosedForm) {
  PlanRequest r = TwoStages();
  r.recompute = "all";
  r.recompute_unit = RecomputeUnit::kSelective;
  // Per layer: core_attn, layernorm, moe, moe_act (ms, bytes); activation_bytes 100 each.
  const ModuleFigures core[] = {{0, 0}, {0.25, 10}, {0.5, 5}, {0.25, 20}};
  const ModuleFigures norm[] = {{0.125, 4}, {0.125, 4}, {0.125, 4}, {0.125, 4}};
  const ModuleFigures moe[] = {{0, 0}, {0.5, 50}, {0.25, 40}, {0, 0}};
  const ModuleFigures act[] = {{0, 0}, {0.125, 30}, {0.125, 20}, {0, 0}};
  for (int i = 0; i < 4; ++i) {
    LayerProfile& l = r.profile.layers[i];
    l.module(RecomputeModule::kCoreAttn) = core[i];
    l.module(RecomputeModule::kLayerNorm) = norm[i];
    if (moe[i].bytes > 0) {
      l.module(RecomputeModule::kMoe) = moe[i];
      l.module(RecomputeModule::kMoeAct) = act[i];
    }
  }
  struct Case {
    std::vector<std::string> names;
    // Per layer: bytes dropped and ms run again, worked by hand from the figures above.
    uint64_t dropped[4];
    double again[4];
  };
  const Case cases[] = {
      {{"core_attn"}, {0, 10, 5, 20}, {0, 0.25, 0.5, 0.25}},
      {{"layernorm", "moe_act"}, {4, 34, 24, 4}, {0.125, 0.25, 0.25, 0.125}},
      // moe_act inside moe: counted once.
      {{"moe", "moe_act", "layernorm"}, {4, 54, 44, 4}, {0.125, 0.625, 0.375, 0.125}},
      {{"core_attn", "moe"}, {0, 60, 45, 20}, {0, 0.75, 0.75, 0.25}},
  };
  for (const Case& c : cases) {
    std::string error;
    const std::optional<RecomputeModules> set = ParseRecomputeModules(c.names, &error);
    ASSERT_TRUE(set) << error;
    r.recompute_modules = *set;
    Result<Plan> plan = MakePlan(r);
    ASSERT_TRUE(plan.ok()) << plan.message();
    // Stage s holds layers 2s and 2s + 1 (params 10 each, Adam-free state 2x), 4 in flight.
    for (int s = 0; s < 2; ++s) {
      const uint64_t a = c.dropped[2 * s], b = c.dropped[2 * s + 1];
      EXPECT_EQ(plan->stages[s].peak_memory_bytes, 2 * 20 + 4 * (200 - a - b) + std::max(a, b))
          << c.names.front() << " stage " << s;
      EXPECT_DOUBLE_EQ(plan->stages[s].backward_ms, 4 + c.again[2 * s] + c.again[2 * s + 1]);
    }
    const Json doc = BareJson(*plan);
    EXPECT_EQ(doc["recompute_modules"].size(), c.names.size());
    Result<Plan> back = PlanFromJson(doc);
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(back->recompute_modules, *set);
    EXPECT_EQ(SimulatePlan(*back)->step_time_ms, plan->predicted.step_time_ms);
  }
  r.recompute_modules = RecomputeModules().With(RecomputeModule::kMlaUpProj);
  Result<Plan> refused = MakePlan(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("mla_up_proj"), std::string::npos) << refused.message();
}

// By block: the first K transformer blocks of each recomputing stage keep their inputs and
// rebuild one at a time; the other layers keep their activations; B grows by those blocks'
// forward only.
TEST(Recompute, ByBlockIsAClosedForm) {
  PlanRequest r = Request({Layer(0, 1, 2, 10, 100, 40), Layer(1, 1, 2, 10, 100, 60),
                           Layer(2, 1, 2, 10, 100, 70), Layer(3, 1, 2, 10, 100, 0)});
  r.profile.layers[0].op = "embedding";
  for (int i = 1; i < 4; ++i) r.profile.layers[i].op = "transformer_block";
  r.num_stages = 2;
  r.num_micro_batches = 4;
  r.method = "given";
  r.boundaries = {2};
  r.recompute = "all";
  r.recompute_unit = RecomputeUnit::kBlock;
  r.recompute_blocks = 1;
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  // Stage 0: layer 1 by block (keeps layer 0's 40-byte output), layer 0 its 100 bytes; stage
  // 1: layer 2 (keeps 60), layer 3 its 100. Each rebuilds one block's 100 bytes.
  EXPECT_EQ(plan->stages[0].peak_memory_bytes, 2 * 20 + 4 * (100 + 40) + 100);
  EXPECT_EQ(plan->stages[1].peak_memory_bytes, 2 * 20 + 4 * (60 + 100) + 100);
  EXPECT_EQ(plan->stages[0].backward_ms, 5.0);
  EXPECT_EQ(plan->stages[1].backward_ms, 5.0);
  EXPECT_NEAR(plan->predicted.step_time_ms, (4 + 2 - 1) * 7.0, 1e-6);
  const Json doc = BareJson(*plan);
  EXPECT_EQ(doc["recompute_unit"], "block");
  EXPECT_EQ(doc["recompute_blocks"], 1);
  Result<Plan> back = PlanFromJson(doc);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->recompute_blocks, 1);
  EXPECT_EQ(SimulatePlan(*back)->step_time_ms, plan->predicted.step_time_ms);
  // As many blocks as a stage has: by layer but for the embedding, which keeps its 100 bytes.
  r.recompute_blocks = 5;
  plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->stages[0].peak_memory_bytes, 2 * 20 + 4 * (100 + 40) + 100);
  EXPECT_EQ(plan->stages[1].peak_memory_bytes, 2 * 20 + 4 * (60 + 70) + 100);
  EXPECT_EQ(plan->stages[1].backward_ms, 6.0);
}

TEST(Recompute, AutoMakesAnInfeasiblePlanFit) {
  PlanRequest r = Request({Layer(0, 1, 2, 10, 100, 40), Layer(1, 1, 2, 10, 100, 60),
                           Layer(2, 1, 2, 10, 100, 70), Layer(3, 1, 2, 10, 100, 0)});
  r.num_stages = 2;
  r.num_micro_batches = 4;
  r.method = "dp";
  r.memory_limit = 700;  // without recomputation every split needs at least 840
  EXPECT_FALSE(MakePlan(r).ok());
  r.recompute = "auto";
  Result<Plan> plan = MakePlan(r);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_TRUE(StagesOverLimit(*plan).empty());
  // By hand: {2} needs 752 bytes on stage 0 even recomputing (40 + 4 x 128 + 200); {3}
  // needs 872 (60 + 4 x 128 + 300). {1} fits with stage 0 as is (20 + 4 x 100 = 420) and
  // stage 1 recomputing (60 + 4 x 40 + 300 = 520): auto recomputes on stage 1 only.
  EXPECT_EQ(plan->boundaries, std::vector<int>{1});
  EXPECT_FALSE(plan->stages[0].recompute);
  EXPECT_TRUE(plan->stages[1].recompute);
  EXPECT_EQ(plan->stages[0].peak_memory_bytes, 420u);
  EXPECT_EQ(plan->stages[1].peak_memory_bytes, 520u);
}

TEST(Recompute, SearchPicksRecomputationWhenOnlyItFits) {
  // The case above as a search over G = 2 GPUs and N = 8 samples (b = 2), gpipe: p = 1
  // (m = 2) needs 880 bytes plain and 80 + 2 x 128 + 400 = 736 recomputing; p = 2 (m = 4)
  // fits only as {1} with stage 1 recomputing (by hand above).
  const PlanRequest base = Request({Layer(0, 1, 2, 10, 100, 40), Layer(1, 1, 2, 10, 100, 60),
                                    Layer(2, 1, 2, 10, 100, 70), Layer(3, 1, 2, 10, 100, 0)});
  PlanRequest req;
  req.profile = base.profile;
  req.model = base.model;
  req.search.emplace();
  req.search->gpus_total = 2;
  req.search->global_batch = 8;
  req.search->schedules = {"gpipe"};
  req.optimizer = Optimizer::kSgd;
  req.memory_limit = 700;
  Result<SearchResult> found = SearchPlans(req);
  ASSERT_TRUE(found.ok()) << found.message();
  ASSERT_EQ(found->ranked.size(), 1u);
  EXPECT_TRUE(found->ranked[0].recompute);
  EXPECT_EQ(found->ranked[0].stages, 2);
  EXPECT_EQ(found->best.boundaries, std::vector<int>{1});
  EXPECT_TRUE(found->best.stages[1].recompute);
  // Without the lever nothing fits.
  req.search->recompute_lever = false;
  EXPECT_FALSE(SearchPlans(req).ok());
  // The plain p = 2 plan is faster (no extra forward) but over the limit: "memory".
  req.search->recompute_lever = true;
  bool memory = false;
  for (const SearchCandidate& c : found->over_memory) {
    memory |= c.stages == 2 && !c.recompute && c.reason == LossReason::kMemory;
  }
  EXPECT_TRUE(memory);
}

// 1 to 8 layers of quarter-millisecond times and small byte counts.
std::vector<LayerProfile> RandomLayers(std::mt19937_64& rng) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<LayerProfile> layers;
  const int n = uniform(1, 8);
  for (int i = 0; i < n; ++i) {
    layers.push_back(Layer(i, 0.25 * uniform(0, 20), 0.25 * uniform(0, 40), uniform(0, 100),
                           uniform(0, 400), uniform(0, 200)));
  }
  return layers;
}

// The modules SetRandomUnit gives figures to.
constexpr RecomputeModule kRandomModules[] = {
    RecomputeModule::kCoreAttn, RecomputeModule::kLayerNorm, RecomputeModule::kMoe,
    RecomputeModule::kMoeAct, RecomputeModule::kSharedExperts};

// `unit` on `r`, with what it needs: for kBlock a random K and random transformer blocks, for
// kSelective random figures of five modules (each at most a fifth of the layer's activations,
// some in layer 0: the planner needs them) and a random set of them to recompute.
void SetRandomUnit(RecomputeUnit unit, std::mt19937_64& rng, PlanRequest* r) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  r->recompute_unit = unit;
  if (unit == RecomputeUnit::kBlock) {
    r->recompute_blocks = uniform(1, 3);
    for (LayerProfile& l : r->profile.layers) l.op = uniform(0, 2) ? "transformer_block" : "";
  }
  if (unit == RecomputeUnit::kSelective) {
    for (LayerProfile& l : r->profile.layers) {
      for (RecomputeModule m : kRandomModules) {
        l.module(m) = ModuleFigures{
            0.25 * uniform(0, static_cast<int>(4 * l.forward_ms)),
            static_cast<uint64_t>(uniform(0, static_cast<int>(l.activation_bytes / 5)))};
      }
    }
    r->profile.layers[0].activation_bytes += 5;
    for (RecomputeModule m : kRandomModules) r->profile.layers[0].module(m)->bytes += 1;
    RecomputeModules set;
    while (set.empty()) {
      for (RecomputeModule m : kRandomModules) {
        if (uniform(0, 2) == 0) set = set.With(m);
      }
    }
    r->recompute_modules = set;
  }
}

// Brute force: every split, each stage recomputing as the mode says, under the limit.
double BruteForce(const PlanRequest& r) {
  const int n = static_cast<int>(r.profile.layers.size());
  const int p = r.num_stages;
  double best = kInf;
  std::vector<int> b(p - 1);
  auto rec = [&](auto&& self, int k, int from) -> void {
    if (k == p - 1) {
      double worst = 0;
      for (int s = 0; s < p; ++s) {
        const int first = s == 0 ? 0 : b[s - 1];
        const int last = s + 1 == p ? n - 1 : b[s] - 1;
        double f = 0, bw = 0;
        uint64_t params = 0, acts = 0;
        for (int i = first; i <= last; ++i) {
          f += r.profile.layers[i].forward_ms;
          bw += r.profile.layers[i].backward_ms;
          params += r.profile.layers[i].param_bytes;
          acts += r.profile.layers[i].activation_bytes;
        }
        uint64_t kept = first == 0 ? 128 : r.profile.layers[first - 1].output_bytes;
        uint64_t rebuilt = acts;
        double again_f = f;                               // the forward run again
        if (r.recompute_unit == RecomputeUnit::kSelective) {  // less the modules'
          kept = acts;
          rebuilt = 0;
          again_f = 0;
          const RecomputeModules set = r.recompute_modules;
          for (int i = first; i <= last; ++i) {
            const LayerProfile& l = r.profile.layers[i];
            uint64_t dropped = 0;
            for (RecomputeModule m : kRandomModules) {
              // moe runs its activation and shared experts again itself.
              const bool inside_moe =
                  m == RecomputeModule::kMoeAct || m == RecomputeModule::kSharedExperts;
              if (!set.Has(m) || (inside_moe && set.Has(RecomputeModule::kMoe))) continue;
              dropped += l.module(m)->bytes;
              again_f += l.module(m)->forward_ms;
            }
            kept -= dropped;
            rebuilt = std::max<uint64_t>(rebuilt, dropped);
          }
        } else if (r.recompute_unit != RecomputeUnit::kStage) {  // each rebuilt layer's input
          rebuilt = 0;
          kept = 0;
          again_f = 0;
          int blocks = 0;
          for (int i = first; i <= last; ++i) {
            const LayerProfile& l = r.profile.layers[i];
            const bool alone = r.recompute_unit == RecomputeUnit::kLayer ||
                               (l.op == "transformer_block" && blocks++ < r.recompute_blocks);
            if (!alone) {
              kept += l.activation_bytes;
              continue;
            }
            kept += i == 0 ? 128 : r.profile.layers[i - 1].output_bytes;
            rebuilt = std::max<uint64_t>(rebuilt, l.activation_bytes);
            again_f += l.forward_ms;
          }
        }
        const int in_flight = r.schedule == "gpipe" ? r.num_micro_batches
                                                    : std::min(p - s, r.num_micro_batches);
        const uint64_t plain = 2 * params + in_flight * acts;
        const uint64_t again = 2 * params + in_flight * kept + rebuilt;
        const uint64_t limit = r.memory_limit.value_or(~uint64_t{0});
        double t = kInf;
        if (r.recompute != "all" && plain <= limit) t = f + bw;
        else if (r.recompute != "none" && again <= limit)
          t = f + again_f + bw;
        worst = std::max(worst, t);
      }
      best = std::min(best, worst);
      return;
    }
    for (int x = from; x <= n - (p - 1 - k); ++x) {
      b[k] = x;
      self(self, k + 1, x + 1);
    }
  };
  rec(rec, 0, 1);
  return best;
}

TEST(Recompute, DpEqualsBruteForceOnRandomCases) {
  std::mt19937_64 rng(11);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 400; ++trial) {
    PlanRequest r = Request(RandomLayers(rng));
    const int n = static_cast<int>(r.profile.layers.size());
    r.num_stages = uniform(1, std::min(n, 4));
    r.num_micro_batches = uniform(1, 6);
    r.schedule = uniform(0, 1) ? "gpipe" : "1f1b";
    r.method = "dp";
    r.recompute = std::vector<std::string>{"none", "all", "auto"}[trial % 3];
    SetRandomUnit(std::vector<RecomputeUnit>{RecomputeUnit::kStage, RecomputeUnit::kLayer,
                                             RecomputeUnit::kBlock,
                                             RecomputeUnit::kSelective}[(trial / 3) % 4],
                  rng, &r);
    r.memory_limit = 200 * static_cast<uint64_t>(uniform(1, 10));
    const double best = BruteForce(r);
    Result<Plan> plan = MakePlan(r);
    if (best == kInf) {
      ++infeasible;
      EXPECT_FALSE(plan.ok()) << "trial " << trial;
      continue;
    }
    ++feasible;
    ASSERT_TRUE(plan.ok()) << "trial " << trial << ": " << plan.message();
    EXPECT_EQ(plan->predicted.max_stage_ms, best) << "trial " << trial << " " << r.recompute;
    EXPECT_TRUE(StagesOverLimit(*plan).empty()) << "trial " << trial;
  }
  EXPECT_GT(feasible, 100);
  EXPECT_GT(infeasible, 20);
}

// --objective step with recomputation: the least simulated step over every split that fits
// (each split evaluated on its own with the mode's recomputing stages), and an infeasible limit
// names the least limit that fits: that limit plans, one byte less does not.
TEST(Recompute, StepObjectiveEqualsBruteForceAndNamesTheLeastLimit) {
  std::mt19937_64 rng(12);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 300; ++trial) {
    PlanRequest r = Request(RandomLayers(rng));
    const int n = static_cast<int>(r.profile.layers.size());
    r.profile.link = {1e3 * uniform(1, 20), 0.25 * uniform(0, 2)};  // transfers of quarters
    r.num_stages = uniform(1, std::min(n, 4));
    r.num_micro_batches = uniform(1, 6);
    r.schedule = uniform(0, 1) ? "gpipe" : "1f1b";
    r.recompute = trial % 2 ? "all" : "auto";
    SetRandomUnit(std::vector<RecomputeUnit>{RecomputeUnit::kStage, RecomputeUnit::kLayer,
                                             RecomputeUnit::kBlock,
                                             RecomputeUnit::kSelective}[(trial / 2) % 4],
                  rng, &r);
    r.memory_limit = 200 * static_cast<uint64_t>(uniform(1, 10));
    r.objective = "step";
    r.step_budget_s = 60;
    double best = kInf;
    PlanRequest given = r;
    given.method = "given";
    testing::ForEachSplit(n, r.num_stages, [&](const std::vector<int>& b) {
      Result<Plan> plan = EvaluateSplit(given, b, "given");
      ASSERT_TRUE(plan.ok()) << plan.message();
      if (StagesOverLimit(*plan).empty()) best = std::min(best, plan->predicted.step_time_ms);
    });
    r.method = "dp";
    Result<Plan> plan = MakePlan(r);
    if (best == kInf) {
      ++infeasible;
      ASSERT_FALSE(plan.ok()) << "trial " << trial;
      const std::string& m = plan.message();
      const size_t at = m.find(" bytes)");
      ASSERT_NE(at, std::string::npos) << m;
      const uint64_t least = std::stoull(m.substr(m.rfind('(', at) + 1));
      r.memory_limit = least;
      EXPECT_TRUE(MakePlan(r).ok()) << "trial " << trial << " " << m;
      r.memory_limit = least - 1;
      EXPECT_FALSE(MakePlan(r).ok()) << "trial " << trial << " " << m;
      continue;
    }
    ++feasible;
    ASSERT_TRUE(plan.ok()) << "trial " << trial << ": " << plan.message();
    EXPECT_EQ(plan->predicted.step_time_ms, best) << "trial " << trial << " " << r.recompute;
    EXPECT_TRUE(StagesOverLimit(*plan).empty()) << "trial " << trial;
    ASSERT_TRUE(plan->objective_bound.has_value());
    EXPECT_TRUE(plan->objective_bound->exact);
  }
  EXPECT_GT(feasible, 100);
  EXPECT_GT(infeasible, 20);
}

// The interleaved schedule with every chunk recomputing: each chunk keeps its input per
// in-flight micro-batch and rebuilds one micro-batch's activations, a device holds the sum of
// its chunks, and the step search's plan is the least simulated step over every split whose
// devices fit (each split evaluated on its own). An infeasible limit is refused; --recompute
// auto is refused there in one line.
TEST(Recompute, InterleavedRecomputingEveryChunkEqualsBruteForce) {
  std::mt19937_64 rng(13);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int feasible = 0, infeasible = 0, recomputed_peak_checked = 0;
  const int trials = testing::Trials(200);
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<LayerProfile> layers;
    const int n = uniform(4, 9);
    for (int i = 0; i < n; ++i) {
      layers.push_back(Layer(i, 0.25 * uniform(1, 20), 0.25 * uniform(1, 40), uniform(0, 100),
                             uniform(0, 400), uniform(0, 200)));
    }
    PlanRequest r = Request(layers);
    r.profile.link = {1e3 * uniform(1, 20), 0.25 * uniform(0, 2)};
    r.schedule = "interleaved";
    r.num_stages = 2;
    r.virtual_stages = 2;
    r.num_micro_batches = 2 * uniform(1, 3);
    r.recompute = "all";
    r.memory_limit = 300 * static_cast<uint64_t>(uniform(1, 10));
    r.objective = "step";
    r.step_budget_s = 60;
    double best = kInf;
    PlanRequest given = r;
    given.method = "given";
    testing::ForEachSplit(n, 4, [&](const std::vector<int>& b) {
      Result<Plan> plan = EvaluateSplit(given, b, "given");
      ASSERT_TRUE(plan.ok()) << plan.message();
      // Closed form of one chunk: state + in_flight x its input + its activations.
      const StagePlan& st = plan->stages[1];
      uint64_t params = 0, acts = 0;
      for (int i = st.first_layer; i <= st.last_layer; ++i) {
        params += layers[i].param_bytes;
        acts += layers[i].activation_bytes;
      }
      ASSERT_TRUE(st.recompute);
      const int in_flight = InFlightPerChunk(
          FindScheduleKind("interleaved")->Build(2, r.num_micro_batches, ScheduleOptions{2}))[1];
      EXPECT_EQ(st.peak_memory_bytes,
                2 * params + in_flight * layers[st.first_layer - 1].output_bytes + acts);
      ++recomputed_peak_checked;
      if (StagesOverLimit(*plan).empty()) best = std::min(best, plan->predicted.step_time_ms);
    });
    r.method = "dp";
    Result<Plan> plan = MakePlan(r);
    if (best == kInf) {
      ++infeasible;
      EXPECT_FALSE(plan.ok()) << "trial " << trial;
      continue;
    }
    ++feasible;
    ASSERT_TRUE(plan.ok()) << "trial " << trial << ": " << plan.message();
    EXPECT_NEAR(plan->predicted.step_time_ms, best, 1e-9 * best) << "trial " << trial;
    EXPECT_TRUE(StagesOverLimit(*plan).empty()) << "trial " << trial;
    for (const StagePlan& st : plan->stages) EXPECT_TRUE(st.recompute);
    ASSERT_TRUE(plan->objective_bound.has_value());
    EXPECT_TRUE(plan->objective_bound->exact);
  }
  EXPECT_GT(feasible, trials / 4);
  EXPECT_GT(infeasible, trials / 20);
  EXPECT_GT(recomputed_peak_checked, 0);

  PlanRequest r = Request({Layer(0, 1, 2, 0, 10, 10), Layer(1, 1, 2, 0, 10, 10),
                           Layer(2, 1, 2, 0, 10, 10), Layer(3, 1, 2, 0, 10, 10)});
  r.schedule = "interleaved";
  r.num_stages = 2;
  r.virtual_stages = 2;
  r.num_micro_batches = 4;
  r.recompute = "auto";
  r.method = "dp";
  r.objective = "step";
  Result<Plan> refused = MakePlan(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("--recompute auto with schedule interleaved"),
            std::string::npos) << refused.message();
  EXPECT_EQ(std::count(refused.message().begin(), refused.message().end(), '\n'), 0);
}

// --recompute-modules: Megatron-LM's names with --recompute-unit selective, recorded in the
// plan; misuse is one line, exit 2.
TEST(Recompute, CliTakesMegatronModuleNames) {
  const std::string dir = testing::TempDir();
  const std::string base =
      "plan models/gpt2-small.json --stages 2 --micro-batches 4 --recompute all ";
  const testing::CommandResult ok = testing::RunTool(
      base + "--recompute-unit selective --recompute-modules mlp -o " + dir + "/m.json");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("modules (mlp)"), std::string::npos) << ok.out;
  const Json plan = Json::parse(testing::ReadText(dir + "/m.json"));
  EXPECT_EQ(plan["recompute_modules"], Json::array({"mlp"}));
  const testing::CommandResult core =
      testing::RunTool(base + "--recompute-unit selective -o " + dir + "/c.json");
  ASSERT_EQ(core.exit_code, 0) << core.err;
  const Json by_core = Json::parse(testing::ReadText(dir + "/c.json"));
  EXPECT_EQ(by_core["recompute_modules"], Json::array({"core_attn"}));
  // Disjoint modules together keep less than either set alone.
  const testing::CommandResult all = testing::RunTool(
      base + "--recompute-unit selective --recompute-modules mlp,core_attn -o " + dir + "/a.json");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const Json both = Json::parse(testing::ReadText(dir + "/a.json"));
  EXPECT_EQ(both["recompute_modules"], Json::array({"core_attn", "mlp"}));
  const auto peak = [](const Json& p) { return p["stages"][0]["peak_memory_bytes"].get<double>(); };
  EXPECT_LT(peak(both), std::min(peak(plan), peak(by_core)));
  EXPECT_GT(both["stages"][0]["backward_ms"].get<double>(),
            std::max(plan["stages"][0]["backward_ms"].get<double>(),
                     by_core["stages"][0]["backward_ms"].get<double>()));
  for (const auto& [args, expect] : std::vector<std::pair<std::string, std::string>>{
           {"--recompute-modules mlp", "goes only with --recompute-unit selective"},
           {"--recompute-unit selective --recompute-modules attn", "unknown module \"attn\""},
           {"--recompute-unit selective --recompute-modules mlp,mlp", "named twice"},
           {"--recompute-unit selective --recompute-modules mla_up_proj", "mla_up_proj"},
           {"--recompute-unit selective --recompute-modules moe", "no layer"},
           // GPT-2's norms are fused into the products after them (Transformer Engine).
           {"--recompute-unit selective --recompute-modules layernorm", "no layer"},
       }) {
    const testing::CommandResult r = testing::RunTool(base + args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << args << ": " << r.err;
  }
}

TEST(Recompute, CliRecordsAndReportsRecomputingStages) {
  const testing::CommandResult r = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 16 --memory-limit 20GiB "
      "--recompute auto");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(" rc "), std::string::npos) << r.out;
  const testing::CommandResult none = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 16 --memory-limit 20GiB");
  EXPECT_NE(none.exit_code, 0);
  const testing::CommandResult zb = testing::RunTool(
      "plan models/gpt2-small.json --stages 2 --micro-batches 4 --schedule zb-h1 "
      "--recompute all --objective bottleneck");
  EXPECT_EQ(zb.exit_code, 2);
  EXPECT_NE(zb.err.find("not available yet"), std::string::npos) << zb.err;
  // By layer the report says so and the plan records it; its peaks are ChunkMemoryOf's by
  // layer (the closed forms above), so here only that the two units differ.
  const std::string dir = testing::TempDir();
  const testing::CommandResult layer = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 16 --recompute all "
      "--recompute-unit layer -o " +
      dir + "/layer.json");
  ASSERT_EQ(layer.exit_code, 0) << layer.err;
  EXPECT_NE(layer.out.find("run each layer's forward again"), std::string::npos) << layer.out;
  const testing::CommandResult stage = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 16 --recompute all -o " + dir +
      "/stage.json");
  ASSERT_EQ(stage.exit_code, 0) << stage.err;
  const Json by_layer = Json::parse(testing::ReadText(dir + "/layer.json"));
  const Json by_stage = Json::parse(testing::ReadText(dir + "/stage.json"));
  EXPECT_EQ(by_layer["recompute_unit"], "layer");
  EXPECT_FALSE(by_stage.contains("recompute_unit"));
  EXPECT_NE(by_layer["stages"][0]["peak_memory_bytes"], by_stage["stages"][0]["peak_memory_bytes"]);
  // Selective from the analytic profile: planned; `run` says it cannot run it yet.
  const testing::CommandResult selective = testing::RunTool(
      "plan models/gpt2-small.json --stages 2 --micro-batches 4 --recompute all "
      "--recompute-unit selective -o " +
      dir + "/selective.json");
  ASSERT_EQ(selective.exit_code, 0) << selective.err;
  EXPECT_NE(selective.out.find("modules (core_attn)"), std::string::npos) << selective.out;
  const testing::CommandResult run =
      testing::RunTool("run " + dir + "/selective.json --backend cpu --steps 1");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("not available yet"), std::string::npos) << run.err;
  const testing::CommandResult bad = testing::RunTool(
      "plan models/gpt2-xl.json --stages 4 --micro-batches 16 --recompute all "
      "--recompute-unit block");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--recompute-unit"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace pp
