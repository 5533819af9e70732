// The search over every lever of a training step (`plan --stages auto --gpus-per-node K`, or
// with --tp/--cp/--ep/--zero pinning some): tensor degree tp (divisors of K that divide every
// block's heads), context degree cp (powers of two dividing the GPUs, the sequence a multiple
// of 2 cp; 1 with unfused attention), expert degree ep (powers of two dividing every expert
// layer's expert count; 1 without expert layers) and the experts' tensor degree etp (as tp,
// and 1 when tp > 1: Megatron-LM's MoE parallel folding; ep x etp dividing tp x cp x dp),
// pipeline depth pp
// (dividing G / (tp cp), at most the layers), dp = G / (tp cp pp), micro-batch size b (powers
// of two up to 64 with N a multiple of dp b), virtual stages (interleaved), schedule,
// recomputation and ZeRO stage, under each device's memory; ranked by time per global batch.
//
// Two passes (docs/cost-model.md, "Search over the layout"):
//  1. Every candidate is estimated in O(1) from prefix sums of its (tp, cp, ep, etp, b) profile
//     (one analytic profile each, shared by every candidate with those degrees): a balanced
//     split's bottleneck max(total / chunks, largest layer) per chunk, the pipeline
//     (m + (p - 1) / v) x device time plus 2 (chunks - 1) transfers, and the data-parallel
//     synchronisation of partitioner/data_parallel.h on p-th shares of the parameters.
//     Pruned before that: candidates whose memory lower bound (a p-th of the parameters'
//     state at their ZeRO stage and of one micro-batch's activations) exceeds the device, and
//     dominated ones: a higher ZeRO stage than 1, or recomputation, only where the lower one's
//     balanced split fits. Candidates whose balanced split does not fit stay, "tight", and
//     are planned after the others.
//  2. The best `exact` estimates are planned exactly (MakePlan: dp split under the memory
//     limit, simulated schedule, plan's batch time) and ranked by their planned time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/parallelism.h"
#include "core/plan.h"
#include "core/status.h"
#include "partitioner/request.h"
#include "profiler/device_table.h"

namespace pp {

struct LeverSpace {
  int64_t gpus_total = 0;    // G
  int64_t global_batch = 0;  // N samples
  int gpus_per_node = 8;     // K
  // Pinned levers: empty searches every value the header lists.
  std::vector<int> tp, cp, ep, pp, zero;
  std::vector<int> etp;  // the experts' tensor degrees; a value equal to tp means "as tp"

  std::vector<int64_t> micro_batch_sizes;
  std::vector<int> virtual_stages = {2, 3, 4, 6, 8};  // interleaved's V
  std::vector<std::string> schedules = {"1f1b", "interleaved"};
  bool recompute_lever = true;
  // Every candidate recomputes every stage and chunk (--recompute all).
  bool recompute_all = false;
  // A candidate that recomputes does so by stage or by layer, whichever its balanced split
  // holds less with (both cost the same time), and by the other when that does not fit;
  // false: by the request's recompute_unit (--recompute-unit given).
  bool choose_recompute_unit = false;
  // How the training software runs every candidate: ParallelLayout's sequence_parallel,
  // fused_attention and overlap_grad_reduce are taken from here; overlap_expert_comm too, on
  // every candidate that can run it (ep > 1, no recomputation, one stage or virtual stages).
  ParallelLayout software;
  // How each planned candidate's stage boundaries are chosen: a PartitionMethods() name
  // (partitioner/methods.h). "dp", the default, searches them exactly; "blocks" holds every
  // candidate to Megatron-LM's equal blocks per stage (or per chunk).
  std::string method = "dp";
  size_t exact = 12;  // candidates planned exactly
  size_t top = 10;
};

struct LayoutCandidate {
  ParallelLayout layout;  // pp, vp, dp, zero included
  int64_t micro_batch_size = 0;
  int micro_batches = 0;
  std::string schedule;
  bool recompute = false;
  RecomputeUnit recompute_unit = RecomputeUnit::kStage;  // when it recomputes
  double estimate_ms = 0;  // pass 1's time per global batch
  // Pass 1: a balanced split would exceed the memory limit, so the candidate is planned only
  // after those whose balanced split fits (an uneven split may still fit).
  bool tight = false;
  // Pass 2 (planned): the plan's figures; 0 when only estimated.
  bool planned = false;
  double batch_ms = 0;
  double step_ms = 0;
  double data_parallel_ms = 0;
  double model_tflops_per_gpu = 0;
  uint64_t peak_memory_bytes = 0;
};

struct LayoutSearchResult {
  std::vector<LayoutCandidate> ranked;  // planned candidates, fastest first, at most `top`
  int64_t enumerated = 0;               // layouts x levers considered
  int64_t pruned_memory = 0;            // over the memory lower bound
  int64_t pruned_dominated = 0;         // a lower ZeRO stage or no recomputation fits
  int64_t estimated = 0;                // estimated in pass 1
  int64_t planned = 0;                  // planned in pass 2 (including those that failed)
  int64_t profiles = 0;                 // analytic profiles built
  Plan best;
};

// `base` carries the request's objective, optimizer, memory limit (nullopt: the device's),
// step budget (shared over the planned candidates) and the model (required).
Result<LayoutSearchResult> SearchLayouts(const PlanRequest& base, const DeviceSpec& device,
                                         const LeverSpace& space);

}  // namespace pp
