// Predicted against measured training throughput on the H100 table of Megatron-LM's README
// (2024-07: nine GPT models from 1.7B to 462B parameters on 48 to 6,144 H100s at their
// published tensor, pipeline and data sizes; bench/data/megatron-h100-2024.json,
// docs/published.md).
//
//   megatron_h100_bench [TABLE.json]   (default: bench/data/megatron-h100-2024.json)
//
// For every row: the GPT model (the row's layers, hidden and heads; vocabulary 131072 and
// sequence 4096 as the README gives them; the output layer untied, as the table's parameter
// counts imply) planned by the layout search with tp, pp and dp pinned, on the device table's
// h100, run as the README's software ran it (Software(): sequence parallelism, fused
// attention, the distributed optimizer as ZeRO 1, the gradient reduce-scatter and parameter
// all-gather overlapped, weight gradients accumulated inside their products, the input
// gradient's tensor-parallel reduce-scatter under the weight gradient, the cross entropy
// unfused) with the levers of the Megatron-LM of July 2024 (the blocks split evenly,
// interleaving with a chunk count dividing each stage's blocks: MegatronScheduleLevers);
// micro-batch size, schedule, chunks and recomputation are the tool's among those. Its TFLOP/s per
// GPU counts Megatron-LM's FLOPs of that month (MegatronFlops) over the predicted time per global
// batch. Prints one line per row and the median and worst absolute error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/published_runs.h"
#include "core/json_util.h"
#include "core/stats.h"
#include "partitioner/layout_search.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

struct Row {
  std::string model;
  int64_t layers = 0, hidden = 0, heads = 0, tp = 0, pp = 0, dp = 0, gpus = 0, batch = 0;
  double measured = 0;
};

// Megatron-LM's num_floating_point_operations of July 2024 (megatron/training/training.py at
// the README's commit) for a GPT without grouped-query attention and with an ungated MLP of
// 4h: 12 B s l h^2 ((1 + 1 + s/h) + 4 + V / (2 l h)), the attention scores counted in full.
double MegatronFlops(const Row& r, double vocab, double seq) {
  const double B = static_cast<double>(r.batch), l = static_cast<double>(r.layers),
               h = static_cast<double>(r.hidden);
  return 12 * B * seq * l * h * h * (2 + seq / h + 4 + vocab / (2 * l * h));
}

// The Megatron-LM (Megatron-Core) of the README's runs: its flags --overlap-grad-reduce,
// --overlap-param-gather (with the distributed optimizer) and --tp-comm-overlap (which needs
// sequence parallelism); attention fused (Transformer Engine); the weight-gradient
// accumulation fused into the product (gradient_accumulation_fusion, on by default); the input
// gradient's reduce-scatter under the weight gradient (part of what --tp-comm-overlap
// overlaps). The rest of --tp-comm-overlap, the forward's all-gathers and reduce-scatters
// under the products, the tool does not model: they stay exposed.
ParallelLayout Software() {
  ParallelLayout l;
  l.sequence_parallel = true;
  l.fused_attention = true;
  l.overlap_grad_reduce = true;
  l.fused_wgrad_accumulation = true;
  l.overlap_tp_dgrad = true;
  // Without --cross-entropy-loss-fusion (off by default then, and not among the README's
  // flags): the unfused passes.
  l.fused_cross_entropy = false;
  return l;
}

// The Megatron-LM of July 2024 interleaves any pipeline (at 2 stages too, since 2024-05-31).
constexpr int kMinInterleavedStages = 2;

int Main(int argc, char** argv) {
  const std::string path =
      argc > 1 ? argv[1] : std::string(PP_SOURCE_DIR) + "/bench/data/megatron-h100-2024.json";
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) {
    std::fprintf(stderr, "megatron_h100_bench: %s\n", doc.message().c_str());
    return 2;
  }
  const int64_t vocab = (*doc)["vocab"].get<int64_t>();
  const int64_t seq = (*doc)["seq_len"].get<int64_t>();
  const DeviceSpec h100 = *FindDevice("h100");
  std::printf("%-6s %3s %3s %4s %5s %5s %9s %9s %7s  %s\n", "model", "tp", "pp", "dp", "gpus",
              "batch", "measured", "predicted", "error", "tool's levers");
  std::vector<double> errors;
  for (const Json& j : (*doc)["rows"]) {
    Row r;
    r.model = j["model"].get<std::string>();
    r.layers = j["layers"].get<int64_t>();
    r.hidden = j["hidden"].get<int64_t>();
    r.heads = j["heads"].get<int64_t>();
    r.tp = j["tp"].get<int64_t>();
    r.pp = j["pp"].get<int64_t>();
    r.dp = j["dp"].get<int64_t>();
    r.gpus = j["gpus"].get<int64_t>();
    r.batch = j["global_batch"].get<int64_t>();
    r.measured = j["measured_tflops_per_gpu"].get<double>();
    Result<Model> model = GptModel({.name = r.model,
                                    .layers = r.layers,
                                    .hidden = r.hidden,
                                    .heads = r.heads,
                                    .vocab = vocab,
                                    .seq_len = seq,
                                    .tied_output = false});
    if (!model.ok()) {
      std::fprintf(stderr, "megatron_h100_bench: %s: %s\n", r.model.c_str(),
                   model.message().c_str());
      return 2;
    }
    PlanRequest request;
    request.model = *model;
    request.step_budget_s = 1.0;
    LeverSpace space;
    space.gpus_total = r.gpus;
    space.global_batch = r.batch;
    space.gpus_per_node = 8;
    space.tp = {static_cast<int>(r.tp)};
    space.pp = {static_cast<int>(r.pp)};
    space.cp = {1};
    space.zero = {1};
    space.software = Software();
    space.method = "blocks";
    space.choose_recompute_unit = true;
    space.top = 1;
    MegatronScheduleLevers(r.layers, static_cast<int>(r.pp), kMinInterleavedStages, &space);
    Result<LayoutSearchResult> at = SearchLayouts(request, h100, space);
    if (!at.ok() || at->ranked.empty()) {
      std::printf("%-6s %3lld %3lld  -- no plan at the published layout: %s\n", r.model.c_str(),
                  static_cast<long long>(r.tp), static_cast<long long>(r.pp),
                  at.ok() ? "none fits" : at.message().c_str());
      continue;
    }
    const LayoutCandidate& c = at->ranked.front();
    const double predicted =
        MegatronFlops(r, static_cast<double>(vocab), static_cast<double>(seq)) /
        (c.batch_ms / 1000.0) / static_cast<double>(r.gpus) / 1e12;
    const double error = predicted / r.measured - 1;
    errors.push_back(std::fabs(error));
    std::printf(
        "%-6s %3lld %3lld %4lld %5lld %5lld %9.1f %9.1f %+6.1f%%  b=%lld %s%s%s\n", r.model.c_str(),
        static_cast<long long>(r.tp), static_cast<long long>(r.pp), static_cast<long long>(r.dp),
        static_cast<long long>(r.gpus), static_cast<long long>(r.batch), r.measured, predicted,
        100 * error, static_cast<long long>(c.micro_batch_size), c.schedule.c_str(),
        c.layout.vp > 1 ? (" v=" + std::to_string(c.layout.vp)).c_str() : "",
        c.recompute ? (c.recompute_unit == RecomputeUnit::kSelective ? " rc-selective" : " rc")
                    : "");
  }
  const double worst = errors.empty() ? 0 : *std::max_element(errors.begin(), errors.end());
  std::printf("\n|error| median %.1f%%, worst %.1f%%; %zu of %zu rows planned\n",
              100 * Median(errors), 100 * worst, errors.size(), (*doc)["rows"].size());
  return 0;
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) { return pp::Main(argc, argv); }
