// The experts' all-to-all overlap (ParallelLayout::overlap_expert_comm, Megatron-LM's combined
// 1F1B): a layer's parts against hand-worked timelines of the three phases, the real MoE block
// against its bounds, the extra warm-up forward's memory against the schedule without it, and
// the flag through the CLI, the plan file, the exports and the search.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/kernel_cost.h"
#include "core/plan.h"
#include "executor/plan_context.h"
#include "profiler/device_table.h"
#include "profiler/efficiency.h"
#include "profiler/kernels.h"
#include "tests/test_util.h"

namespace pp {
namespace {

const DeviceSpec& H100() { return *FindDevice("h100"); }
std::string Models() { return std::string(PP_SOURCE_DIR) + "/models/"; }

// A memory-bound kernel lasting `ms` at the H100's peak bandwidth (Rates::kPeak).
Kernel Lasting(std::string_view name, double ms, bool routed) {
  Kernel k = MemoryKernel(name, ms * H100().memory_bytes_per_s / 1000);
  k.routed_expert = routed;
  return k;
}

// One all-to-all over the expert group of `layout`, of `bytes` per rank.
Collective Exchange(std::string_view name, TokenExchange step, double bytes) {
  return {name, CollectiveKind::kAllToAll, CommGroup::kExpert, bytes, "", step};
}

ParallelLayout ExpertLayout(bool overlap) {
  ParallelLayout l;
  l.ep = 8;
  l.dp = 8;
  l.overlap_expert_comm = overlap;
  return l;
}

// A MoE-shaped layer: outside kernels a_f, a_b, a_w; routed experts m_f, m_b, m_w; the four
// exchanges of `bytes` each.
LayerKernels MoeLayer(double a_f, double m_f, double a_b, double m_b, double a_w, double m_w,
                      double bytes) {
  LayerKernels k;
  k.forward = {Lasting("attn", a_f, false), Lasting("experts", m_f, true)};
  k.backward_input = {Lasting("experts_dgrad", m_b, true), Lasting("attn_dgrad", a_b, false)};
  k.backward_weight = {Lasting("experts_wgrad", m_w, true), Lasting("attn_wgrad", a_w, false)};
  k.forward_comm = {Exchange("dispatch", TokenExchange::kDispatch, bytes),
                    Exchange("combine", TokenExchange::kCombine, bytes)};
  k.backward_input_comm = {Exchange("combine_dgrad", TokenExchange::kCombine, bytes),
                           Exchange("dispatch_dgrad", TokenExchange::kDispatch, bytes)};
  return k;
}

double Total(const LayerPartsMs& p) {
  return p.forward_ms + p.backward_input_ms + p.backward_weight_ms;
}

TEST(ExpertOverlap, WithoutItEachPartIsItsOwnSum) {
  const LayerKernels k = MoeLayer(1, 2, 3, 4, 0.5, 0.25, 64e6);
  for (const ParallelLayout& layout : {ExpertLayout(false), [] {
                                         ParallelLayout l = ExpertLayout(true);
                                         l.ep = 1;  // nothing to overlap
                                         return l;
                                       }()}) {
    const LayerPartsMs p = PartsMs(k, H100(), DType::kBf16, Rates::kPeak, layout);
    EXPECT_DOUBLE_EQ(p.forward_ms, PartMs(k.forward, k.forward_comm, H100(), DType::kBf16,
                                          Direction::kForward, Rates::kPeak, layout));
    EXPECT_DOUBLE_EQ(p.backward_input_ms,
                     PartMs(k.backward_input, k.backward_input_comm, H100(), DType::kBf16,
                            Direction::kBackward, Rates::kPeak, layout));
    EXPECT_DOUBLE_EQ(p.backward_weight_ms, 0.75);
  }
}

// Compute-bound: every exchange fits under the other direction's kernels of its phase, so the
// pair lasts its kernels alone: 1 + 2 + 3 + 4 + 0.5 + 0.25.
TEST(ExpertOverlap, UnderEnoughComputeTheExchangesVanish) {
  const ParallelLayout layout = ExpertLayout(true);
  const Collective one = Exchange("x", TokenExchange::kDispatch, 1e6);
  const double c = CollectiveTimeMs(one, H100(), layout);
  ASSERT_LT(c, 0.25);  // shorter than every kernel it hides behind
  const LayerPartsMs p =
      PartsMs(MoeLayer(1, 2, 3, 4, 0.5, 0.25, 1e6), H100(), DType::kBf16, Rates::kPeak, layout);
  EXPECT_NEAR(p.forward_ms, 3, 1e-12);
  EXPECT_NEAR(p.backward_input_ms, 7, 1e-12);
  EXPECT_NEAR(p.backward_weight_ms, 0.75, 1e-12);
}

// Communication-bound: each exchange c outlasts the kernels it runs beside. Phase 1 the
// backward's combine (c), phase 2 the forward's dispatch then the backward's (2c; the
// forward's experts, 0.2, start at c and end before), phase 3 the forward's combine (c), then
// the outside weight gradients (0.1): 4c + 0.1, the exposed part split evenly (each direction
// exchanges 2c).
TEST(ExpertOverlap, UnderLittleComputeThePairLastsItsExchanges) {
  const ParallelLayout layout = ExpertLayout(true);
  const double bytes = 4e9;
  const double c = CollectiveTimeMs(Exchange("x", TokenExchange::kDispatch, bytes), H100(), layout);
  ASSERT_GT(c, 1.0);
  const LayerKernels k = MoeLayer(0.1, 0.2, 0.3, 0.4, 0.1, 0.05, bytes);
  const LayerPartsMs p = PartsMs(k, H100(), DType::kBf16, Rates::kPeak, layout);
  EXPECT_NEAR(Total(p), 4 * c + 0.1, 1e-9);
  const double kernels = 0.1 + 0.2 + 0.3 + 0.4 + 0.1 + 0.05;
  const double exposed = 4 * c + 0.1 - kernels;
  EXPECT_NEAR(p.forward_ms, 0.3 + exposed / 2, 1e-9);
  EXPECT_NEAR(p.backward_input_ms, 0.7 + exposed / 2, 1e-9);
  EXPECT_NEAR(p.backward_weight_ms, 0.15, 1e-12);
  // Without the overlap the pair waits for all four exchanges beside every kernel.
  const LayerPartsMs plain = PartsMs(k, H100(), DType::kBf16, Rates::kPeak, ExpertLayout(false));
  EXPECT_NEAR(Total(plain), kernels + 4 * c, 1e-9);
}

// Phase 2 in between: the forward's dispatch d (about 2.5 ms) outlasts the backward's experts
// (m_b = 1 ms) and their weight gradients (0.5 ms), so the forward's experts (2 ms) start at
// d; the backward's dispatch starts at d too and ends at 2d, after them when d > 2 ms.
TEST(ExpertOverlap, ThePhasesWaitForTheirInputs) {
  const ParallelLayout layout = ExpertLayout(true);
  const double bytes = 1.1e9;
  const double d = CollectiveTimeMs(Exchange("x", TokenExchange::kDispatch, bytes), H100(), layout);
  ASSERT_GT(d, 2.0);
  ASSERT_LT(d, 3.0);
  const double a_f = 4, m_f = 2, a_b = 5, m_b = 1, a_w = 0.5, m_w = 0.5;
  const LayerPartsMs p = PartsMs(MoeLayer(a_f, m_f, a_b, m_b, a_w, m_w, bytes), H100(),
                                 DType::kBf16, Rates::kPeak, layout);
  const double phase1 = std::max(d, a_f);          // the backward's combine beside a_f
  const double phase2 = std::max(d + m_f, d + d);  // both start once the dispatch is in
  const double phase3 = std::max(d, a_b);          // the forward's combine beside a_b
  EXPECT_NEAR(Total(p), phase1 + phase2 + phase3 + a_w, 1e-9);
}

// The real block: Qwen3-30B-A3B at ep 16 over two nodes (its all-to-all crosses the network).
// Overlapped, a forward beside a backward lasts no more than without, and no less than its
// kernels; the embedding, which exchanges nothing, is unchanged.
TEST(ExpertOverlap, AMixtureOfExpertsBlockLiesBetweenItsBounds) {
  const Model model = testing::LoadModelOrFail("qwen3-30b-a3b");
  ASSERT_FALSE(model.layers.empty());
  ParallelLayout off;
  off.ep = 16;
  off.dp = 16;
  off.gpus_per_node = 8;
  ParallelLayout on = off;
  on.overlap_expert_comm = true;
  for (const Layer& layer : {model.layers[1], model.layers[0]}) {
    const LayerKernels k =
        ListKernels(layer, model.input, DType::kBf16, KernelOptions{off.shard(), true});
    const LayerPartsMs a = PartsMs(k, H100(), DType::kBf16, Rates::kAchieved, off);
    const LayerPartsMs b = PartsMs(k, H100(), DType::kBf16, Rates::kAchieved, on);
    double kernels = 0;
    for (const auto* part : {&k.forward, &k.backward_input, &k.backward_weight}) {
      for (const Kernel& x : *part) {
        kernels += KernelTimeMs(x, H100(), DType::kBf16,
                                part == &k.forward ? Direction::kForward : Direction::kBackward,
                                Rates::kAchieved);
      }
    }
    if (layer.op == LayerKind::kTransformerBlock) {
      EXPECT_LT(Total(b), Total(a)) << layer.name;
      EXPECT_GE(Total(b), kernels - 1e-9) << layer.name;
    } else {
      EXPECT_DOUBLE_EQ(Total(b), Total(a)) << layer.name;
    }
  }
}

// The extra warm-up forward: a pipelined device holds one more micro-batch on its first
// chunk (at most m); one device holds none more.
TEST(ExpertOverlap, APipelinedDeviceHoldsOneMoreMicroBatch) {
  for (const PlanShape& shape : {PlanShape{"interleaved", 2, 8, 2}, PlanShape{"1f1b", 4, 3, 2},
                                 PlanShape{"1f1b", 1, 8, 2}}) {
    PlanShape with = shape;
    with.expert_overlap = true;
    Result<PlanContext> a = MakePlanContext(shape);
    Result<PlanContext> b = MakePlanContext(with);
    ASSERT_TRUE(a.ok() && b.ok()) << a.message() << b.message();
    const int m = shape.micro_batches;
    std::vector<int> first(shape.devices, -1);
    for (int c = 0; c < a->num_chunks(); ++c) {
      if (first[a->chunk_device[c]] < 0) first[a->chunk_device[c]] = c;
    }
    for (int c = 0; c < a->num_chunks(); ++c) {
      const bool grows = shape.devices > 1 && first[a->chunk_device[c]] == c;
      EXPECT_EQ(b->in_flight[c], grows ? std::min(a->in_flight[c] + 1, m) : a->in_flight[c])
          << shape.schedule << " p " << shape.devices << " chunk " << c;
    }
    for (int d = 0; d < shape.devices; ++d) {
      EXPECT_EQ(b->device_in_flight[d], shape.devices > 1 ? std::min(a->device_in_flight[d] + 1, m)
                                                          : a->device_in_flight[d]);
    }
  }
}

const std::string kLayout =
    " --tp 1 --ep 16 --gpus-total 16 --global-batch 256 --micro-batch-size 1 --zero 1 "
    "--device h100 --dtype fp8";

TEST(ExpertOverlapCli, WhatMegatronRefusesIsOneLineExitTwo) {
  const std::string model = Models() + "qwen3-30b-a3b.json";
  for (const std::string& args : std::vector<std::string>{
           " --stages 1 --ep 1 --gpus-total 16 --global-batch 256 --overlap-expert-comm on",
           " --stages 2 --ep 8 --gpus-total 16 --global-batch 256 --overlap-expert-comm on",
           " --stages 1" + kLayout + " --recompute all --overlap-expert-comm on",
           " --stages 1 --ep 16 --gpus-total 16 --global-batch 256 --device h100 "
           "--dtype fp32 --overlap-expert-comm on",
           " --stages auto --gpus-total 16 --global-batch 256 --gpus-per-node 8 "
           "--recompute all --overlap-expert-comm on",
           " --stages 1" + kLayout +
               " --recompute all --recompute-unit selective --recompute-modules moe_act,moe "
               "--overlap-expert-comm on",
       }) {
    const testing::CommandResult r = testing::RunTool("plan " + model + args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("--overlap-expert-comm"), std::string::npos) << r.err;
  }
}

// Megatron-LM overlaps the all-to-all beside selective recomputation of modules other than
// moe: planned so, the device keeps less and each backward runs the module's forward again.
TEST(ExpertOverlapCli, SelectiveRecomputationOutsideMoeKeepsTheOverlap) {
  const std::string dir = testing::TempDir();
  const std::string base = "plan " + Models() + "qwen3-30b-a3b.json --stages 1" + kLayout +
                           " --overlap-expert-comm on --format json";
  const testing::CommandResult plain = testing::RunTool(base + " -o " + dir + "/plain.json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const testing::CommandResult act = testing::RunTool(
      base + " --recompute all --recompute-unit selective --recompute-modules moe_act -o " + dir +
      "/act.json");
  ASSERT_EQ(act.exit_code, 0) << act.err;
  const Json p = Json::parse(testing::ReadText(dir + "/plain.json"));
  const Json a = Json::parse(testing::ReadText(dir + "/act.json"));
  EXPECT_EQ(a["recompute_modules"], Json::array({"moe_act"}));
  EXPECT_TRUE(a["parallelism"]["overlap_expert_comm"].get<bool>()) << a["parallelism"].dump();
  EXPECT_LT(a["stages"][0]["peak_memory_bytes"].get<double>(),
            p["stages"][0]["peak_memory_bytes"].get<double>());
  EXPECT_GT(a["stages"][0]["backward_ms"].get<double>(),
            p["stages"][0]["backward_ms"].get<double>());
  // The search runs the overlap beside it too.
  const testing::CommandResult searched = testing::RunTool(
      "plan " + Models() +
      "qwen3-30b-a3b.json --stages auto --gpus-total 16 --global-batch 256 --gpus-per-node 8 "
      "--device h100 --dtype fp8 --recompute all --recompute-unit selective "
      "--recompute-modules moe_act --overlap-expert-comm on -o " +
      dir + "/search.json");
  ASSERT_EQ(searched.exit_code, 0) << searched.err;
  const Json s = Json::parse(testing::ReadText(dir + "/search.json"));
  EXPECT_TRUE(s["parallelism"].value("overlap_expert_comm", false)) << s["parallelism"].dump();
  EXPECT_EQ(s["recompute_modules"], Json::array({"moe_act"}));
}

// Planned with the overlap, the step is faster (the all-to-all crosses the network), the plan
// file says so and reads back, Megatron-LM gets the flag and torchtitan refuses in one line.
TEST(ExpertOverlapCli, ThePlanCarriesTheOverlapToItsExports) {
  const std::string dir = testing::TempDir();
  const std::string base = "plan " + Models() + "qwen3-30b-a3b.json --stages 1" + kLayout;
  testing::CommandResult r = testing::RunTool(base + " -o " + dir + "/off.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::RunTool(base + " --overlap-expert-comm on -o " + dir + "/on.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json off = Json::parse(testing::ReadText(dir + "/off.json"));
  const Json on = Json::parse(testing::ReadText(dir + "/on.json"));
  EXPECT_FALSE(off["parallelism"].contains("overlap_expert_comm"));
  EXPECT_EQ(on["parallelism"]["overlap_expert_comm"], true);
  EXPECT_LT(on["predicted"]["step_time_ms"].get<double>(),
            off["predicted"]["step_time_ms"].get<double>());
  Result<Plan> loaded = PlanFromJson(on);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  EXPECT_TRUE(loaded->parallelism->overlap_expert_comm);

  r = testing::RunTool("export " + dir + "/on.json --to megatron");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\n--moe-token-dispatcher-type alltoall\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n--overlap-moe-expert-parallel-comm\n"), std::string::npos) << r.out;
  r = testing::RunTool("export " + dir + "/off.json --to megatron");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\n--moe-token-dispatcher-type alltoall\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--overlap-moe-expert-parallel-comm"), std::string::npos) << r.out;
  r = testing::RunTool("export " + dir + "/on.json --to torchtitan");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--overlap-expert-comm off"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

// The search runs the overlap where a candidate can: its best at ep 16 overlaps and is faster
// than the search's best without it; recomputing candidates never overlap.
TEST(ExpertOverlapCli, TheSearchOverlapsWhereACandidateCan) {
  const std::string base = "plan " + Models() +
                           "qwen3-30b-a3b.json --stages auto --ep 16 --gpus-total 16 "
                           "--global-batch 256 --gpus-per-node 8 --device h100 --dtype fp8 "
                           "--format json";
  const testing::CommandResult off = testing::RunTool(base);
  const testing::CommandResult on = testing::RunTool(base + " --overlap-expert-comm on");
  ASSERT_EQ(off.exit_code, 0) << off.err;
  ASSERT_EQ(on.exit_code, 0) << on.err;
  const Json a = Json::parse(off.out), b = Json::parse(on.out);
  EXPECT_FALSE(a["parallelism"].contains("overlap_expert_comm"));
  const Json& layout = b["parallelism"];
  const bool can = layout["pp"] == 1 || layout["vp"].get<int>() > 1;
  bool recomputes = false;
  for (const Json& s : b["stages"]) recomputes |= s.value("recompute", false);
  EXPECT_EQ(layout.value("overlap_expert_comm", false), can && !recomputes) << layout.dump();
  EXPECT_LT(b["predicted"]["batch_time_ms"].get<double>(),
            a["predicted"]["batch_time_ms"].get<double>());
}

}  // namespace
}  // namespace pp
