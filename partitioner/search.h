// The search behind `plan --stages auto`: over pipeline depth p (dividing the GPU count, with
// r = G / p data-parallel replicas), micro-batch size b (one profile per b), micro-batch count
// m = N / (r b) and schedule, each candidate split by dp under the memory limit and simulated.
// The request is one plan's (partitioner/planner.h) with its `search` space set: its profile,
// model, devices, optimizer, memory limit, objective and virtual stages hold for every
// candidate. With --device-types (request.devices.stage_type) the pipeline's length is the only
// depth p, and G / p replicas copy it; replica i runs on GPUs i p .. i p + p - 1, so a stage
// boundary crosses nodes where those GPUs do, and the all-reduce runs over the inter-node link
// when G exceeds the GPUs of one node. The step search shares the request's `step_budget_s`
// among the candidates: each gets what is left over the candidates left.
// Candidates are ranked by time per global batch: the simulated step plus the replicas'
// gradient all-reduce (docs/cost-model.md, "Search").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "partitioner/request.h"

namespace pp {

// Why a candidate's time per batch exceeds the best one's: the component that grew most.
enum class LossReason { kNone, kSlowerStages, kBubble, kTransfers, kAllReduce, kMemory };
const char* LossReasonName(LossReason reason);

struct SearchCandidate {
  int stages = 0;               // p
  int replicas = 0;             // r = G / p
  int64_t micro_batch_size = 0;  // b
  int micro_batches = 0;        // m
  std::string schedule;
  bool recompute = false;    // some stage recomputes its activations (--recompute auto)
  bool exact = true;         // the split is the proven least step (or bottleneck) for its shape
  double lower_bound_ms = 0;  // step objective: no split of this shape is faster than this
  double step_ms = 0;        // simulated pipeline step
  double allreduce_ms = 0;   // ring all-reduce of the largest stage's gradients
  double batch_ms = 0;       // step_ms + allreduce_ms: time per global batch
  double work_ms = 0;        // mean busy time per device: m x total stage time / p
  double transfer_ms = 0;    // one micro-batch's round trip over every boundary
  double bubble_ms = 0;      // step_ms - work_ms - transfer_ms (at least 0)
  double bubble_ratio = 0;
  uint64_t peak_memory_bytes = 0;  // largest stage peak
  bool fits = true;                // meets the memory limit
  LossReason reason = LossReason::kNone;  // against the best candidate
  double behind_ms = 0;                    // batch_ms - the best's batch_ms
};

struct SearchResult {
  std::vector<SearchCandidate> ranked;  // fitting candidates, fastest first, at most `top`
  // Candidates faster than the best that exceed the memory limit (reason kMemory), fastest
  // first, at most `top`.
  std::vector<SearchCandidate> over_memory;
  int evaluated = 0;  // candidates planned
  Plan best;          // the first ranked candidate's plan
};

// Ring all-reduce of `bytes` over r replicas on `link`: 2(r-1)/r x bytes / bandwidth +
// 2(r-1) x latency, in ms; 0 for r = 1.
double RingAllReduceMs(uint64_t bytes, int replicas, const Link& link);

// Micro-batch sizes worth profiling: powers of two up to 64 that give a whole micro-batch
// count for some pipeline depth dividing `gpus_total`.
std::vector<int64_t> MicroBatchSizeCandidates(int gpus_total, int64_t global_batch);

// Errors: no search space, G or N not positive, no (p, b) shape that divides the batch, or no
// candidate fits the memory limit (naming the least memory any candidate needs).
Result<SearchResult> SearchPlans(const PlanRequest& request);

}  // namespace pp
