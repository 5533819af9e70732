// Data parallelism and ZeRO in the step model (partitioner/data_parallel.h, cost_model.h's
// StateBytes), the model FLOP count (partitioner/model_flops.h), plans with a layout through
// the CLI, and the search over the layout against a brute force.
#include "partitioner/data_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/plan.h"
#include "partitioner/cost_model.h"
#include "partitioner/layout_search.h"
#include "partitioner/model_flops.h"
#include "partitioner/planner.h"
#include "partitioner/recompute.h"
#include "profiler/analytic.h"
#include "profiler/device_file.h"
#include "profiler/device_table.h"
#include "tests/test_util.h"

namespace pp {
namespace {

// Bytes per parameter of bf16 mixed-precision Adam, written out: zero 0 is 2 + 2 + 12
// replicated; from zero 1 Megatron's fp32 main gradients: weights 2, gradients 4, master copy
// and moments 12, divided by dp where sharded.
TEST(TrainingState, BytesPerParameterFollowTheZeroStages) {
  const WideBytes params = 2000;  // 1000 bf16 parameters
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 0).Of(params), WideBytes{16000});
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1).Of(params),
            WideBytes{1000 * (2 + 4) + 1000 * 12 / 8});
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 2).Of(params),
            WideBytes{1000 * 2 + 1000 * (4 + 12) / 8});
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 3).Of(params),
            WideBytes{1000 * 18 / 8});
  // fp32: weights are the master copy, 4 + 4 + 8 (Megatron's 8 + 8/d with zero 1).
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kFp32, 4, 1).Of(4000),
            WideBytes{1000 * 8 + 1000 * 8 / 4});
  // One parameter over 8 ranks under zero 3: 18 / 8 = 2.25 bytes, rounded up.
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 3).Of(2), WideBytes{3});
  // SGD keeps weights and gradients; zero 2 shards the gradients.
  EXPECT_EQ(TrainingState(Optimizer::kSgd, DType::kBf16, 4, 2).Of(2000), WideBytes{2000 + 500});
  EXPECT_EQ(TrainingState(Optimizer::kNone, DType::kBf16, 4, 3).Of(2000), WideBytes{500});
}

// The gradient copies of some training software, ZeRO 0 only: Megatron-LM 2021's fp16
// optimizer makes an fp32 copy of every 16-bit gradient at the step (2 + 2 + 4 + 12 = 20
// bytes a bf16 parameter), PyTorch DDP's buckets hold the gradients again (2 more; 4 for fp32
// weights, which have no fp32 copy to make).
TEST(TrainingState, SoftwareGradientCopiesAddToZeroZero) {
  const WideBytes params = 2000;  // 1000 bf16 parameters
  ParallelLayout l;
  l.dp = 8;
  l.fp32_grad_copy = true;
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, l).Of(params), WideBytes{20000});
  l.ddp_bucket_copy = true;
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, l).Of(params), WideBytes{22000});
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kFp32, l).Of(4000), WideBytes{1000 * 20});
  EXPECT_EQ(TrainingState(Optimizer::kSgd, DType::kBf16, l).Of(params), WideBytes{1000 * 6});
  // The distributed optimizer keeps fp32 main gradients and its own buffers: no copies.
  l.zero = 1;
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, l).Of(params),
            TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1).Of(params));
  // Without the copies, the layout's state is the plain one.
  ParallelLayout plain;
  plain.dp = 8;
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, plain).Of(params), WideBytes{16000});
}

// The routed experts' state shards over the expert-data-parallel group (Megatron-LM keeps
// them in buffers of their own over it): with ep = dp = 8 that group is one rank, so zero 1
// leaves the experts' 12 bytes of optimizer state whole while the rest shards over 8.
TEST(TrainingState, TheExpertsShardOverTheirOwnDataGroup) {
  const WideBytes params = 2000, experts = 1200;  // 1000 bf16 parameters, 600 the experts'
  const StateBytes one = TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1, 1);
  EXPECT_EQ(one.Of(params, experts), WideBytes{400 * (2 + 4) + 400 * 12 / 8 + 600 * 18});
  const StateBytes two = TrainingState(Optimizer::kAdam, DType::kBf16, 8, 3, 2);
  EXPECT_EQ(two.Of(params, experts), WideBytes{400 * 18 / 8 + 600 * 18 / 2});
  // No expert part, or the experts' group as large as dp: the plain formula.
  EXPECT_EQ(one.Of(params), TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1).Of(params));
  EXPECT_EQ(TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1, 8).Of(params, experts),
            TrainingState(Optimizer::kAdam, DType::kBf16, 8, 1).Of(params));
  // The layout's expert-data-parallel degree: tp x cp x dp / (ep x etp).
  ParallelLayout l;
  l.tp = 2;
  l.dp = 8;
  l.ep = 8;
  EXPECT_EQ(l.expert_dp(), 1);  // etp as tp: the experts' grid is 2 x 8 of the 16 ranks
  l.etp = 1;
  EXPECT_EQ(l.expert_dp(), 2);
  l.ep = 16;
  EXPECT_EQ(l.expert_dp(), 1);
}

Profile TwoLayerProfile() {
  Profile p;
  p.model = "two";
  p.backend = "cpu";
  p.device = {"test cpu", uint64_t{1} << 40};
  p.micro_batch_size = 1;
  p.link = {1e9, 0.0};  // 1 GB/s, no latency: collectives in round numbers
  for (int i = 0; i < 2; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = 1;
    l.backward_ms = 2;
    l.backward_input_ms = 1;
    l.backward_weight_ms = 1;
    l.param_bytes = 10'000'000;
    l.activation_bytes = 1000;
    l.output_bytes = 1000;
    p.layers.push_back(l);
  }
  return p;
}

// Without a layout the cost model keeps today's 8 x bf16 parameter bytes.
TEST(TrainingState, DefaultCostModelIsTodaysMultiplier) {
  const Profile p = TwoLayerProfile();
  const CostModel cost(p, Optimizer::kAdam);
  EXPECT_EQ(cost.PeakMemory(0, 1, 3), WideBytes{20'000'000} * 8 + WideBytes{2000} * 3);
}

// ZeRO 3 over dp > 1 holds, beside its sharded state, the largest layer's gathered
// parameters twice (it and the next, prefetched) and its unsharded gradients: for bf16
// (2 + 1) x that layer's parameter bytes, for fp8 (2 + 2) (its gradients move in bf16), on
// the chunk's peak and on the plain peak alike; nothing at ZeRO 2 or with one rank.
TEST(Zero3, AChunkHoldsTwoGatheredLayersAndOneLayersGradients) {
  Profile p = TwoLayerProfile();
  p.layers[1].param_bytes = 30'000'000;  // the largest layer
  for (DType dtype : {DType::kBf16, DType::kFp8}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    p.dtype = dtype;
    const StateBytes zero3 = TrainingState(Optimizer::kAdam, dtype, 8, 3);
    const CostModel cost(p, zero3);
    const WideBytes buffer = WideBytes{30'000'000} * (dtype == DType::kFp8 ? 4 : 3);
    EXPECT_EQ(cost.GatherBufferBytes(0, 1), buffer);
    EXPECT_EQ(cost.GatherBufferBytes(0, 0), WideBytes{10'000'000} * (dtype == DType::kFp8 ? 4 : 3));
    const WideBytes plain = zero3.Of(40'000'000) + WideBytes{2000} * 3;
    EXPECT_EQ(cost.PeakMemory(0, 1, 3), plain + buffer);
    EXPECT_EQ(ChunkMemoryOf(cost, 0, 1, false, RecomputeInput{}).Peak(3), plain + buffer);
    for (const StateBytes& none : {TrainingState(Optimizer::kAdam, dtype, 8, 2),
                                   TrainingState(Optimizer::kAdam, dtype, 1, 3)}) {
      EXPECT_EQ(CostModel(p, none).GatherBufferBytes(0, 1), WideBytes{0});
    }
  }
}

TEST(Collectives, GradientSyncIsAllReduceOrReduceScatter) {
  DataGroups g;
  g.dp = 4;
  g.link = BusLink{1e9, 0.01};
  // All-reduce: 2 (n-1)/n bytes over the bus, 2 (n-1) latency steps.
  EXPECT_NEAR(g.GradientSyncMs(4e6, 0), 1000.0 * 2 * 0.75 * 4e6 / 1e9 + 6 * 0.01, 1e-12);
  g.zero = 1;
  EXPECT_NEAR(g.GradientSyncMs(4e6, 0), 1000.0 * 0.75 * 4e6 / 1e9 + 3 * 0.01, 1e-12);
  EXPECT_NEAR(g.ParamGatherMs(4e6, 0), 1000.0 * 0.75 * 4e6 / 1e9 + 3 * 0.01, 1e-12);
  g.zero = 3;
  EXPECT_EQ(g.ParamGatherMs(4e6, 0), 0.0);  // gathered per layer instead
  g.dp = 1;
  EXPECT_EQ(g.GradientSyncMs(4e6, 0), 0.0);
}

TEST(Collectives, DataGroupLinkIsTheNodesOrTheNetworks) {
  Profile p = TwoLayerProfile();
  const DeviceSpec& a100 = *FindDevice("a100");
  p.device.name = std::string(a100.name);
  ParallelLayout l;
  l.dp = 8;  // ranks 0..7 of one node
  EXPECT_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, a100.node_bus_bytes_per_s);
  l.tp = 2;  // the data group now spans 16 ranks, 4 of them on each node
  EXPECT_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, 4 * a100.network_bus_bytes_per_s);
  l.tp = 8;  // one member per node: its own network card only
  EXPECT_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, a100.network_bus_bytes_per_s);
  l.tp = 1;
  l.dp = 32;  // four whole DGX A100 nodes: 8 x 24 = 192 GB/s, as [NET-HDR] measures
  EXPECT_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, 8 * a100.network_bus_bytes_per_s);
  EXPECT_DOUBLE_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, 192e9);
  // Never above the node's own bus: 8 H100 cards of 47 GB/s would be 376 > 370.
  const DeviceSpec& h100 = *FindDevice("h100");
  p.device.name = std::string(h100.name);
  EXPECT_EQ(DataGroupsOf(l, p).link.bus_bytes_per_s, h100.node_bus_bytes_per_s);
  // An all-to-all or a send/receive leaves through the rank's own card.
  for (CollectiveKind kind : {CollectiveKind::kAllToAll, CollectiveKind::kSendRecv}) {
    EXPECT_EQ(CollectiveLink(l, CommGroup::kData, kind, 1e12, 0.001, 5e10, 0.01).bus_bytes_per_s,
              5e10);
  }
  EXPECT_EQ(CollectiveLink(l, CommGroup::kData, CollectiveKind::kAllGather, 1e12, 0.001, 5e10,
                           0.01)
                .bus_bytes_per_s,
            8 * 5e10);
  p.device.name = std::string(a100.name);
  // A device outside the table: the profile's link.
  EXPECT_EQ(DataGroupsOf(l, TwoLayerProfile()).link.bus_bytes_per_s, 1e9);
}

// The experts' data group sits ep x etp ranks apart: at tp 2, dp 16, ep 8, etp 1 on nodes of
// 8 its 4 ranks are 8 apart, one a node, so it runs at one card's 47 GB/s; the data group's
// 16 ranks are 2 apart, 4 a node, so 4 cards carry it.
TEST(Collectives, TheExpertsDataGroupHasItsOwnLink) {
  Profile p = TwoLayerProfile();
  const DeviceSpec& h100 = *FindDevice("h100");
  p.device.name = std::string(h100.name);
  ParallelLayout l;
  l.tp = 2;
  l.dp = 16;
  l.ep = 8;
  l.etp = 1;
  const DataGroups g = DataGroupsOf(l, p);
  EXPECT_EQ(g.dp, 16);
  EXPECT_EQ(g.expert_dp, 4);
  EXPECT_EQ(g.expert_link.bus_bytes_per_s, h100.network_bus_bytes_per_s);
  EXPECT_EQ(g.link.bus_bytes_per_s, 4 * h100.network_bus_bytes_per_s);
  EXPECT_EQ(
      g.link.bus_bytes_per_s,
      CollectiveLink(l, CommGroup::kData, CollectiveKind::kAllReduce, h100.node_bus_bytes_per_s,
                     h100.node_latency_ms, h100.network_bus_bytes_per_s, h100.network_latency_ms)
          .bus_bytes_per_s);
}

// ZeRO 3 over dp = 2: gathering 10 MB at 1 GB/s moves half of it, 5 ms; the reduce-scatter
// another 5 ms. Forward max(1, 5), backward max(2, 5 + 5).
TEST(Zero3, GathersBoundEachLayersTimes) {
  ParallelLayout l;
  l.dp = 2;
  l.zero = 3;
  const Profile p = WithParameterGathers(TwoLayerProfile(), l);
  for (const LayerProfile& layer : p.layers) {
    EXPECT_NEAR(layer.forward_ms, 5.0, 1e-12);
    EXPECT_NEAR(layer.backward_ms, 10.0, 1e-12);
    EXPECT_NEAR(*layer.backward_input_ms + *layer.backward_weight_ms, 10.0, 1e-12);
  }
  l.zero = 1;
  EXPECT_EQ(WithParameterGathers(TwoLayerProfile(), l).layers[0].forward_ms, 1.0);
}


// The two-layer profile with 6 of each layer's 10 MB the routed experts'.
Profile TwoLayerExpertProfile() {
  Profile p = TwoLayerProfile();
  for (LayerProfile& l : p.layers) l.expert_param_bytes = 6'000'000;
  return p;
}

// ZeRO 3 over dp = 2 with ep = 2: the experts' group is one rank, so only the other 4 MB are
// gathered (2 ms) and scattered (2 ms): forward max(1, 2), backward max(2, 2 + 2). With ep = 1
// the experts gather over dp as the rest does: the whole 10 MB as before.
TEST(Zero3, TheExpertsGatherOverTheirOwnGroup) {
  ParallelLayout l;
  l.dp = 2;
  l.ep = 2;
  l.zero = 3;
  Profile p = WithParameterGathers(TwoLayerExpertProfile(), l);
  EXPECT_NEAR(p.layers[0].forward_ms, 2.0, 1e-12);
  EXPECT_NEAR(p.layers[0].backward_ms, 4.0, 1e-12);
  l.ep = 1;
  p = WithParameterGathers(TwoLayerExpertProfile(), l);
  EXPECT_NEAR(p.layers[0].forward_ms, 5.0, 1e-12);
  EXPECT_NEAR(p.layers[0].backward_ms, 10.0, 1e-12);
}


// One stage of two layers over dp = 4, zero 0: the all-reduce of 20 MB (30 ms) overlaps the
// last backward (4 ms): exposed 26 ms; at least the first layer's 15 ms.
// One stage of the two-layer profile, 2 micro-batches, SGD, over dp = 4.
PlanRequest DataParallelRequest(bool overlap = true) {
  PlanRequest request;
  request.profile = TwoLayerProfile();
  request.num_stages = 1;
  request.num_micro_batches = 2;
  request.optimizer = Optimizer::kSgd;
  ParallelLayout l;
  l.dp = 4;
  l.overlap_grad_reduce = overlap;
  request.layout = l;
  return request;
}

TEST(Exposure, SyncHidesBehindTheLastBackward) {
  PlanRequest request = DataParallelRequest();
  Result<Plan> plan = MakePlan(request);
  ASSERT_TRUE(plan.ok()) << plan.message();
  const std::vector<DeviceSync> sync = DataParallelSync(*plan, *plan->parallelism);
  ASSERT_EQ(sync.size(), 1u);
  EXPECT_NEAR(sync[0].gradient_ms, 1000.0 * 1.5 * 20e6 / 1e9, 1e-9);
  EXPECT_NEAR(sync[0].gradient_exposed_ms, 30.0 - 4.0, 1e-9);
  EXPECT_EQ(sync[0].optimizer_ms, 0.0);  // a device the table does not know
  ASSERT_TRUE(plan->predicted.batch_time_ms);
  EXPECT_NEAR(*plan->predicted.batch_time_ms, plan->predicted.step_time_ms + 26.0, 1e-9);
  // A backward longer than the sync leaves the first layer's part: 1.5 x 10 MB = 15 ms.
  for (LayerProfile& layer : request.profile.layers) layer.backward_ms = 100;
  for (LayerProfile& layer : request.profile.layers) layer.backward_input_ms = 50;
  for (LayerProfile& layer : request.profile.layers) layer.backward_weight_ms = 50;
  plan = MakePlan(request);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_NEAR(DataParallelSync(*plan, *plan->parallelism)[0].gradient_exposed_ms, 15.0, 1e-9);
}

// dp = 4, zero 0, 20 MB on the device, 12 MB of them the experts': with ep = 4 their group
// is one rank, so only the other 8 MB are all-reduced over 4 (1.5 x 8 MB = 12 ms); with
// ep = 2 the experts' 12 MB are all-reduced over their 2 ranks as well (1 x 12 MB = 12 ms).
TEST(Exposure, TheExpertsGradientsReduceOverTheirOwnGroup) {
  PlanRequest request = DataParallelRequest(false);
  request.profile = TwoLayerExpertProfile();
  for (int ep : {4, 2, 1}) {
    request.layout->ep = ep;
    Result<Plan> plan = MakePlan(request);
    ASSERT_TRUE(plan.ok()) << plan.message();
    const std::vector<DeviceSync> sync = DataParallelSync(*plan, *plan->parallelism);
    const double dense = 1000.0 * 1.5 * 8e6 / 1e9;
    const double experts = ep == 4 ? 0.0 : ep == 2 ? 1000.0 * 1.0 * 12e6 / 1e9
                                                   : 1000.0 * 1.5 * 12e6 / 1e9;
    EXPECT_NEAR(sync[0].gradient_ms, dense + experts, 1e-9) << "ep " << ep;
    EXPECT_NEAR(sync[0].gradient_exposed_ms, dense + experts, 1e-9) << "ep " << ep;
  }
  // A dense model pays nothing for the experts' group, not even its latency: cp 2 x dp 4 is an
  // expert-data-parallel group of 8, but only the all-reduce over the 4 data ranks runs.
  request = DataParallelRequest(false);
  request.profile.link = {1e9, 0.01};
  request.layout->cp = 2;
  Result<Plan> plan = MakePlan(request);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_NEAR(DataParallelSync(*plan, *plan->parallelism)[0].gradient_ms,
              1000.0 * 1.5 * 20e6 / 1e9 + 2 * 3 * 0.01, 1e-9);
}

// embed 10 MB, mid 10 MB, head 12 MB of which 8 MB are the embedding's table (tied_to).
Profile TiedProfile() {
  Profile p = TwoLayerProfile();
  p.layers[0].name = "embed";
  p.layers[1].name = "mid";
  LayerProfile head = p.layers[1];
  head.name = "head";
  head.param_bytes = 12'000'000;
  head.tied_to = "embed";
  head.tied_param_bytes = 8'000'000;
  p.layers.push_back(head);
  return p;
}

// One stage holding both layers of a tie holds their shared weight once; any range without
// both holds every byte of its layers; and a larger range never holds fewer bytes (brute force
// over all ranges).
TEST(TiedEmbeddings, OneStageHoldsTheSharedWeightOnce) {
  const Profile p = TiedProfile();
  const CostModel cost(p, Optimizer::kAdam);
  EXPECT_EQ(cost.tie().lo, 0);
  EXPECT_EQ(cost.tie().hi, 2);
  const uint64_t bytes[] = {10'000'000, 10'000'000, 12'000'000};
  for (int a = 0; a < 3; ++a) {
    for (int b = a; b < 3; ++b) {
      uint64_t sum = 0;
      for (int i = a; i <= b; ++i) sum += bytes[i];
      const uint64_t want = a == 0 && b == 2 ? sum - 8'000'000 : sum;
      EXPECT_EQ(cost.ParamBytes(a, b), WideBytes{want}) << a << "-" << b;
      for (int a2 = 0; a2 <= a; ++a2) {
        for (int b2 = b; b2 < 3; ++b2) EXPECT_GE(cost.ParamBytes(a2, b2), cost.ParamBytes(a, b));
      }
    }
  }
  // A tie naming no layer of the profile is none.
  Profile untied = p;
  untied.layers[2].tied_to = "nowhere";
  EXPECT_EQ(CostModel(untied, Optimizer::kAdam).ParamBytes(0, 2), WideBytes{32'000'000});
}

// Apart, the two devices all-reduce the shared weight's gradients after the backward, over 2
// ranks: 2 (2 - 1) / 2 x 8 MB at the profile's 1 GB/s = 8 ms, exposed on both and on no other
// device; together on one device, nothing moves and the stage holds 24 MB.
TEST(TiedEmbeddings, DevicesApartAllReduceTheSharedGradients) {
  PlanRequest request = DataParallelRequest();
  request.profile = TiedProfile();
  request.layout->dp = 1;
  Result<Plan> one = MakePlan(request);
  ASSERT_TRUE(one.ok()) << one.message();
  EXPECT_EQ(one->stages[0].param_bytes, 24'000'000u);
  EXPECT_EQ(DataParallelSync(*one, *one->parallelism)[0].tied_ms, 0.0);
  for (int stages : {2, 3}) {
    request.num_stages = stages;
    Result<Plan> plan = MakePlan(request);
    ASSERT_TRUE(plan.ok()) << plan.message();
    uint64_t held = 0;
    for (const StagePlan& st : plan->stages) held += st.param_bytes;
    EXPECT_EQ(held, 32'000'000u) << "each device keeps its own copy";
    const std::vector<DeviceSync> sync = DataParallelSync(*plan, *plan->parallelism);
    ASSERT_EQ(sync.size(), static_cast<size_t>(stages));
    for (int d = 0; d < stages; ++d) {
      const bool holds = d == 0 || d == stages - 1;
      EXPECT_NEAR(sync[d].tied_ms, holds ? 1000.0 * 8e6 / 1e9 : 0.0, 1e-9) << d;
      EXPECT_NEAR(sync[d].exposed_ms(), sync[d].tied_ms + sync[d].optimizer_ms, 1e-9) << d;
    }
    ASSERT_TRUE(plan->predicted.batch_time_ms);
    EXPECT_NEAR(*plan->predicted.batch_time_ms, plan->predicted.step_time_ms + 8.0, 1e-9);
  }
  // The same on the node's link of a known device: an H100's pipeline inside one node.
  ParallelLayout l;
  l.pp = 4;
  Profile h100 = TiedProfile();
  const DeviceSpec& d = *FindDevice("h100");
  h100.device.name = std::string(d.name);
  EXPECT_NEAR(TiedGradientMs(8e6, l, h100),
              1000.0 * 8e6 / d.node_bus_bytes_per_s + 2 * d.node_latency_ms, 1e-9);
  l.tp = 8;  // four nodes: the two ends on different ones, through their network cards
  EXPECT_NEAR(TiedGradientMs(8e6, l, h100),
              1000.0 * 8e6 / d.network_bus_bytes_per_s + 2 * d.network_latency_ms, 1e-9);
}

// An fp8 model's weight gradients are bf16: twice its parameter bytes move in each gradient
// collective, and its parameters move as they are in ZeRO's all-gathers.
TEST(Exposure, AnFp8ModelReducesBf16Gradients) {
  PlanRequest request = DataParallelRequest(false);
  request.profile.dtype = DType::kFp8;
  Result<Plan> plan = MakePlan(request);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_NEAR(DataParallelSync(*plan, *plan->parallelism)[0].gradient_ms,
              1000.0 * 1.5 * 2 * 20e6 / 1e9, 1e-9);
  ParallelLayout l;
  l.dp = 2;
  l.zero = 3;
  Profile p = TwoLayerProfile();
  p.dtype = DType::kFp8;
  // Gathering 10 MB over 2 at 1 GB/s: 5 ms; scattering 20 MB of gradients: 10 ms.
  p = WithParameterGathers(p, l);
  EXPECT_NEAR(p.layers[0].forward_ms, 5.0, 1e-12);
  EXPECT_NEAR(p.layers[0].backward_ms, 15.0, 1e-12);
}

Model Gpt(int64_t layers, int64_t hidden, int64_t heads, int64_t vocab, int64_t seq) {
  Json doc = testing::SmallModelJson();
  doc["input"]["seq_len"] = seq;
  doc["layers"][0]["vocab"] = vocab;
  doc["layers"][0]["hidden"] = hidden;
  doc["layers"][0]["positions"] = seq;
  doc["layers"][1]["hidden"] = hidden;
  doc["layers"][1]["heads"] = heads;
  doc["layers"][1]["ffn"] = 4 * hidden;
  doc["layers"][1]["repeat"] = layers;
  doc["layers"][2]["hidden"] = hidden;
  doc["layers"][3]["in"] = hidden;
  doc["layers"][3]["out"] = vocab;
  Result<Model> model = ModelFromJson(doc);
  EXPECT_TRUE(model.ok()) << model.message();
  return *model;
}

// Narayanan et al. count 96 s l h^2 (1 + s/6h + V/16lh) per sample with the recomputed
// forward (4 passes) and the full attention square; without recomputation (3 passes: x 3/4 on
// the layer terms) and causal attention at half (the s/6h term halved again) that is
// 72 s l h^2 + 6 s^2 l h + 6 s h V, the count Megatron-Bridge reports (V padded to 128 tp).
TEST(ModelFlops, GptCountIsTheRescaledPaperCount) {
  const int64_t l = 24, h = 2304, heads = 24, V = 51200, s = 2048;
  const Model gpt = Gpt(l, h, heads, V, s);
  const double L = l, H = h, S = s;
  const double paper = 96 * S * L * H * H * (1 + S / (6 * H) + V / (16 * L * H));
  const double expect = paper - 24 * S * L * H * H - 10 * S * S * L * H;
  EXPECT_NEAR(ModelFlopsPerSample(gpt, 1), expect, 1e-9 * expect);
  EXPECT_NEAR(ModelFlopsPerSample(gpt, 1), 72 * S * L * H * H + 6 * S * S * L * H + 6 * S * H * V,
              1e-9 * expect);
  // 50257 pads to 50304 at tp 1 (a multiple of 128) and 51200 at tp 8 (of 1024).
  EXPECT_EQ(PaddedVocab(50257, 1), 50304);
  EXPECT_EQ(PaddedVocab(50257, 8), 51200);
}

// --- plans with a layout through the CLI ---

std::string Models() { return std::string(PP_SOURCE_DIR) + "/models/"; }

// Megatron-Bridge's transformer_flops for a mixture-of-experts block with a separate head
// size (qwen3-30b-a3b: 48 layers, h 2048, 32 heads of 128, 4 key/value heads, 128 experts of
// 768, top 8, no shared expert, vocabulary 151,936 untied), worked by hand from its terms:
// 6 h (q + 2 kv) + 6 q h + 6 q s per layer and token, 6 h x 768 x 8 x 3 for the routed
// experts, 6 h V_padded for the logits.
TEST(ModelFlops, MixtureOfExpertsCountsTheRoutedExpertsAndTheHeadSize) {
  Result<Model> model = LoadModel(Models() + "qwen3-30b-a3b.json");
  ASSERT_TRUE(model.ok()) << model.message();
  const double s = static_cast<double>(model->input.seq_len), h = 2048, q = 32 * 128,
               kv = 4 * 128, layers = 48;
  const double V = static_cast<double>(PaddedVocab(151936, 1));
  const double per_token =
      layers * (6 * (h * (q + 2 * kv) + q * h) + 6 * q * s + 6 * h * 768 * 8 * 3) + 6 * h * V;
  EXPECT_NEAR(ModelFlopsPerSample(*model, 1), per_token * s, 1e-9 * per_token * s);
}

TEST(LayoutCli, DataParallelAndMicroBatchesComeFromTheGpusAndBatch) {
  const testing::CommandResult r =
      testing::RunTool("plan " + Models() +
                       "gpt2-small.json --stages 2 --tp 2 --gpus-total 32 --global-batch 256 "
                       "--micro-batch-size 2 --zero 1 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json plan = Json::parse(r.out);
  // dp = 32 / (2 x 2) = 8; m = 256 / (8 x 2) = 16.
  EXPECT_EQ(plan["parallelism"]["dp"], 8);
  EXPECT_EQ(plan["parallelism"]["tp"], 2);
  EXPECT_EQ(plan["parallelism"]["pp"], 2);
  EXPECT_EQ(plan["parallelism"]["zero"], 1);
  EXPECT_EQ(plan["num_micro_batches"], 16);
  const Json& p = plan["predicted"];
  const double batch_ms = p["batch_time_ms"].get<double>();
  EXPECT_NEAR(batch_ms, p["step_time_ms"].get<double>() + p["data_parallel_ms"].get<double>(),
              1e-9 * batch_ms);
  // 256 sequences of 1024 tokens per batch over 32 GPUs.
  EXPECT_NEAR(p["tokens_per_s_per_gpu"].get<double>(), 256.0 * 1024 / 32 / (batch_ms / 1000), 1e-6);
  Result<Plan> loaded = PlanFromJson(plan);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  ASSERT_TRUE(loaded->parallelism);
  EXPECT_EQ(loaded->parallelism->dp, 8);
}

TEST(LayoutCli, WithoutTheFlagsPlansHaveNoLayout) {
  const testing::CommandResult r = testing::RunTool(
      "plan " + Models() + "gpt2-small.json --stages 2 --micro-batches 4 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json plan = Json::parse(r.out);
  EXPECT_FALSE(plan.contains("parallelism"));
  EXPECT_FALSE(plan["predicted"].contains("batch_time_ms"));
}

TEST(LayoutCli, BadLayoutsAreOneLineExitTwo) {
  const std::string model = Models() + "gpt2-small.json";
  for (const std::string& args : {
           model + " --stages 2 --tp 2 --gpus-total 30 --global-batch 64",
           model + " --stages 2 --tp 2 --gpus-total 32 --global-batch 100",
           model + " --stages 2 --gpus-total 8 --global-batch 64 --micro-batches 5",
           model + " --stages 2 --tp 2 --gpus-total 8 --global-batch 64 --ep 3",
           model + " --stages auto --gpus-total 8 --global-batch 64 --method even",
       }) {
    const testing::CommandResult r = testing::RunTool("plan " + args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
  // A measured profile is one rank's only at tp = cp = ep = 1.
  const std::string dir = testing::TempDir();
  ASSERT_EQ(testing::RunTool("profile " + model + " -o " + dir + "/p.json").exit_code, 0);
  testing::CommandResult r =
      testing::RunTool("plan " + dir + "/p.json --stages 2 --tp 2 --micro-batches 4");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--tp 1 --cp 1 --ep 1"), std::string::npos) << r.err;
  r = testing::RunTool("plan " + dir + "/p.json --stages 2 --gpus-total 8 --micro-batches 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// --etp 1 folds the expert group over the tensor ranks (Megatron-LM's MoE parallel
// folding): ep 8 then fits tp 2 x dp 4, which alone it does not divide; the plan file keeps
// etp, and the Megatron-LM flags carry it.
TEST(LayoutCli, TheExpertGroupFoldsOverTheTensorRanksWithEtpOne) {
  const std::string model = Models() + "mixtral-8x7b.json";
  const std::string layout = " --stages 2 --tp 2 --ep 8 --gpus-total 16 --global-batch 64";
  testing::CommandResult r = testing::RunTool("plan " + model + layout);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--etp 1"), std::string::npos) << r.err;
  r = testing::RunTool("plan " + model + layout + " --etp 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("tp x cp x dp = 8"), std::string::npos) << r.err;

  const std::string dir = testing::TempDir();
  r = testing::RunTool("plan " + model + layout + " --etp 1 -o " + dir + "/plan.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ep 8, etp 1, dp 4"), std::string::npos) << r.out;
  const Json plan = Json::parse(testing::ReadText(dir + "/plan.json"));
  EXPECT_EQ(plan["parallelism"]["etp"], 1);
  r = testing::RunTool("export " + dir + "/plan.json --to megatron");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\n--expert-tensor-parallel-size 1\n"), std::string::npos) << r.out;
  // A plan file whose expert grid does not fit its ranks is refused in one line.
  Json bad = plan;
  bad["parallelism"]["etp"] = 3;
  testing::WriteText(dir + "/bad.json", bad.dump());
  r = testing::RunTool("export " + dir + "/bad.json --to megatron");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("ep 8 x etp 3 must divide tp x cp x dp = 8"), std::string::npos) << r.err;
  // Megatron-LM trains MoE layers under tensor parallelism only with sequence parallelism.
  r = testing::RunTool("plan " + model + layout + " --etp 1 --sequence-parallel off");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--sequence-parallel on"), std::string::npos) << r.err;
  // Given as tp, etp is tp: the plan file leaves it out.
  r = testing::RunTool("plan " + Models() + "mixtral-8x7b.json --stages 2 --tp 2 --ep 4"
                       " --etp 2 --gpus-total 16 --global-batch 64 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Json::parse(r.out)["parallelism"].contains("etp"));
  std::filesystem::remove_all(dir);
}

// The search pulls the etp lever for MoE models: with tp 2 and ep 16 pinned on 16 GPUs only
// the folded grid fits (ep 16 divides no dp x cp of 8 ranks).
TEST(LayoutCli, TheSearchFoldsTheExpertGroupWhenOnlyThatFits) {
  const testing::CommandResult r = testing::RunTool(
      "plan " + Models() + "qwen3-30b-a3b.json --stages auto --tp 2 --ep 16 --gpus-total 16 "
      "--global-batch 256 --gpus-per-node 8 --device h100 --dtype fp8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t first = r.out.find("\n1\ttp=2 ");
  ASSERT_NE(first, std::string::npos) << r.out;
  const std::string row = r.out.substr(first + 1, r.out.find('\n', first + 1) - first - 1);
  EXPECT_NE(row.find(" ep=16 etp=1 "), std::string::npos) << row;
  EXPECT_NE(r.out.find("\nparallelism: tp 2, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", ep 16, etp 1, "), std::string::npos) << r.out;
}

// The same split under ZeRO 0 and ZeRO 1 over dp = 8: each stage's peak differs by its
// parameters' state, 8 - (1 + 2 + 6/8) = 4.25 bytes per bf16 parameter byte.
TEST(LayoutCli, ZeroOneSavesTheShardedState) {
  const std::string base = "plan " + Models() +
                           "gpt2-small.json --stages 2 --boundaries 7 "
                           "--gpus-total 16 --global-batch 64 --format json --zero ";
  const testing::CommandResult a = testing::RunTool(base + "0");
  const testing::CommandResult b = testing::RunTool(base + "1");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const Json pa = Json::parse(a.out), pb = Json::parse(b.out);
  for (int s = 0; s < 2; ++s) {
    const uint64_t params = pa["stages"][s]["param_bytes"].get<uint64_t>();
    const uint64_t zero0 = pa["stages"][s]["peak_memory_bytes"].get<uint64_t>();
    const uint64_t zero1 = pb["stages"][s]["peak_memory_bytes"].get<uint64_t>();
    // ceil(params x (6 x 8 + 12) / (2 x 8)) bytes of state under zero 1.
    const uint64_t state1 = (params * 60 + 15) / 16;
    EXPECT_EQ(zero0 - zero1, params * 8 - state1) << "stage " << s;
  }
}

// The scatter/gather of stage transfers: a whole boundary activation of B bytes takes B / tp
// over the pipeline's own link plus the tensor group's all-gather of B (CollectiveMs), on a
// pipeline that crosses nodes (where it saves) and on one inside a node (where it costs);
// without it, or with sequence
// parallelism (whose boundary tensors are split already), or at tp 1 the link is unchanged.
TEST(PipelineLink, ScatterGatherSendsEachTensorRanksShareThenGathers) {
  const DeviceSpec& a100 = *FindDevice("a100");
  Profile profile;
  profile.device.name = std::string(a100.name);
  profile.link = Link{a100.link_bytes_per_s, a100.link_latency_ms};
  const double bytes = 84e6;
  for (int pp : {4, 1}) {  // tp 8 x pp 4 spans four nodes; tp 8 alone stays in one
    ParallelLayout l;
    l.tp = 8;
    l.pp = pp;
    l.sequence_parallel = false;
    const Link whole = PipelineLink(l, profile);
    const Link expected_whole =
        pp > 1 ? Link{a100.network_bus_bytes_per_s, a100.network_latency_ms} : profile.link;
    EXPECT_DOUBLE_EQ(whole.bandwidth_bytes_per_s, expected_whole.bandwidth_bytes_per_s);
    EXPECT_DOUBLE_EQ(whole.latency_ms, expected_whole.latency_ms);
    l.pipeline_scatter_gather = true;
    const Link split = PipelineLink(l, profile);
    const double share = whole.latency_ms + 1000.0 * bytes / 8 / whole.bandwidth_bytes_per_s;
    const double gather = CollectiveMs(CollectiveKind::kAllGather, bytes, 8,
                                       a100.node_bus_bytes_per_s, a100.node_latency_ms);
    EXPECT_NEAR(split.TransferMs(static_cast<uint64_t>(bytes)), share + gather, 1e-9) << pp;
    // Across nodes each rank's card carries an eighth; inside one, NVLink carried the whole
    // tensor faster than the gather costs.
    if (pp > 1) {
      EXPECT_LT(split.TransferMs(static_cast<uint64_t>(bytes)),
                whole.TransferMs(static_cast<uint64_t>(bytes)));
    } else {
      EXPECT_GT(split.TransferMs(static_cast<uint64_t>(bytes)),
                whole.TransferMs(static_cast<uint64_t>(bytes)));
    }
    ParallelLayout sequence = l;
    sequence.sequence_parallel = true;
    EXPECT_DOUBLE_EQ(PipelineLink(sequence, profile).bandwidth_bytes_per_s,
                     whole.bandwidth_bytes_per_s);
    ParallelLayout one = l;
    one.tp = 1;
    one.pp = 32;
    EXPECT_DOUBLE_EQ(PipelineLink(one, profile).bandwidth_bytes_per_s,
                     a100.network_bus_bytes_per_s);
  }
}

// --- the search over the layout against a brute force ---

// The brute force's own request for one layout at micro-batch size b: the analytic profile of
// that layout (fused attention), its pipeline link, `pp` stages of `m` micro-batches.
PlanRequest LayoutRequest(const PlanRequest& base, const DeviceSpec& device,
                          const ParallelLayout& l, int64_t b, int m) {
  AnalyticOptions options;
  options.micro_batch_size = b;
  options.layout = l;
  options.flash_attention = l.fused_attention;
  Result<Profile> profile = AnalyticProfile(*base.model, device, options);
  EXPECT_TRUE(profile.ok()) << profile.message();
  PlanRequest r = base;
  if (!profile.ok()) return r;
  r.profile = *profile;
  r.profile.link = PipelineLink(l, *profile);
  r.model->input.micro_batch_size = b;
  r.num_stages = l.pp;
  r.num_micro_batches = m;
  r.layout = l;
  return r;
}

// With every estimate planned exactly, the search's best is the least planned batch time over
// the pinned space, which a brute force over MakePlan finds independently.
TEST(LayoutSearch, BestIsTheBruteForceOptimum) {
  Result<Model> model = LoadModel(Models() + "gpt2-small.json");
  ASSERT_TRUE(model.ok()) << model.message();
  const DeviceSpec& device = *FindDevice("h100");
  PlanRequest base;
  base.model = *model;
  base.objective = "bottleneck";
  LeverSpace space;
  space.gpus_total = 8;
  space.global_batch = 32;
  space.gpus_per_node = 8;
  space.tp = {1, 2};
  space.cp = {1};
  space.zero = {0, 1};
  space.schedules = {"1f1b"};
  space.recompute_lever = false;
  space.micro_batch_sizes = {1, 2, 4};
  space.exact = 1000;
  Result<LayoutSearchResult> found = SearchLayouts(base, device, space);
  ASSERT_TRUE(found.ok()) << found.message();
  ASSERT_FALSE(found->ranked.empty());

  double best = std::numeric_limits<double>::infinity();
  int planned = 0;
  for (int tp : {1, 2}) {
    for (int pp = 1; pp <= 8 / tp; ++pp) {
      if ((8 / tp) % pp != 0) continue;
      const int dp = 8 / tp / pp;
      for (int64_t b : {1, 2, 4}) {
        if (32 % (dp * b) != 0) continue;
        for (int zero : {0, 1}) {
          ParallelLayout l;
          l.tp = tp;
          l.pp = pp;
          l.dp = dp;
          l.zero = zero;
          PlanRequest r = LayoutRequest(base, device, l, b, static_cast<int>(32 / (dp * b)));
          r.memory_limit = device.memory_bytes;
          Result<Plan> plan = MakePlan(r);
          if (!plan.ok()) continue;
          ++planned;
          best = std::min(best, *plan->predicted.batch_time_ms);
        }
      }
    }
  }
  ASSERT_GT(planned, 0);
  EXPECT_EQ(found->estimated, planned);
  EXPECT_NEAR(found->ranked.front().batch_ms, best, 1e-9 * best);
  EXPECT_NEAR(*found->best.predicted.batch_time_ms, best, 1e-9 * best);
}

// gpt2-small over 8 GPUs of one node and 32 samples, tp and cp 1, ZeRO 0, under `limit`.
void SmallSearch(const Model& model, uint64_t limit, PlanRequest* base, LeverSpace* space) {
  base->model = model;
  base->memory_limit = limit;
  base->step_budget_s = 5;
  space->gpus_total = 8;
  space->global_batch = 32;
  space->gpus_per_node = 8;
  space->tp = {1};
  space->cp = {1};
  space->zero = {0};
}

// The same with the recomputation lever and the interleaved schedule under a memory limit
// that makes some layouts recompute: one-chunk schedules recompute the stages over the limit
// (--recompute auto), interleaved ones every chunk (--recompute all). The brute force plans
// every layout, schedule and recomputation with MakePlan.
TEST(LayoutSearch, BestWithRecomputationIsTheBruteForceOptimum) {
  Result<Model> model = LoadModel(Models() + "gpt2-small.json");
  ASSERT_TRUE(model.ok()) << model.message();
  const DeviceSpec& device = *FindDevice("h100");
  const uint64_t limit = uint64_t{1400} << 20;
  PlanRequest base;
  LeverSpace space;
  SmallSearch(*model, limit, &base, &space);
  space.schedules = {"1f1b", "interleaved"};
  space.virtual_stages = {2};
  space.micro_batch_sizes = {2, 4};
  space.exact = 1000;
  space.top = 1000;
  Result<LayoutSearchResult> found = SearchLayouts(base, device, space);
  ASSERT_TRUE(found.ok()) << found.message();

  double best = std::numeric_limits<double>::infinity();
  int recomputing = 0, interleaved = 0;
  for (int pp : {1, 2, 4, 8}) {
    const int dp = 8 / pp;
    for (int64_t b : {2, 4}) {
      if (32 % (dp * b) != 0) continue;
      const int m = static_cast<int>(32 / (dp * b));
      ParallelLayout l;
      l.pp = pp;
      l.dp = dp;
      const PlanRequest at = LayoutRequest(base, device, l, b, m);
      for (const char* schedule : {"1f1b", "interleaved"}) {
        const bool chunked = std::string(schedule) == "interleaved";
        if (chunked && (pp < 2 || m % pp != 0)) continue;
        for (const char* recompute : {"none", chunked ? "all" : "auto"}) {
          PlanRequest r = at;
          r.schedule = schedule;
          r.virtual_stages = 2;
          r.recompute = recompute;
          Result<Plan> plan = MakePlan(r);
          if (!plan.ok() || !StagesOverLimit(*plan).empty()) continue;
          bool rc = false;
          for (const StagePlan& st : plan->stages) rc |= st.recompute;
          recomputing += rc ? 1 : 0;
          interleaved += chunked ? 1 : 0;
          best = std::min(best, *plan->predicted.batch_time_ms);
        }
      }
    }
  }
  ASSERT_GT(recomputing, 0);
  ASSERT_GT(interleaved, 0);
  ASSERT_FALSE(found->ranked.empty());
  EXPECT_NEAR(found->ranked.front().batch_ms, best, 1e-9 * best);
}

// Choosing the recomputation unit (no --recompute-unit): each recomputing candidate
// selectively (core_attn), or by stage or by layer. Under a limit where whole-stage
// recomputation holds too much, the search's best is the brute force's over the three units,
// and no slower than by stage alone.
TEST(LayoutSearch, ChoosingTheRecomputeUnitFindsTheBruteForceOptimum) {
  Result<Model> model = LoadModel(Models() + "gpt2-small.json");
  ASSERT_TRUE(model.ok()) << model.message();
  const DeviceSpec& device = *FindDevice("h100");
  const uint64_t limit = uint64_t{1600} << 20;
  PlanRequest base;
  LeverSpace space;
  SmallSearch(*model, limit, &base, &space);
  space.schedules = {"1f1b"};
  space.micro_batch_sizes = {2, 4};
  space.recompute_all = true;
  space.exact = 1000;
  space.top = 1000;
  Result<LayoutSearchResult> by_stage = SearchLayouts(base, device, space);
  space.choose_recompute_unit = true;
  Result<LayoutSearchResult> found = SearchLayouts(base, device, space);
  ASSERT_TRUE(found.ok()) << found.message();

  double best = std::numeric_limits<double>::infinity();
  int layer_only = 0;  // layouts that fit by layer but not by stage
  for (int pp : {1, 2, 4, 8}) {
    const int dp = 8 / pp;
    for (int64_t b : {2, 4}) {
      if (32 % (dp * b) != 0) continue;
      ParallelLayout l;
      l.pp = pp;
      l.dp = dp;
      PlanRequest r = LayoutRequest(base, device, l, b, static_cast<int>(32 / (dp * b)));
      r.recompute = "all";
      bool fit[2] = {false, false};
      for (RecomputeUnit unit :
           {RecomputeUnit::kStage, RecomputeUnit::kLayer, RecomputeUnit::kSelective}) {
        r.recompute_unit = unit;
        Result<Plan> plan = MakePlan(r);
        if (!plan.ok() || !StagesOverLimit(*plan).empty()) continue;
        if (unit != RecomputeUnit::kSelective) fit[unit == RecomputeUnit::kLayer] = true;
        best = std::min(best, *plan->predicted.batch_time_ms);
      }
      layer_only += fit[1] && !fit[0] ? 1 : 0;
    }
  }
  ASSERT_GT(layer_only, 0);
  ASSERT_FALSE(found->ranked.empty());
  EXPECT_NEAR(found->ranked.front().batch_ms, best, 1e-9 * best);
  ASSERT_TRUE(by_stage.ok()) << by_stage.message();
  ASSERT_FALSE(by_stage->ranked.empty());
  EXPECT_LE(found->ranked.front().batch_ms, by_stage->ranked.front().batch_ms);
}

// Without a unit the search tries selective recomputation before the whole forward. With
// unfused attention (the s x s probabilities kept) under a limit that one stage meets only
// by recomputing, recomputing the core attention there beats every deeper pipeline and every
// whole-forward recomputation: the search's best is the brute force's over no recomputation,
// selective and the two whole-forward units, and it recomputes selectively.
TEST(LayoutSearch, SelectiveRecomputationComesBeforeTheWholeForward) {
  Result<Model> model = LoadModel(Models() + "gpt2-small.json");
  ASSERT_TRUE(model.ok()) << model.message();
  const DeviceSpec& device = *FindDevice("h100");
  PlanRequest base;
  LeverSpace space;
  SmallSearch(*model, uint64_t{3584} << 20, &base, &space);
  space.schedules = {"1f1b"};
  space.micro_batch_sizes = {4};
  space.software.fused_attention = false;
  space.exact = 1000;
  space.top = 1000;
  space.choose_recompute_unit = true;
  Result<LayoutSearchResult> found = SearchLayouts(base, device, space);
  ASSERT_TRUE(found.ok()) << found.message();

  double best = std::numeric_limits<double>::infinity(), best_whole = best;
  int plain_fits = 0, selective_fits = 0;
  for (int pp : {1, 2, 4, 8}) {
    const int dp = 8 / pp;
    if (32 % (dp * 4) != 0) continue;
    ParallelLayout l;
    l.pp = pp;
    l.dp = dp;
    l.fused_attention = false;
    PlanRequest r = LayoutRequest(base, device, l, 4, static_cast<int>(32 / (dp * 4)));
    for (const char* recompute : {"none", "auto"}) {
      r.recompute = recompute;
      for (RecomputeUnit unit :
           {RecomputeUnit::kSelective, RecomputeUnit::kStage, RecomputeUnit::kLayer}) {
        if (r.recompute == "none" && unit != RecomputeUnit::kSelective) continue;
        r.recompute_unit = unit;
        Result<Plan> plan = MakePlan(r);
        if (!plan.ok() || !StagesOverLimit(*plan).empty()) continue;
        const double ms = *plan->predicted.batch_time_ms;
        best = std::min(best, ms);
        if (r.recompute == "none")
          ++plain_fits;
        else if (unit == RecomputeUnit::kSelective)
          ++selective_fits;
        else
          best_whole = std::min(best_whole, ms);
      }
    }
  }
  ASSERT_GT(plain_fits, 0);  // deeper pipelines fit without it, and are slower
  ASSERT_GT(selective_fits, 0);
  ASSERT_FALSE(found->ranked.empty());
  const LayoutCandidate& top = found->ranked.front();
  EXPECT_NEAR(top.batch_ms, best, 1e-9 * best);
  EXPECT_TRUE(top.recompute);
  EXPECT_EQ(top.recompute_unit, RecomputeUnit::kSelective);
  EXPECT_LT(best, best_whole);
  EXPECT_EQ(found->best.recompute_unit, RecomputeUnit::kSelective);
}

// The CLI: --recompute-modules without --recompute-unit is the search's selective option
// (the plan it writes recomputes those modules); outside the search it needs the unit.
TEST(LayoutCli, TheSearchTriesTheGivenModules) {
  const std::string base = "plan " + Models() +
                           "gpt2-small.json --gpus-total 8 --global-batch 32 --gpus-per-node 8 "
                           "--tp 1 --cp 1 --zero 0 --micro-batch-size 4 --schedule 1f1b "
                           "--attention unfused --memory-limit 3.5GiB --format json ";
  const testing::CommandResult core =
      testing::RunTool(base + "--stages auto --recompute-modules core_attn");
  ASSERT_EQ(core.exit_code, 0) << core.err;
  const Json plan = Json::parse(core.out);
  EXPECT_EQ(plan["recompute_unit"], "selective");
  EXPECT_EQ(plan["recompute_modules"], Json::array({"core_attn"}));
  // The MLP's module drops too little here: the search recomputes the whole forward.
  const testing::CommandResult mlp =
      testing::RunTool(base + "--stages auto --recompute-modules mlp");
  ASSERT_EQ(mlp.exit_code, 0) << mlp.err;
  EXPECT_NE(Json::parse(mlp.out)["recompute_unit"], "selective");
  const testing::CommandResult fixed =
      testing::RunTool(base + "--stages 1 --micro-batches 1 --recompute-modules core_attn");
  EXPECT_EQ(fixed.exit_code, 2);
  EXPECT_NE(fixed.err.find("or with --stages auto"), std::string::npos) << fixed.err;
}

// --moe-dispatcher flex: the plan records it, is faster where the expert group crosses nodes
// (Qwen3-30B-A3B at ep 16 over two nodes), the same inside one node (ep 8), and the exports
// name Megatron-LM's flex dispatcher with DeepEP and torchtitan's DeepEP backend.
TEST(LayoutCli, TheFlexDispatcherSendsATokenOncePerNode) {
  const std::string dir = testing::TempDir();
  const auto plan = [&](int ep, const std::string& dispatcher, const std::string& out) {
    const testing::CommandResult r = testing::RunTool(
        "plan " + Models() + "qwen3-30b-a3b.json --stages 1 --tp 1 --ep " + std::to_string(ep) +
        " --gpus-total 16 --global-batch 64 --micro-batch-size 1 --zero 1 --device h100 "
        "--moe-dispatcher " +
        dispatcher + " -o " + dir + "/" + out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(testing::ReadText(dir + "/" + out));
  };
  const auto batch = [](const Json& p) { return p["predicted"]["batch_time_ms"].get<double>(); };
  const Json a2a = plan(16, "alltoall", "a.json"), flex = plan(16, "flex", "f.json");
  EXPECT_FALSE(a2a["parallelism"].contains("flex_dispatcher"));
  EXPECT_EQ(flex["parallelism"]["flex_dispatcher"], true);
  EXPECT_LT(batch(flex), batch(a2a));
  EXPECT_DOUBLE_EQ(batch(plan(8, "flex", "f8.json")), batch(plan(8, "alltoall", "a8.json")));
  const testing::CommandResult megatron =
      testing::RunTool("export " + dir + "/f.json --to megatron");
  ASSERT_EQ(megatron.exit_code, 0) << megatron.err;
  EXPECT_NE(megatron.out.find("--moe-token-dispatcher-type flex\n--moe-flex-dispatcher-backend "
                              "deepep\n"),
            std::string::npos)
      << megatron.out;
  const testing::CommandResult titan =
      testing::RunTool("export " + dir + "/f.json --to torchtitan");
  EXPECT_NE(titan.out.find("expert_parallel_comm_backend = \"deepep\""), std::string::npos)
      << titan.out << titan.err;
  std::filesystem::remove_all(dir);
}

// --overlap-grad-reduce off: the sync after the pipeline drains is exposed whole, 30 ms of
// the case above, however long the backward.
TEST(Exposure, WithoutOverlapTheWholeSyncIsExposed) {
  PlanRequest request = DataParallelRequest(/*overlap=*/false);
  for (LayerProfile& layer : request.profile.layers) layer.backward_ms = 100;
  Result<Plan> plan = MakePlan(request);
  ASSERT_TRUE(plan.ok()) << plan.message();
  const std::vector<DeviceSync> sync = DataParallelSync(*plan, *plan->parallelism);
  EXPECT_NEAR(sync[0].gradient_exposed_ms, 1000.0 * 1.5 * 20e6 / 1e9, 1e-9);
  EXPECT_NEAR(*plan->predicted.batch_time_ms, plan->predicted.step_time_ms + 30.0, 1e-9);
}

// The software flags reach the plan: unfused attention keeps the scores (more activation
// memory per stage), no sequence parallelism keeps whole rows, and both are written to the
// plan and read back; context parallelism needs fused attention.
TEST(LayoutCli, SoftwareFlagsShapeThePlanAndTravelInIt) {
  const std::string base = "plan " + Models() +
                           "gpt2-small.json --stages 2 --boundaries 7 --tp 2 --gpus-total 8 "
                           "--global-batch 32 --micro-batch-size 2 --format json";
  const testing::CommandResult fused = testing::RunTool(base);
  const testing::CommandResult old =
      testing::RunTool(base +
                       " --attention unfused --sequence-parallel off --overlap-grad-reduce off "
                       "--wgrad-accumulation separate --pipeline-scatter-gather on "
                       "--overlap-tp-dgrad on --cross-entropy unfused --fp32-grad-copy on "
                       "--ddp-bucket-copy on");
  ASSERT_EQ(fused.exit_code, 0) << fused.err;
  ASSERT_EQ(old.exit_code, 0) << old.err;
  const Json a = Json::parse(fused.out), b = Json::parse(old.out);
  EXPECT_FALSE(a["parallelism"].contains("fused_attention"));
  EXPECT_EQ(b["parallelism"]["fused_attention"], false);
  EXPECT_EQ(b["parallelism"]["sequence_parallel"], false);
  EXPECT_EQ(b["parallelism"]["overlap_grad_reduce"], false);
  EXPECT_EQ(b["parallelism"]["fused_wgrad_accumulation"], false);
  EXPECT_FALSE(a["parallelism"].contains("fused_wgrad_accumulation"));
  EXPECT_EQ(b["parallelism"]["pipeline_scatter_gather"], true);
  EXPECT_FALSE(a["parallelism"].contains("pipeline_scatter_gather"));
  EXPECT_EQ(b["parallelism"]["overlap_tp_dgrad"], true);
  EXPECT_FALSE(a["parallelism"].contains("overlap_tp_dgrad"));
  EXPECT_EQ(b["parallelism"]["fused_cross_entropy"], false);
  EXPECT_FALSE(a["parallelism"].contains("fused_cross_entropy"));
  EXPECT_EQ(b["parallelism"]["fp32_grad_copy"], true);
  EXPECT_EQ(b["parallelism"]["ddp_bucket_copy"], true);
  EXPECT_FALSE(a["parallelism"].contains("fp32_grad_copy"));
  EXPECT_FALSE(a["parallelism"].contains("ddp_bucket_copy"));
  for (int s = 0; s < 2; ++s) {
    EXPECT_GT(b["stages"][s]["peak_memory_bytes"].get<uint64_t>(),
              a["stages"][s]["peak_memory_bytes"].get<uint64_t>());
  }
  Result<Plan> loaded = PlanFromJson(b);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  EXPECT_FALSE(loaded->parallelism->fused_attention);
  EXPECT_FALSE(loaded->parallelism->overlap_grad_reduce);
  EXPECT_FALSE(loaded->parallelism->sequence_parallel);
  EXPECT_FALSE(loaded->parallelism->fused_wgrad_accumulation);
  EXPECT_TRUE(loaded->parallelism->pipeline_scatter_gather);
  EXPECT_TRUE(loaded->parallelism->overlap_tp_dgrad);
  EXPECT_FALSE(loaded->parallelism->fused_cross_entropy);
  EXPECT_TRUE(loaded->parallelism->fp32_grad_copy);
  EXPECT_TRUE(loaded->parallelism->ddp_bucket_copy);
  // The copies add 4 + 2 bytes a bf16 parameter to every stage's peak (ZeRO 0, the default),
  // and change no time.
  const testing::CommandResult copies =
      testing::RunTool(base + " --fp32-grad-copy on --ddp-bucket-copy on");
  ASSERT_EQ(copies.exit_code, 0) << copies.err;
  const Json c = Json::parse(copies.out);
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(c["stages"][s]["peak_memory_bytes"].get<uint64_t>() -
                  a["stages"][s]["peak_memory_bytes"].get<uint64_t>(),
              3 * a["stages"][s]["param_bytes"].get<uint64_t>());
    EXPECT_DOUBLE_EQ(c["stages"][s]["forward_ms"].get<double>(),
                     a["stages"][s]["forward_ms"].get<double>());
  }
  // The unfused cross entropy lengthens only the stage with the loss, in both directions.
  const testing::CommandResult unfused = testing::RunTool(base + " --cross-entropy unfused");
  ASSERT_EQ(unfused.exit_code, 0) << unfused.err;
  const Json u = Json::parse(unfused.out);
  for (const char* part : {"forward_ms", "backward_ms"}) {
    EXPECT_DOUBLE_EQ(u["stages"][0][part].get<double>(), a["stages"][0][part].get<double>());
    EXPECT_GT(u["stages"][1][part].get<double>(), a["stages"][1][part].get<double>());
  }
  // The input gradient's reductions under the weight gradients shorten every backward; a
  // schedule that splits the backward cannot run them so.
  const testing::CommandResult waits = testing::RunTool(base + " --sequence-parallel off");
  const testing::CommandResult hides =
      testing::RunTool(base + " --sequence-parallel off --overlap-tp-dgrad on");
  ASSERT_EQ(waits.exit_code, 0) << waits.err;
  ASSERT_EQ(hides.exit_code, 0) << hides.err;
  const Json w = Json::parse(waits.out), h = Json::parse(hides.out);
  for (int s = 0; s < 2; ++s) {
    EXPECT_LT(h["stages"][s]["backward_ms"].get<double>(),
              w["stages"][s]["backward_ms"].get<double>());
    EXPECT_DOUBLE_EQ(h["stages"][s]["forward_ms"].get<double>(),
                     w["stages"][s]["forward_ms"].get<double>());
  }
  const testing::CommandResult split =
      testing::RunTool(base + " --schedule zbv --overlap-tp-dgrad on");
  EXPECT_EQ(split.exit_code, 2);
  EXPECT_EQ(std::count(split.err.begin(), split.err.end(), '\n'), 1) << split.err;
  EXPECT_NE(split.err.find("--overlap-tp-dgrad"), std::string::npos) << split.err;
  const testing::CommandResult cp = testing::RunTool(
      "plan " + Models() + "gpt2-small.json --stages 2 --cp 2 --attention unfused");
  EXPECT_EQ(cp.exit_code, 2);
  EXPECT_EQ(std::count(cp.err.begin(), cp.err.end(), '\n'), 1) << cp.err;
  EXPECT_NE(cp.err.find("--attention fused"), std::string::npos) << cp.err;
  // The layout search chooses recomputation itself: --recompute auto is refused at once.
  const testing::CommandResult auto_rc = testing::RunTool(
      "plan " + Models() + "gpt2-small.json --stages auto --gpus-total 8 --global-batch 32 "
      "--gpus-per-node 8 --recompute auto");
  EXPECT_EQ(auto_rc.exit_code, 2);
  EXPECT_EQ(std::count(auto_rc.err.begin(), auto_rc.err.end(), '\n'), 1) << auto_rc.err;
  EXPECT_NE(auto_rc.err.find("--recompute all"), std::string::npos) << auto_rc.err;
}

// --device-file reaches a layout, given and searched: a file of the h100 table plans exactly
// as --device h100; halving its matrix-product efficiency makes the same layout slower.
TEST(LayoutCli, ADeviceFileReachesTheLayout) {
  const std::string dir = testing::TempDir();
  Json device = DeviceToJson(*FindDevice("h100"));
  testing::WriteText(dir + "/same.json", device.dump());
  device["efficiency"]["gemm"]["bf16"] = device["efficiency"]["gemm"]["bf16"].get<double>() / 2;
  testing::WriteText(dir + "/slow.json", device.dump());
  const std::string given = "plan " + Models() +
                            "gpt2-small.json --stages 2 --tp 2 --gpus-total 8 --global-batch 32 "
                            "--micro-batch-size 2 --format json ";
  const std::string searched = "plan " + Models() +
                               "gpt2-small.json --stages auto --gpus-total 8 --global-batch 32 "
                               "--gpus-per-node 8 --tp 2 --format json ";
  for (const std::string& base : {given, searched}) {
    const testing::CommandResult table = testing::RunTool(base + "--device h100");
    const testing::CommandResult same = testing::RunTool(base + "--device-file " + dir + "/same.json");
    const testing::CommandResult slow = testing::RunTool(base + "--device-file " + dir + "/slow.json");
    ASSERT_EQ(table.exit_code, 0) << table.err;
    ASSERT_EQ(same.exit_code, 0) << same.err;
    ASSERT_EQ(slow.exit_code, 0) << slow.err;
    const Json a = Json::parse(table.out), b = Json::parse(same.out), c = Json::parse(slow.out);
    EXPECT_EQ(a["predicted"]["batch_time_ms"], b["predicted"]["batch_time_ms"]) << base;
    EXPECT_GT(c["predicted"]["batch_time_ms"].get<double>(),
              a["predicted"]["batch_time_ms"].get<double>()) << base;
  }
}

// gpt2-small over 16 GPUs and 64 samples.
void Gpt2Over16(PlanRequest* base, LeverSpace* space) {
  Result<Model> model = LoadModel(Models() + "gpt2-small.json");
  ASSERT_TRUE(model.ok()) << model.message();
  base->model = *model;
  space->gpus_total = 16;
  space->global_batch = 64;
}

// --method blocks in the search: every planned candidate's chunks hold the model's blocks
// evenly (counted from the plan's layer names), interleaved ones too; an unknown method is
// refused.
TEST(LayoutSearch, TheBlocksMethodSplitsEveryCandidatesBlocksEvenly) {
  PlanRequest base;
  LeverSpace space;
  Gpt2Over16(&base, &space);
  space.tp = {1};
  space.cp = {1};
  space.pp = {4};
  space.schedules = {"interleaved"};
  space.virtual_stages = {3};
  space.method = "blocks";
  const DeviceSpec& h100 = *FindDevice("h100");
  Result<LayoutSearchResult> found = SearchLayouts(base, h100, space);
  ASSERT_TRUE(found.ok()) << found.message();
  const Plan& best = found->best;
  EXPECT_EQ(best.method, "blocks");
  ASSERT_EQ(best.stages.size(), 12u);  // 4 devices x 3 chunks over gpt2-small's 12 blocks
  for (const StagePlan& st : best.stages) {
    int blocks = 0;
    for (const std::string& name : st.layer_names) blocks += name.starts_with("block");
    EXPECT_EQ(blocks, 1) << "chunk " << st.index;
  }
  EXPECT_EQ(best.stages.front().layer_names.front(), "embed");
  EXPECT_EQ(best.stages.back().layer_names.back(), "loss");
  // The CLI's search takes the method and the plan file names it.
  const testing::CommandResult cli =
      testing::RunTool("plan " + Models() +
                       "gpt2-small.json --stages auto --gpus-total 16 --global-batch 64 "
                       "--tp 1 --cp 1 --method blocks --format json");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(Json::parse(cli.out)["method"], "blocks");
  space.method = "even";
  Result<LayoutSearchResult> unknown = SearchLayouts(base, h100, space);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("unknown --method"), std::string::npos);
}

// --recompute all in the search: every candidate recomputes, interleaved ones in every
// chunk, and unfused attention leaves context parallelism out.
TEST(LayoutSearch, RecomputeAllAndUnfusedAttentionConstrainTheCandidates) {
  PlanRequest base;
  LeverSpace space;
  Gpt2Over16(&base, &space);
  space.recompute_all = true;
  space.software.fused_attention = false;
  space.top = 100;
  Result<LayoutSearchResult> found = SearchLayouts(base, *FindDevice("h100"), space);
  ASSERT_TRUE(found.ok()) << found.message();
  ASSERT_FALSE(found->ranked.empty());
  for (const LayoutCandidate& c : found->ranked) {
    EXPECT_TRUE(c.recompute);
    EXPECT_EQ(c.layout.cp, 1);
    EXPECT_FALSE(c.layout.fused_attention);
  }
  for (const StagePlan& s : found->best.stages) EXPECT_TRUE(s.recompute);
}

}  // namespace
}  // namespace pp
