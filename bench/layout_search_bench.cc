// Speed of the search over the whole layout (Google Benchmark; partitioner/layout_search.h):
//   BM_SearchLlama405b/16384  Llama 3.1 405B (models/llama3.1-405b.json, sequence 8192,
//                             bf16) over every lever on 16,384
//                             H100s, global batch 2048: target under 10 s on the 2-core
//                             development machine;
//   BM_SearchLlama405b/1024   the same on 1,024 GPUs: under 2 s.
//   .../unlimited             the same without a memory limit: nothing is pruned for memory,
//                             so every candidate is estimated (the search's worst case).
// Counters: the candidates enumerated, pruned (memory, dominated), estimated and planned, the
// analytic profiles built, and the best plan's time per global batch (best_ms).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/json_util.h"
#include "core/model.h"
#include "partitioner/layout_search.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

// models/llama3.1-405b.json (grouped-query attention with 8 key/value heads, untied head).
Model Llama405b() {
  Result<Model> model = LoadModel(std::string(PP_SOURCE_DIR) + "/models/llama3.1-405b.json");
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.message().c_str());
    std::exit(2);
  }
  return *std::move(model);
}

void BM_SearchLlama405b(benchmark::State& state) {
  PlanRequest request;
  request.model = Llama405b();
  if (state.range(1) != 0) request.memory_limit = uint64_t{1} << 60;
  const DeviceSpec& device = *FindDevice("h100");
  LeverSpace space;
  space.gpus_total = state.range(0);
  space.global_batch = 2048;
  space.gpus_per_node = 8;
  space.choose_recompute_unit = true;  // as `plan --stages auto` without --recompute-unit
  LayoutSearchResult last;
  for (auto _ : state) {
    Result<LayoutSearchResult> r = SearchLayouts(request, device, space);
    if (!r.ok()) {
      state.SkipWithError(r.message().c_str());
      return;
    }
    last = std::move(*r);
  }
  state.counters["enumerated"] = static_cast<double>(last.enumerated);
  state.counters["pruned_memory"] = static_cast<double>(last.pruned_memory);
  state.counters["pruned_dominated"] = static_cast<double>(last.pruned_dominated);
  state.counters["estimated"] = static_cast<double>(last.estimated);
  state.counters["planned"] = static_cast<double>(last.planned);
  state.counters["profiles"] = static_cast<double>(last.profiles);
  // The best plan's time per global batch: a faster search must find the same plan.
  state.counters["best_ms"] = last.ranked.empty() ? 0.0 : last.ranked.front().batch_ms;
}
BENCHMARK(BM_SearchLlama405b)
    ->ArgsProduct({{1024, 16384}, {0, 1}})
    ->ArgNames({"gpus", "unlimited"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
}  // namespace pp

BENCHMARK_MAIN();
