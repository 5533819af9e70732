// Speed of the planner (Google Benchmark). Targets (issue: the working core):
//   BM_DpBottleneck/10000/64  dp on 10,000 layers x 64 stages under 1 s on one core;
//   BM_DpBottleneck/100000/1024  the same on 100,000 layers x 1,024 stages under 1 s;
//   BM_PlanGpt2Xl             the `plan` job on GPT-2 XL in-process (load, analytic profile,
//                             dp, simulate);
//   BM_PlanGpt2XlCli          the same through the CLI, process start-up included: under 50 ms
//                             wall.
//   BM_DpStep/1000/16/S       --objective step (branch and bound, m = 32; S = 0: 1f1b, 1: gpipe,
//                             2: zb-h1, 3: interleaved V = 2, 4: zbv) on 1,000 layers x 16
//                             devices: under 1 s; the counters say whether the optimum was
//                             proven (exact = 1) or the gap to the proven bound.
//   BM_SearchGpt2Xl64Cli      `plan --stages auto --gpus-total 64 --global-batch 512` on GPT-2
//                             XL through the CLI: under 5 s.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <string>

#include "core/model.h"
#include "executor/schedule.h"
#include "partitioner/methods.h"
#include "partitioner/planner.h"
#include "profiler/analytic.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

Profile RandomProfile(int layers, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> ms(0.1, 10.0);
  std::uniform_int_distribution<uint64_t> bytes(1 << 20, 1 << 28);
  Profile p;
  p.model = "random";
  p.backend = "analytic";
  p.device = {"bench", uint64_t{80} << 30};
  p.micro_batch_size = 1;
  p.link = {4.5e11, 0.01};
  for (int i = 0; i < layers; ++i) {
    LayerProfile l;
    l.name = "l" + std::to_string(i);
    l.forward_ms = ms(rng);
    l.backward_ms = 2 * ms(rng);
    l.param_bytes = bytes(rng);
    l.activation_bytes = bytes(rng);
    l.output_bytes = bytes(rng);
    p.layers.push_back(std::move(l));
  }
  return p;
}

void BM_DpBottleneck(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int p = static_cast<int>(state.range(1));
  const Profile profile = RandomProfile(n, 7);
  const CostModel cost(profile, Optimizer::kAdam);
  const Schedule schedule = *BuildSchedule("1f1b", p, 2 * p);
  SplitContext ctx;
  ctx.cost = &cost;
  ctx.num_stages = p;
  ctx.in_flight = InFlightMicroBatches(schedule);
  ctx.memory_limit = uint64_t{1} << 52;
  for (auto _ : state) {
    Result<std::vector<int>> split = DpBottleneckSplit(ctx);
    benchmark::DoNotOptimize(split);
  }
}
BENCHMARK(BM_DpBottleneck)
    ->Args({1000, 16})
    ->Args({10000, 64})
    ->Args({100000, 1024})
    ->Unit(benchmark::kMillisecond);

void BM_PlanGpt2Xl(benchmark::State& state) {
  for (auto _ : state) {
    Result<Model> model = LoadModel(PP_SOURCE_DIR "/models/gpt2-xl.json");
    Result<Profile> profile = AnalyticProfile(*model, *FindDevice("h100"), {});
    PlanRequest request;
    request.profile = *profile;
    request.model = *model;
    request.num_stages = 4;
    request.num_micro_batches = 32;
    request.memory_limit = profile->device.memory_bytes;
    Result<Plan> plan = MakePlan(request);
    if (!plan.ok()) state.SkipWithError(plan.message().c_str());
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_PlanGpt2Xl)->Unit(benchmark::kMillisecond);

void BM_DpStep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int p = static_cast<int>(state.range(1));
  PlanRequest request;
  request.profile = RandomProfile(n, 7);
  const char* schedules[] = {"1f1b", "gpipe", "zb-h1", "interleaved", "zbv"};
  request.schedule = schedules[state.range(2)];
  request.num_stages = p;
  request.num_micro_batches = 2 * p;
  request.memory_limit = uint64_t{1} << 52;  // checked on every stage, never binding
  request.objective = "step";
  // The default budget (1 s): the counters say whether the optimum was proven (exact = 1)
  // and, if not, how far the plan's step may be above it (gap_ms).
  for (auto _ : state) {
    Result<Plan> plan = MakePlan(request);
    if (!plan.ok()) {
      state.SkipWithError(plan.message().c_str());
      break;
    }
    state.counters["exact"] = plan->objective_bound->exact ? 1 : 0;
    state.counters["gap_ms"] = plan->predicted.step_time_ms - plan->objective_bound->lower_bound_ms;
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_DpStep)
    ->Args({1000, 16, 0})
    ->Args({1000, 16, 1})
    ->Args({1000, 16, 2})
    ->Args({1000, 16, 3})
    ->Args({1000, 16, 4})
    ->Unit(benchmark::kMillisecond);

// The CLI end to end, process start-up included: the wall time a user waits for `plan`.
void BM_PlanGpt2XlCli(benchmark::State& state) {
  const std::string command = std::string("'") + PP_BINARY +
                              "' plan '" PP_SOURCE_DIR "/models/gpt2-xl.json' --stages 4 "
                              "--micro-batches 32 --schedule 1f1b >/dev/null";
  for (auto _ : state) {
    if (std::system(command.c_str()) != 0) state.SkipWithError("pp-partition plan failed");
  }
}
BENCHMARK(BM_PlanGpt2XlCli)->Unit(benchmark::kMillisecond)->UseRealTime();

// The search end to end: 64 GPUs, 512 samples per step, every depth, micro-batch size,
// schedule and the recomputation lever, each split by the step search within the shared 2 s.
void BM_SearchGpt2Xl64Cli(benchmark::State& state) {
  const std::string command = std::string("'") + PP_BINARY +
                              "' plan '" PP_SOURCE_DIR "/models/gpt2-xl.json' --stages auto "
                              "--gpus-total 64 --global-batch 512 >/dev/null 2>&1";
  for (auto _ : state) {
    if (std::system(command.c_str()) != 0) state.SkipWithError("pp-partition plan failed");
  }
}
BENCHMARK(BM_SearchGpt2Xl64Cli)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace
}  // namespace pp

BENCHMARK_MAIN();
