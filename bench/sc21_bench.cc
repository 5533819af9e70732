// Predicted against measured training throughput on Table 1 of Narayanan et al., "Efficient
// Large-Scale Language Model Training on GPU Clusters Using Megatron-LM" (SC21): ten GPT models
// on A100s at their published tensor and pipeline sizes (docs/published.md).
//
//   sc21_bench [TABLE.json]   (default: ../shared/published/megatron-sc21-table1.json beside
//                              the source tree)
//
// For every row: the GPT model (the row's layers, hidden and heads; MLP 4h, vocabulary 51200,
// sequence 2048, learned positions, tied output layer, dropout 0.1, bf16) planned by the layout
// search with tp, pp and dp = gpus / (tp pp) pinned, on the A100 with its matrix products at
// the rate of the runs' CUDA 11 software (Cuda11A100()), run as the paper's software ran it
// (Software(): ZeRO 0, every transformer layer recomputed, no sequence parallelism, unfused
// attention, the gradient all-reduce under the last backward without a pipeline and after it
// with one, stage transfers split over the tensor ranks) and with the levers it had
// (RunsLevers(): the blocks split evenly over the stages, the interleaved schedule only
// beyond 2 stages with a chunk count dividing each stage's blocks); micro-batch size,
// schedule and virtual stages are the tool's among those. Its TFLOP/s per GPU counts the
// paper's FLOPs, F = 96 B s l h^2 (1 + s / 6h + V / 16 l h) per step, over the predicted time
// per global batch. Then the layout: the search over every tp and pp at the row's GPU count
// trained the same way, and how far the published tp and pp are behind its best (`gap`); and
// the same question with the tool's own levers beyond the runs' software (`own`: the exact
// split, recomputation of only the stages over the memory limit, any depth and chunk count).
// Prints one line per row, the median and worst absolute error, and the worst gap; then the
// tool's ranking of the layouts of the paper's figure 13, and the rows of Korthikanti et al.
// (MLSys 2023).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/published_runs.h"
#include "core/json_util.h"
#include "core/model.h"
#include "core/stats.h"
#include "partitioner/layout_search.h"
#include "partitioner/plan_inputs.h"
#include "profiler/device_table.h"

namespace pp {
namespace {

struct Row {
  std::string model;
  int64_t layers = 0, hidden = 0, heads = 0, tp = 0, pp = 0, gpus = 0, batch = 0;
  double measured = 0;
};

// The row's GPT: vocabulary 51200, sequence 2048, the output layer tied to the embedding.
Result<Model> Gpt(const Row& r) {
  return GptModel({.name = r.model, .layers = r.layers, .hidden = r.hidden, .heads = r.heads});
}

// The paper's FLOPs of one step (the recomputed forward included).
double PaperFlops(const Row& r) {
  const double B = static_cast<double>(r.batch), s = 2048, l = static_cast<double>(r.layers),
               h = static_cast<double>(r.hidden), V = 51200;
  return 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
}

// How the paper's runs were trained (its section 5, the Megatron-LM of 2021 and the authors'
// own scripts for Table 1, examples/academic_paper_scripts/sc21/run_table_1.sh of
// Megatron-LM's history, added 2021-08-10): every transformer layer recomputed
// (--activations-checkpoint-method uniform, one layer at a time, AtPublishedLayout; the
// paper's FLOP count includes it), tensor parallelism without sequence parallelism (which
// came later), attention as separate scores, softmax and context kernels (before fused
// attention), each micro-batch's weight gradients added to the accumulated ones by autograd
// in a pass of their own (the fused accumulation came in February 2022, commit 83b1e42f30),
// the data-parallel gradient all-reduce by PyTorch's DistributedDataParallel on the rows
// without a pipeline (--DDP-impl torch: the last micro-batch's backward runs outside
// no_sync, so its buckets are reduced under that backward, megatron/schedules.py
// forward_backward_no_pipelining) and by Megatron-LM's own after the pipeline drains on the
// others (--DDP-impl local), and each stage transfer split over the tensor ranks and gathered
// (the paper's section 4.1 scatter/gather, on by default from February 2021 until 2023), and
// the cross entropy in its unfused passes over the fp32 logits (megatron/mpu/cross_entropy.py,
// the model's output.float() before it). Its fp16 optimizer copied every 16-bit gradient to
// a new fp32 one at the step and kept both (megatron/optimizer/optimizer.py at the release
// beside the paper, 50a4b5fa02: 20 bytes a parameter, not 16), and PyTorch's
// DistributedDataParallel of the rows without a pipeline held a second copy of the gradients
// in its buckets (2 more).
ParallelLayout Software(int64_t pp) {
  ParallelLayout l;
  l.sequence_parallel = false;
  l.fused_attention = false;
  l.overlap_grad_reduce = pp == 1;
  l.fused_wgrad_accumulation = false;
  l.pipeline_scatter_gather = true;
  l.fused_cross_entropy = false;
  l.fp32_grad_copy = true;
  l.ddp_bucket_copy = pp == 1;
  return l;
}

// The Megatron-LM of a year later, which the MLSys 2023 rows ran: the same, with its weight
// gradients accumulated inside the product (the fusion of February 2022, before the paper's
// May 2022 submission: an assumption, the paper does not say), and the tensor-parallel
// reduction of qkv's and fc1's input gradient under their weight gradient (the paper's
// section 6.2: the all-reduce from 2021-09, commit 16c90445e7, the sequence-parallel
// reduce-scatter from 2022-03, 02bb1f5c86).
ParallelLayout Software2022(int64_t pp) {
  ParallelLayout l = Software(pp);
  l.ddp_bucket_copy = false;  // Megatron-LM's own DDP (its default) on every row
  l.fused_wgrad_accumulation = true;
  l.overlap_tp_dgrad = true;
  return l;
}

// The A100 with the matrix-product rate of the runs' software: cuBLAS 11 on an A100 80GB
// reached 230 TFLOPS on an 8192^3 fp16 product (mli/transformers-benchmarks, README,
// "MatMul FP32 / FP16" row, measured in NVIDIA's 22.07 PyTorch container with CUDA 11.7),
// where the device table's 271.2 is the best over a search of shapes with the software of
// 2024 ([MAMF] in profiler/device_table.cc). The SC21 runs used the 20.12 container (CUDA
// 11.1; SRUN.sh beside run_table_1.sh), the MLSys 2023 runs the software of 2022. Everything
// else is the table's a100.
DeviceSpec Cuda11A100() {
  DeviceSpec d = *FindDevice("a100");
  d.efficiency.gemm_bf16 = 230.0 / 312.0;
  d.efficiency.source =
      "gemm bf16 0.737 = 230/312 TFLOPS (an 8192^3 fp16 product, CUDA 11.7: "
      "mli/transformers-benchmarks); the rest as the table's a100";
  return d;
}

// A row's model and layout fields (both tables spell them alike).
Row RowOf(const Json& j) {
  Row r;
  r.model = j["model"].get<std::string>();
  r.layers = j["layers"].get<int64_t>();
  r.hidden = j["hidden"].get<int64_t>();
  r.heads = j["heads"].get<int64_t>();
  r.tp = j.value("tp", int64_t{1});
  r.pp = j.value("pp", int64_t{1});
  r.gpus = j.value("gpus", int64_t{1});
  r.batch = j.value("global_batch", int64_t{1});
  return r;
}

// The fraction of the HBM bandwidth the runs' memory-bound kernels stream at. The device
// table's 0.89 is a large copy's; the only measurement of this software's own kernels is
// Korthikanti et al.'s Table 4 (MLSys 2023): selective recomputation, which runs the core
// attention's forward again and nothing else, added 1.3 ms to the backward of one layer of
// its 22B model at tp 8, micro-batch 4 (13.2 - 11.9, and 13.1 - 11.8 with sequence
// parallelism). That forward (the scores product, the fused masked softmax, the dropout and
// the context product on s x s matrices) is bound by its memory traffic. Returns the fraction
// at which the analytic profile's core attention of that layer takes the measured time
// (bisection; the time falls as the fraction grows), applied here to every memory-bound
// kernel of the runs' software: an extrapolation from the attention's to the norms',
// activations' and residual adds'.
struct MemoryFraction {
  double fraction = 0;
  double measured_ms = 0;  // the core attention's forward
};
Result<MemoryFraction> RunsMemoryFraction(const DeviceSpec& base, const Json& mlsys) {
  const Json& row = mlsys["rows"][0];
  Result<Model> model = Gpt(RowOf(row));
  if (!model.ok()) return model.status();
  const Json& layer = mlsys["layer_22b_ms"];
  const double measured =
      layer["backward_selective"].get<double>() - layer["backward"].get<double>();
  ParallelLayout l = Software2022(1);
  l.tp = static_cast<int>(row["tp"].get<int64_t>());
  double lo = 0.05, hi = 1.0;
  for (int i = 0; i < 40; ++i) {
    const double mid = (lo + hi) / 2;
    DeviceSpec d = base;
    d.efficiency.memory = mid;
    Result<Profile> profile =
        LayoutProfile(*model, d, l, row["micro_batch"].get<int64_t>(), std::nullopt);
    if (!profile.ok()) return profile.status();
    (profile->layers[1].Selective(RecomputeModules::Default()).forward_ms > measured ? lo : hi) =
        mid;
  }
  return MemoryFraction{(lo + hi) / 2, measured};
}

// The request and the lever space of a row at its published tp and pp (cp 1, ZeRO 0, the
// runs' software, every transformer layer recomputed one at a time). The Megatron-LM of 2021
// and 2022 checkpointed each transformer layer's input (--checkpoint-num-layers 1 by default in
// its arguments.py) inside its transformer (ParallelTransformer._checkpointed_forward in
// megatron/model/transformer.py), so the embedding, the final norm, the output layer and the
// loss kept their activations: --recompute-unit block over every block of a stage.
struct AtLayout {
  PlanRequest request;
  LeverSpace space;
};
Result<AtLayout> AtPublishedLayout(const Row& r, double step_budget_s) {
  Result<Model> model = Gpt(r);
  if (!model.ok()) return Status::Error(r.model + ": " + model.message());
  AtLayout at;
  at.request.model = *model;
  at.request.step_budget_s = step_budget_s;
  at.request.recompute_unit = RecomputeUnit::kBlock;
  at.request.recompute_blocks = static_cast<int>(r.layers);
  at.space.gpus_total = r.gpus;
  at.space.global_batch = r.batch;
  at.space.gpus_per_node = 8;
  at.space.tp = {static_cast<int>(r.tp)};
  at.space.pp = {static_cast<int>(r.pp)};
  at.space.cp = {1};
  at.space.zero = {0};
  at.space.top = 1;
  at.space.software = Software(r.pp);
  at.space.recompute_all = true;
  at.space.method = "blocks";
  at.space.exact = 24;
  return at;
}

// The levers the runs' software had at pipeline depth `pp` (the Megatron-LM of 2021): the
// layer count divisible by pp (ParallelTransformer asserts it), and the interleaved schedule
// only with pp > 2 (arguments.py, from 2021-03-20 until 2024-05-31) with a chunk count V that
// divides each stage's layers; V from 2 to 8, as the tool's own list spans. False when the
// software could not run the depth at all.
bool RunsLevers(int64_t layers, int pp, LeverSpace* space) {
  if (layers % pp != 0) return false;
  space->pp = {pp};
  space->software = Software(pp);
  MegatronScheduleLevers(layers, pp, /*min_interleaved_pp=*/3, space);
  return true;
}

// `found` in place of `best` when it planned something faster.
void KeepFaster(Result<LayoutSearchResult> found, Result<LayoutSearchResult>* best) {
  if (!found.ok() || found->ranked.empty()) return;
  if (!best->ok() || (*best)->ranked.empty() ||
      found->ranked.front().batch_ms < (*best)->ranked.front().batch_ms) {
    *best = std::move(found);
  }
}

// The fastest of `space` (tp and the levers other than pp as it says) over the depths `pps`
// the runs' software could run, every transformer layer recomputed, as the runs did (Table 1's
// setting).
Result<LayoutSearchResult> SearchAsTheRunsCould(const PlanRequest& request, const DeviceSpec& a100,
                                                LeverSpace space, int64_t layers,
                                                const std::vector<int>& pps) {
  Result<LayoutSearchResult> best = Status::Error("no depth the software could run fits");
  space.recompute_all = true;
  for (int pp : pps) {
    if (RunsLevers(layers, pp, &space)) KeepFaster(SearchLayouts(request, a100, space), &best);
  }
  return best;
}

// The same A100s and the Megatron-LM of a year later (Korthikanti et al., MLSys 2023): the
// end-to-end iteration time of four GPT models with every transformer layer recomputed and no
// sequence parallelism ("Full Recompute" in its Table 5), at their layouts (tp 8, no data
// parallelism, its micro-batch and interleaving), against the plan's time per global batch;
// then one layer of its 22B model (Table 4) against the analytic profile's block, without
// recomputation and with it (the backward plus one more forward).
int Mlsys23(const DeviceSpec& a100, const Json& mlsys) {
  // Its two columns: every transformer layer recomputed without sequence parallelism ("Full
  // Recompute"), and sequence parallelism with the core attention alone recomputed ("Present
  // Work").
  struct Column {
    const char* title;
    const char* key;
    bool sequence_parallel;
    RecomputeUnit unit;
  };
  for (const Column& col :
       {Column{"full recomputation", "full_recompute_s", false, RecomputeUnit::kBlock},
        Column{"sequence parallelism and selective recomputation", "present_work_s", true,
               RecomputeUnit::kSelective}}) {
    std::printf("\nMLSys 2023, Table 5, %s (seconds per iteration)\n", col.title);
    std::printf("%-6s %3s %3s %3s %5s %5s %3s %9s %9s %7s\n", "model", "tp", "pp", "vp", "gpus",
                "batch", "b", "measured", "predicted", "error");
    std::vector<double> errors;
    for (const Json& j : mlsys["rows"]) {
      const Row r = RowOf(j);
      const int vp = j["vp"].get<int>();
      const int64_t b = j["micro_batch"].get<int64_t>();
      const double measured = j[col.key].get<double>();
      Result<AtLayout> at_layout = AtPublishedLayout(r, 2.0);
      if (!at_layout.ok()) {
        std::fprintf(stderr, "sc21_bench: %s\n", at_layout.message().c_str());
        return 2;
      }
      PlanRequest& request = at_layout->request;
      request.recompute_unit = col.unit;
      LeverSpace& space = at_layout->space;
      space.micro_batch_sizes = {b};
      space.schedules = {vp > 1 ? "interleaved" : "1f1b"};
      if (vp > 1) space.virtual_stages = {vp};
      space.software = Software2022(r.pp);
      space.software.sequence_parallel = col.sequence_parallel;
      Result<LayoutSearchResult> at = SearchLayouts(request, a100, space);
      if (!at.ok()) {
        std::printf("%-6s -- no plan at the published layout: %s\n", r.model.c_str(),
                    at.message().c_str());
        continue;
      }
      const double predicted = at->ranked.front().batch_ms / 1000.0;
      const double error = measured / predicted - 1;  // as throughput: predicted over measured
      errors.push_back(std::fabs(error));
      std::printf("%-6s %3lld %3lld %3d %5lld %5lld %3lld %9.2f %9.2f %+6.1f%%\n", r.model.c_str(),
                  static_cast<long long>(r.tp), static_cast<long long>(r.pp), vp,
                  static_cast<long long>(r.gpus), static_cast<long long>(r.batch),
                  static_cast<long long>(b), measured, predicted, 100 * error);
    }
    const double worst = errors.empty() ? 0 : *std::max_element(errors.begin(), errors.end());
    std::printf("|error| of the throughput median %.1f%%, worst %.1f%%; %zu of %zu rows planned\n",
                100 * Median(errors), 100 * worst, errors.size(), mlsys["rows"].size());
  }

  // One layer of the 22B model (the first row), tp 8, micro-batch 4.
  const Json& first = mlsys["rows"][0];
  Result<Model> model = Gpt(RowOf(first));
  if (!model.ok()) return 2;
  const Json& layer = mlsys["layer_22b_ms"];
  std::printf("\nMLSys 2023, Table 4, one layer of the 22B model at tp 8, b 4 (ms)\n");
  std::printf("%-40s %9s %9s %7s\n", "", "measured", "predicted", "error");
  for (bool sp : {false, true}) {
    ParallelLayout l = Software2022(1);
    l.tp = static_cast<int>(first["tp"].get<int64_t>());
    l.sequence_parallel = sp;
    Result<Profile> profile =
        LayoutProfile(*model, a100, l, first["micro_batch"].get<int64_t>(), std::nullopt);
    if (!profile.ok()) {
      std::fprintf(stderr, "sc21_bench: %s\n", profile.message().c_str());
      return 2;
    }
    const LayerProfile& block = profile->layers[1];
    const auto line = [](const char* what, double measured, double predicted) {
      std::printf("%-40s %9.1f %9.2f %+6.1f%%\n", what, measured, predicted,
                  100 * (predicted / measured - 1));
    };
    if (!sp) {
      line("forward", layer["forward"].get<double>(), block.forward_ms);
      line("backward", layer["backward"].get<double>(), block.backward_ms);
      line("backward with recomputation", layer["backward_with_recompute"].get<double>(),
           block.backward_ms + block.forward_ms);
      line("backward, selective", layer["backward_selective"].get<double>(),
           block.backward_ms + block.Selective(RecomputeModules::Default()).forward_ms);
    } else {
      line("forward, sequence parallel", layer["forward_sequence_parallel"].get<double>(),
           block.forward_ms);
      line("backward, sequence parallel", layer["backward_sequence_parallel"].get<double>(),
           block.backward_ms);
      line("backward, sequence parallel, selective",
           layer["backward_sequence_parallel_selective"].get<double>(),
           block.backward_ms + block.Selective(RecomputeModules::Default()).forward_ms);
    }
  }
  return 0;
}

// The paper's layout experiment (its figure 13; examples/academic_paper_scripts/sc21/
// run_figure_13.sh): a 161B GPT (32 layers, hidden 20480, 128 heads) on 64 GPUs with tp x pp =
// 64, micro-batch 1, every layer recomputed, global batch 32 and 128. The paper finds tp 8,
// pp 8 the fastest (its takeaway: tensor parallelism up to the GPUs of a node, then
// pipelines across nodes). Prints the tool's ranking of the layouts at each batch; the search
// keeps tp inside a node, so tp 16 and 32 (pp 4 and 2) have no plan.
int Figure13(const DeviceSpec& a100) {
  std::printf(
      "\nSC21, figure 13 (161B, 64 GPUs, b 1, recomputed): the tool's ranking, fastest "
      "first (the paper's fastest is tp8 pp8)\n");
  int agree = 0;
  for (int64_t batch : {32, 128}) {
    std::vector<std::pair<double, int>> ranked;  // batch ms, pp
    for (int pp : {2, 4, 8, 16, 32}) {
      Row r;
      r.model = "GPT-161B";
      r.layers = 32;
      r.hidden = 20480;
      r.heads = 128;
      r.tp = 64 / pp;
      r.pp = pp;
      r.gpus = 64;
      r.batch = batch;
      Result<AtLayout> at = AtPublishedLayout(r, 1.0);
      if (!at.ok()) {
        std::fprintf(stderr, "sc21_bench: %s\n", at.message().c_str());
        return 2;
      }
      at->space.micro_batch_sizes = {1};
      at->space.schedules = {"1f1b"};
      Result<LayoutSearchResult> found = SearchLayouts(at->request, a100, at->space);
      if (found.ok() && !found->ranked.empty()) {
        ranked.emplace_back(found->ranked.front().batch_ms, pp);
      }
    }
    std::sort(ranked.begin(), ranked.end());
    std::printf("batch %3lld:", static_cast<long long>(batch));
    for (const auto& [ms, pp] : ranked) std::printf("  tp%d pp%d %.0f ms", 64 / pp, pp, ms);
    std::printf("\n");
    agree += !ranked.empty() && ranked.front().second == 8;
  }
  std::printf("tp8 pp8 first at %d of 2 batches\n", agree);
  return 0;
}

int Main(int argc, char** argv) {
  const std::string path =
      argc > 1 ? argv[1]
               : std::string(PP_SOURCE_DIR) + "/../shared/published/megatron-sc21-table1.json";
  Result<Json> doc = ReadJsonFile(path);
  if (!doc.ok()) {
    std::fprintf(stderr, "sc21_bench: %s\n", doc.message().c_str());
    return 2;
  }
  const std::string mlsys_path =
      argc > 2 ? argv[2] : std::string(PP_SOURCE_DIR) + "/bench/data/megatron-mlsys23.json";
  Result<Json> mlsys = ReadJsonFile(mlsys_path);
  if (!mlsys.ok()) {
    std::fprintf(stderr, "sc21_bench: %s\n", mlsys.message().c_str());
    return 2;
  }
  DeviceSpec a100 = Cuda11A100();
  Result<MemoryFraction> memory = RunsMemoryFraction(a100, *mlsys);
  if (!memory.ok()) {
    std::fprintf(stderr, "sc21_bench: %s\n", memory.message().c_str());
    return 2;
  }
  a100.efficiency.memory = memory->fraction;
  std::printf(
      "memory-bound kernels at %.3f of the HBM bandwidth: the 22B layer's core attention forward "
      "in the %.1f ms MLSys 2023 measured (the device table's copy rate is %.2f)\n\n",
      memory->fraction, memory->measured_ms, FindDevice("a100")->efficiency.memory);
  std::printf("%-12s %3s %3s %4s %5s %5s %9s %9s %7s  %-28s %-34s %6s %6s\n", "model", "tp", "pp",
              "dp", "gpus", "batch", "measured", "predicted", "error", "tool's levers",
              "search's best layout", "gap", "own");
  std::vector<double> errors, gaps;
  for (const Json& j : (*doc)["rows"]) {
    Row r = RowOf(j);
    r.measured = j["measured_tflops_per_gpu"].get<double>();
    Result<AtLayout> at_layout = AtPublishedLayout(r, 1.0);
    if (!at_layout.ok()) {
      std::fprintf(stderr, "sc21_bench: %s\n", at_layout.message().c_str());
      return 2;
    }
    const PlanRequest& request = at_layout->request;
    const LeverSpace& published = at_layout->space;
    const int pp = static_cast<int>(r.pp);
    // The published tp and pp as the runs trained them: every transformer layer recomputed,
    // the blocks split evenly, and the micro-batch, schedule and chunks the tool's among what
    // the runs' software could run.
    Result<LayoutSearchResult> at = SearchAsTheRunsCould(request, a100, published, r.layers, {pp});
    // The layout question: against every tp and pp at the row's GPU count, trained the same
    // way (ZeRO 0: the paper's software had no sharded optimizer).
    LeverSpace all = published;
    all.tp.clear();
    all.cp.clear();
    std::vector<int> depths;
    for (int p = 1; p <= r.gpus; ++p) {
      if (r.gpus % p == 0) depths.push_back(p);
    }
    Result<LayoutSearchResult> best = SearchAsTheRunsCould(request, a100, all, r.layers, depths);
    // Beyond the runs' software, with the tool's own levers: the exact split, recomputation
    // of only the stages over the memory limit, any depth and chunk count; the published tp
    // and pp against every layout. The search runs without a pipeline (PyTorch's overlapped
    // all-reduce) and over every depth above 1 (the all-reduce after the pipeline).
    LeverSpace own_space = all;
    own_space.method = "dp";
    own_space.recompute_all = false;
    own_space.recompute_lever = true;
    own_space.virtual_stages = LeverSpace{}.virtual_stages;
    own_space.schedules = LeverSpace{}.schedules;
    LeverSpace own_published = own_space;  // its software is Software(pp) already
    own_published.tp = published.tp;
    own_published.pp = published.pp;
    Result<LayoutSearchResult> own_at = SearchLayouts(request, a100, own_published);
    own_space.pp = {1};
    own_space.software = Software(1);
    Result<LayoutSearchResult> own = SearchLayouts(request, a100, own_space);
    own_space.pp.assign(depths.begin() + 1, depths.end());
    own_space.software = Software(2);
    KeepFaster(SearchLayouts(request, a100, own_space), &own);
    if (!at.ok()) {
      std::printf("%-12s %3lld %3lld  -- no plan at the published layout: %s\n", r.model.c_str(),
                  static_cast<long long>(r.tp), static_cast<long long>(r.pp), at.message().c_str());
      continue;
    }
    const LayoutCandidate& c = at->ranked.front();
    const double predicted =
        PaperFlops(r) / (c.batch_ms / 1000.0) / static_cast<double>(r.gpus) / 1e12;
    const double error = predicted / r.measured - 1;
    errors.push_back(std::fabs(error));
    char levers[64], layout[64] = "-";
    std::snprintf(levers, sizeof levers, "b=%lld %s%s%s",
                  static_cast<long long>(c.micro_batch_size), c.schedule.c_str(),
                  c.layout.vp > 1 ? (" v=" + std::to_string(c.layout.vp)).c_str() : "",
                  c.recompute ? " rc" : "");
    double gap = 0;
    if (best.ok()) {
      const LayoutCandidate& b = best->ranked.front();
      std::snprintf(layout, sizeof layout, "tp%d pp%d dp%d b=%lld %s%s%s", b.layout.tp, b.layout.pp,
                    b.layout.dp, static_cast<long long>(b.micro_batch_size), b.schedule.c_str(),
                    b.layout.vp > 1 ? (" v=" + std::to_string(b.layout.vp)).c_str() : "",
                    b.recompute ? " rc" : "");
      gap = c.batch_ms / b.batch_ms - 1;
      gaps.push_back(gap);
    }
    double own_gap = 0;
    if (own.ok() && !own->ranked.empty() && own_at.ok() && !own_at->ranked.empty()) {
      own_gap = own_at->ranked.front().batch_ms / own->ranked.front().batch_ms - 1;
    }
    std::printf(
        "%-12s %3lld %3lld %4lld %5lld %5lld %9.1f %9.1f %+6.1f%%  %-28s %-34s %+5.1f%% %+5.1f%%\n",
        r.model.c_str(), static_cast<long long>(r.tp), static_cast<long long>(r.pp),
        static_cast<long long>(r.gpus / (r.tp * r.pp)), static_cast<long long>(r.gpus),
        static_cast<long long>(r.batch), r.measured, predicted, 100 * error, levers, layout,
        100 * gap, 100 * own_gap);
  }
  const double worst = errors.empty() ? 0 : *std::max_element(errors.begin(), errors.end());
  const double worst_gap = gaps.empty() ? 0 : *std::max_element(gaps.begin(), gaps.end());
  std::printf(
      "\n|error| median %.1f%%, worst %.1f%% (targets 10%%, 20%%); published layout behind "
      "the search's best: worst %.1f%% (target 5%%); %zu of %zu rows planned\n",
      100 * Median(errors), 100 * worst, 100 * worst_gap, errors.size(), (*doc)["rows"].size());
  if (const int rc = Figure13(a100); rc != 0) return rc;
  return Mlsys23(a100, *mlsys);
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) { return pp::Main(argc, argv); }
